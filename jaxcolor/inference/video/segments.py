"""The work directory of an unfinished film: finished segments, and what resuming needs.

A film is colourised in segments of `segment_frames` consecutive frames. Everything of an
unfinished run lives in `OUTPUT.partial/` beside the output, and the output itself appears
only once the whole film is assembled and its frame count checked, by a rename: a kill at
any moment (-9, power loss) leaves either the finished output or a `.partial` directory,
never a file that looks complete but is not.

    OUTPUT.partial/job.json           the input's identity and every setting that changes
                                      the frames; a rerun with other settings is refused
    OUTPUT.partial/seg_000003.mkv     segment 3's encoded frames (film outputs), or
    OUTPUT.partial/frames/*.png       its frames (folder outputs)
    OUTPUT.partial/seg_000003.npz     the temporal carry after its last frame
    OUTPUT.partial/seg_000003.json    its frame count, its packets' time stamps and its
                                      last frame's (where a resumed run enters the film),
                                      written last: a segment is finished when it exists
    OUTPUT.partial/done.json          the output's frame count, written once the output is
                                      assembled and checked, just before it is renamed
                                      into place: a run killed after that rename leaves
                                      the output complete, and the next run only deletes
                                      the directory

Each file is written under a temporary name, flushed and renamed. A rerun finds the
finished segments (a prefix of them), restores the carry of the last one, and goes on from
the frame after it (a video file is entered at the key frame before that frame, not
decoded from its start); since each segment is batched the same way in either run and the
carry is restored exactly, the resumed film's frames equal an uninterrupted run's. The directory
is deleted by renaming it to a temporary name first (`lock.temporary`), so a kill while it
is deleted leaves either all of it or a temporary that the next run removes.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from jaxcolor.errors import UsageError
from jaxcolor.inference.video import temporal
from jaxcolor.inference.video.io import VideoWriteError, fsync_file
from jaxcolor.inference.video.lock import temporary

JOB = "job.json"
DONE = "done.json"


def work_directory(output: Path) -> Path:
    return output.with_name(output.name + ".partial")


def atomic_write(path: Path, data: bytes) -> None:
    tmp = temporary(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise VideoWriteError(f"cannot write {path}: {e.strerror or e}") from None


class WorkDir:
    """`OUTPUT.partial/`: the job's identity and its finished segments."""

    def __init__(self, output: Path, job: dict):
        self.path = work_directory(output)
        self.job = job

    def open(self) -> int:
        """Create the directory, or check that it belongs to this job. Returns how many
        segments are finished (0 for a new job). Leftover temporary files are removed."""
        manifest = self.path / JOB
        if manifest.is_file():
            self._check(json.loads(manifest.read_text()))
        else:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise VideoWriteError(f"cannot create {self.path}: {e.strerror or e}") from None
            atomic_write(manifest, json.dumps(self.job, indent=1).encode())
        for leftover in self.path.rglob(".*.tmp-*"):
            leftover.unlink(missing_ok=True)
        done = 0
        while (self.path / self.name(done, ".json")).is_file():
            done += 1
        return done

    def _check(self, found: dict) -> None:
        for key in sorted(set(found) | set(self.job)):
            if found.get(key) != self.job.get(key):
                raise UsageError(
                    f"{self.path} holds an unfinished run with another {key} "
                    f"({found.get(key)!r}, now {self.job.get(key)!r}): run the same command "
                    "as before to finish it, or add --overwrite to start again")

    @staticmethod
    def name(segment: int, suffix: str) -> str:
        return f"seg_{segment:06d}{suffix}"

    def file(self, segment: int, suffix: str) -> Path:
        return self.path / self.name(segment, suffix)

    def frames_dir(self) -> Path:
        return self.path / "frames"

    def finish_segment(self, segment: int, record: dict, carry: temporal.Carry | None) -> None:
        """Save the carry, then the record: from then on the segment counts as finished."""
        buffer = _npz_bytes(carry)
        atomic_write(self.file(segment, ".npz"), buffer)
        atomic_write(self.file(segment, ".json"), json.dumps(record).encode())

    def record(self, segment: int) -> dict:
        return json.loads(self.file(segment, ".json").read_text())

    def carry(self, segment: int) -> temporal.Carry | None:
        """The temporal carry after `segment` (None: before the first one)."""
        if segment < 0:
            return None
        with np.load(self.file(segment, ".npz")) as arrays:
            return temporal.Carry.from_arrays(arrays) if "L" in arrays.files else None

    def segment_video(self, segment: int) -> tuple[Path, Path]:
        """(temporary, final) paths of a segment's encoded frames."""
        final = self.file(segment, ".mkv")
        return temporary(final), final

    def seal_video(self, tmp: Path, final: Path) -> None:
        fsync_file(tmp)
        os.replace(tmp, final)

    def mark_done(self, frames: int) -> None:
        """The output, `frames` frames, is complete and about to be renamed into place."""
        atomic_write(self.path / DONE, json.dumps({"frames": frames}).encode())

    def done(self) -> int | None:
        """The frame count `mark_done` recorded, or None."""
        mark = self.path / DONE
        return json.loads(mark.read_text())["frames"] if mark.is_file() else None

    def remove(self) -> None:
        """Delete the directory: renamed out of the way first (one atomic step), then
        deleted under its temporary name."""
        if not self.path.exists():
            return
        trash = temporary(self.path)
        shutil.rmtree(trash, ignore_errors=True)
        try:
            os.replace(self.path, trash)
        except OSError as e:
            raise VideoWriteError(f"cannot remove {self.path}: {e.strerror or e}") from None
        shutil.rmtree(trash, ignore_errors=True)


def _npz_bytes(carry: temporal.Carry | None) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **(carry.to_arrays() if carry is not None else {}))
    return buffer.getvalue()
