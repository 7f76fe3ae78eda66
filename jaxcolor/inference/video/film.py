"""Colourise a film: `colorize_video` (what `jaxcolor video` runs).

In: a video file FFmpeg reads (through PyAV, `jaxcolor.inference.video.io`), or a folder
of numbered frames (any photo format, natural order of their names, `--fps`), as a
`jaxcolor.inference.video.sources.Source`. Out: a video file (.mp4, .mov, .mkv) with the
input's size, time stamps and audio streams (copied unchanged), or a folder of PNG frames.
Every frame keeps its own lightness, as a photo does: the colour comes from `Colorizer`
(batches, device compose, worker threads of `jaxcolor.inference.pipeline`), carried along
the motion by `jaxcolor.inference.video.temporal` so it does not flicker.

The film is done in segments (`jaxcolor.inference.video.segments`): an interrupted run,
rerun with the same command, goes on after the last finished segment (a video file entered
at the key frame before it), with the same frames an uninterrupted run gives. At the end
the output's frame count is checked against the frames decoded, and any frame the input
could not give is reported (exit status 1), never silently dropped. Memory stays bounded:
frames stream through the pipeline, a segment is encoded as it is coloured, and the film is
assembled packet by packet.

A kill at any moment leaves work the same command finishes, never a state that needs
--overwrite: one run per output at a time (`jaxcolor.inference.video.lock`), whose first
act is to delete what killed runs left beside the output; an output renamed into place by
a run killed before it could delete its work directory is recognised as complete.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import shutil
import time
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from jaxcolor.errors import UsageError
from jaxcolor.inference import files, pipeline
from jaxcolor.inference.colorizer import Colorizer
from jaxcolor.inference.video import io as video_io
from jaxcolor.inference.video import mux as video_mux
from jaxcolor.inference.video import temporal
from jaxcolor.inference.video.lock import OutputLock, remove_stale, temporary
from jaxcolor.inference.video.segments import WorkDir
from jaxcolor.inference.video.sources import Source

DEFAULT_SEGMENT_FRAMES = 240


@dataclasses.dataclass(frozen=True)
class Settings:
    """What changes the output besides the checkpoint and the colouriser's own flags."""

    codec: video_io.Codec = video_io.Codec()
    consistency: temporal.Consistency = temporal.Consistency()
    segment_frames: int = DEFAULT_SEGMENT_FRAMES  # rounded up to whole batches
    fps: Fraction = Fraction(24)  # of a folder of frames
    hints: tuple = ()  # `inference.hints.Hint`s with their frames: each holds through its shot


@dataclasses.dataclass
class Report:
    frames: int = 0  # frames in the output
    resumed: int = 0  # frames of earlier runs' segments
    missing: int = 0  # frames the input could not give (damaged)
    cuts: int = 0
    carried: float = 0.0  # mean weight of carried colour
    seconds: float = 0.0
    skipped: bool = False  # the output existed already
    notes: list[str] = dataclasses.field(default_factory=list)


# --------------------------------------------------------------------------------------
# Sinks: one segment at a time.
# --------------------------------------------------------------------------------------


class VideoSegment:
    """A segment's frames encoded into `seg_N.mkv` (renamed into place when complete)."""

    def __init__(self, work: WorkDir, segment: int, info: video_io.VideoInfo,
                 codec: video_io.Codec):
        self._work = work
        self._tmp, self._final = work.segment_video(segment)
        self._encoder = video_io.Encoder(self._tmp, info, codec)

    def write(self, rgb: np.ndarray, pts: int, name: str) -> None:
        self._encoder.write(rgb, pts)

    def close(self) -> list:
        stamps = self._encoder.close()
        self._work.seal_video(self._tmp, self._final)
        return stamps

    def abort(self) -> None:
        self._encoder.abort()
        self._tmp.unlink(missing_ok=True)


class FolderSegment:
    """A segment's frames written as PNGs into the work directory's `frames/`."""

    def __init__(self, work: WorkDir, segment: int, info, codec):
        self._dir = work.frames_dir()
        self._dir.mkdir(exist_ok=True)

    def write(self, rgb: np.ndarray, pts: int, name: str) -> None:
        files.save_image(rgb, self._dir / f"{name}.png")

    def close(self) -> list:
        return []

    def abort(self) -> None:
        pass


# --------------------------------------------------------------------------------------
# The run.
# --------------------------------------------------------------------------------------


def output_kind(output: Path) -> str:
    """"video" for a known container suffix, "folder" for a path without one."""
    suffix = output.suffix.lower()
    if suffix in video_io.CONTAINERS:
        return "video"
    if not suffix:
        return "folder"
    raise UsageError(f"--output {output}: choose a video ({', '.join(video_io.CONTAINERS)}) "
                     "or a folder for PNG frames (a path without a suffix)")


