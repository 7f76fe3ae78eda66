"""One run per output at a time, and what killed runs left beside the output.

Two runs writing the same output would delete each other's temporary files (each removes
the leftovers it finds) and interleave their segments. `OutputLock` holds an exclusive
`flock` on `.OUTPUT.lock`, beside the output, for the whole run: a second run stops at once
with one line naming the output and the process that holds it. The kernel drops the lock
of a process that dies (kill -9, power loss), so a lock file left by a dead run is simply
taken over; a finished run removes its lock file.

Temporary names: a file or folder being written as PATH is first `.PATH.tmp-PID`
(`temporary`). A run killed at the wrong moment leaves one behind the output: the film it
was assembling (a film-sized file), or the work directory it was deleting. Under the lock,
`remove_stale` deletes those of processes that are gone (and this process's own, left by
an earlier call that failed: nothing of this process writes them while it holds the lock).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from pathlib import Path

from jaxcolor.errors import UsageError
from jaxcolor.inference.video.io import VideoWriteError


class OutputBusyError(UsageError):
    """Another run is writing the same output (nothing ran)."""


def temporary(path: Path) -> Path:
    """Where this process writes `path` before renaming it into place."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


class OutputLock:
    """An exclusive lock on `output` for one run (a context manager)."""

    def __init__(self, output: Path):
        self.output = output
        self.path = output.with_name(f".{output.name}.lock")
        self._fd: int | None = None

    def __enter__(self) -> "OutputLock":
        while self._fd is None:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise OutputBusyError(f"{self.output}: another run (pid {holder}) is writing "
                                      "it; wait for it to end, or choose another output") \
                    from None
            if _same_file(fd, self.path):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                self._fd = fd
            else:  # the run that held it finished and removed it meanwhile: lock anew
                os.close(fd)
        return self

    def __exit__(self, *exc) -> None:
        # Unlinked before it is unlocked: a run waiting on this file then sees that it is
        # no longer the lock file, and locks a new one (`_same_file`).
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise VideoWriteError(f"cannot write {self.path}: {e.strerror or e}") from None


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def remove_stale(output: Path, work: Path) -> None:
    """Delete the temporaries of `output` and of its work directory `work` (see the module
    docstring) whose process is gone, or is this one. Call it holding the lock."""
    names = "|".join(re.escape(p.name) for p in (output, work))
    pattern = re.compile(rf"\.(?:{names})\.tmp-(\d+)")
    for path in output.parent.iterdir() if output.parent.is_dir() else ():
        match = pattern.fullmatch(path.name)
        if match and not _alive_elsewhere(int(match.group(1))):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _alive_elsewhere(pid: int) -> bool:
    """Whether `pid` is a running process other than this one."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