def check_output(source: Source, output: Path, kind: str, codec: video_io.Codec) -> None:
    """Refuse, before any work, outputs that would replace the input or that the container
    cannot hold."""
    if output.resolve() == source.info.path.resolve():
        raise UsageError(f"refusing to write {output}: it is the input")
    if kind == "video":
        if codec.name == "ffv1" and output.suffix.lower() != ".mkv":
            raise UsageError(f"--output {output}: FFV1 is stored in .mkv files")
        video_mux.check_audio(source.info, output.suffix.lower())


def job_identity(source: Source, output: Path, colorizer: Colorizer, settings: Settings,
                 segment_frames: int) -> dict:
    """Everything that changes the frames: a resumed run must match it exactly."""
    return {"input": source.identity, "output": str(output.resolve()),
            "checkpoint": {"directory": str(colorizer.directory), "step": colorizer.step},
            "colorizer": {"render_size": colorizer.render_size, "upsample": colorizer.upsample,
                          "backend": colorizer.backend, "compose": colorizer.compose,
                          "batch_size": colorizer.batch_size},
            "codec": dataclasses.asdict(settings.codec),
            "consistency": dataclasses.asdict(settings.consistency),
            "hints": [h.to_json() for h in settings.hints],
            "segment_frames": segment_frames}


def colorize_video(colorizer: Colorizer, source: Source, output: Path, settings: Settings, *,
                   workers: int | None = None, overwrite: bool = False,
                   progress: Callable[[int, int], None] = lambda done, total: None) -> Report:
    """Colourise `source` into `output` (see the module docstring); resumes a run that an
    interruption left in `OUTPUT.partial/`. Raises `RunError` after writing the output when
    frames of the input could not be decoded, `OutputBusyError` when another run is
    writing the same output."""
    kind = output_kind(output)
    check_output(source, output, kind, settings.codec)
    check_hints(source, settings.hints, str(output))
    batch = colorizer.batch_size
    segment_frames = max(1, -(-settings.segment_frames // batch)) * batch  # whole batches
    work = WorkDir(output, job_identity(source, output, colorizer, settings, segment_frames))
    report = Report(notes=_notes(source.info, settings.codec, kind))
    with OutputLock(output):
        remove_stale(output, work.path)
        if overwrite:
            work.remove()
        elif _complete(output, kind, work):
            work.remove()  # left by a run killed after its output was in place
            report.skipped = True
            return report
        segments = _colourise(colorizer, source, work, kind, settings, segment_frames,
                              workers, report, progress)
        _finish(work, source, output, kind, segments, report)
    return report


def _complete(output: Path, kind: str, work: WorkDir) -> bool:
    """Whether `output` is there and needs no more work: written by a run that ended (no
    work directory), or by one killed after it renamed the output into place (the work
    directory's done mark, with the output's frame count)."""
    if not _finished(output):
        return False
    if not work.path.exists():
        return True
    done = work.done()
    return done is not None and done == _frames_in(output, kind)


def _colourise(colorizer: Colorizer, source: Source, work: WorkDir, kind: str,
               settings: Settings, segment_frames: int, workers: int | None, report: Report,
               progress) -> int:
    """Colourise the frames after the finished segments, one segment at a time; returns
    how many segments are finished."""
    segment = work.open()
    finished = [work.record(k) for k in range(segment)]
    report.resumed = sum(r["frames"] for r in finished)
    stepper = temporal.TemporalColorizer(colorizer, settings.consistency,
                                         work.carry(segment - 1), threads=workers)
    started = time.perf_counter()
    try:
        frames = source.frames(report.resumed, finished[-1]["last_pts"] if finished else None)
        for first in frames:  # one segment per pass
            chunk = itertools.chain([first], itertools.islice(frames, segment_frames - 1))
            _run_segment(stepper, chunk, work, segment, source, kind, settings, workers,
                         report, progress)
            segment += 1
    finally:
        stepper.close()
        report.seconds = time.perf_counter() - started
        report.cuts, report.carried = stepper.cuts, stepper.mean_carried
    return segment


def _run_segment(stepper, chunk, work: WorkDir, segment: int, source: Source, kind: str,
                 settings: Settings, workers, report: Report, progress) -> None:
    """Colourise one segment's frames in order into its file(s), then mark it finished."""
    codec = settings.codec
    sink = (VideoSegment if kind == "video" else FolderSegment)(work, segment, source.info,
                                                                codec)
    area = source.info.width * source.info.height
    placed: dict[int, tuple] = {}
    for hint in settings.hints:
        placed[hint.frame] = placed.get(hint.frame, ()) + (hint,)
    jobs = (pipeline.Job(f"frame {name}", functools.partial(
        _with_extra, functools.partial(_hinted, load, placed.get(index, ())), (pts, name)),
        _pass_through, lambda: area) for index, pts, name, load in chunk)
    count, last_pts = 0, None
    try:
        for outcome in pipeline.process(stepper, jobs, workers=workers,
                                        read_errors=files.READ_ERRORS, finish_errors=()):
            if not outcome.ok:
                raise video_io.VideoReadError(
                    f"{source.info.path}: {outcome.job.label}: {outcome.error} ({segment} "
                    f"finished segments kept in {work.path})")
            rgb, (pts, name) = outcome.value
            sink.write(rgb, pts, name)
            count, last_pts = count + 1, pts
            progress(report.resumed + report.frames + count, source.info.frames)
        stamps = sink.close()
    except BaseException:
        sink.abort()
        raise
    work.finish_segment(segment, {"frames": count, "stamps": stamps, "last_pts": last_pts},
                        stepper.carry)
    report.frames += count


def _with_extra(load, extra):
    return load(), extra


def _hinted(load, hints: tuple):
    """A frame with the colour hints placed on it (`Photo.hints`)."""
    photo = load()
    return dataclasses.replace(photo, hints=hints) if hints else photo


def check_hints(source: Source, hints: tuple, where: str) -> None:
    """Refuse, before any work, a hint on a frame the film lacks or outside the picture."""
    from jaxcolor.inference.hints import HintError, check_inside

    info = source.info
    for hint in hints:
        if hint.frame is None or hint.frame >= info.frames:
            raise HintError(f"{where}: a hint on frame {hint.frame}, but {info.path} has "
                            f"frames 0..{info.frames - 1}")
    check_inside(list(hints), info.width, info.height, f"{where}: hints")


def _pass_through(rgb, extra):
    return rgb, extra


def _finish(work: WorkDir, source: Source, output: Path, kind: str, segments: int,
            report: Report) -> None:
    """Assemble the output from the finished segments, check its frame count, and only
    then give it its name; report frames the input could not give."""
    records = [work.record(k) for k in range(segments)]
    written = sum(r["frames"] for r in records)
    info = source.info
    if not written:
        raise video_io.VideoReadError(f"{info.path}: not one frame could be decoded")
    if kind == "video":
        tmp = temporary(output)
        try:
            video_mux.assemble(tmp, output.suffix, [(work.file(k, ".mkv"), r["stamps"])
                                                   for k, r in enumerate(records)], info)
            found = video_mux.count_frames(tmp)
            if found != (written, info.width, info.height):
                raise video_io.VideoWriteError(
                    f"{output}: assembled {found[0]} frames of {found[1]}x{found[2]}, expected "
                    f"{written} of {info.width}x{info.height} (segments kept in {work.path})")
            video_io.fsync_file(tmp)
            _clear(output)
            work.mark_done(written)
            os.replace(tmp, output)
        finally:
            tmp.unlink(missing_ok=True)
    else:
        found = _frames_in(work.frames_dir(), kind)
        if found != written:
            raise video_io.VideoWriteError(f"{work.frames_dir()}: {found} frames, expected "
                                           f"{written}")
        _clear(output)
        work.mark_done(written)
        os.replace(work.frames_dir(), output)
    work.remove()
    report.frames, report.missing = written, max(0, info.frames - written)
    if report.missing:
        raise video_io.VideoReadError(
            f"{info.path}: {report.missing} of {info.frames} frames could not be decoded "
            f"(damaged); {output} has the other {written}, each at its own time stamp")


def _finished(output: Path) -> bool:
    """An output there already: a file, or a folder with something in it."""
    return output.is_file() or (output.is_dir() and any(output.iterdir()))


def _frames_in(path: Path, kind: str) -> int | None:
    """Frames of a written output: a film's video packets, or a folder's PNG files (None:
    not a film)."""
    if kind == "folder":
        return sum(1 for _ in path.glob("*.png"))
    try:
        return video_mux.count_frames(path)[0]
    except video_io.VideoInputError:
        return None


def _clear(output: Path) -> None:
    """Make room for the output (an empty folder, or the old output with --overwrite, or
    the output of a run that is being resumed)."""
    if output.is_dir() and not output.is_symlink():
        shutil.rmtree(output)
    elif output.exists() or output.is_symlink():
        output.unlink()


def _notes(info: video_io.VideoInfo, codec: video_io.Codec, kind: str) -> list[str]:
    """What a person should know about how this input is handled."""
    notes = []
    if info.bit_depth > 8:
        notes.append(f"{info.bit_depth}-bit source ({info.pix_fmt}): coloured and written at "
                     "8 bits per channel")
    if info.variable:
        notes.append("variable frame rate: every frame keeps its own time stamp")
    if kind == "video" and codec.name != "ffv1" and not codec.lossless and (
            info.width % 2 or info.height % 2):
        notes.append(f"odd size {info.width}x{info.height}: encoded 4:4:4 to keep it exactly")
    return notes
