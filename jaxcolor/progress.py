"""Telling people how far a long job is: a one-line progress bar with rate and ETA, and the
duration format the training console shares with it."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """A one-line progress bar with rate and ETA, redrawn at most every `interval` seconds."""

    def __init__(self, label: str, stream=None, width: int = 30, interval: float = 0.1,
                 unit: str = "/s"):
        self.label, self.width, self.interval, self.unit = label, width, interval, unit
        self.stream = sys.stderr if stream is None else stream
        self._started = self._drawn = time.time()
        self._active = False

    def __call__(self, done: int, total: int) -> None:
        now = time.time()
        if done < total and now - self._drawn < self.interval:
            return
        self._drawn, self._active = now, True
        filled = int(self.width * done / max(total, 1))
        rate = done / max(now - self._started, 1e-9)
        eta = f" ETA {format_duration((total - done) / rate)}" if 0 < done < total else ""
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{done}/{total} {100 * done / max(total, 1):3.0f}% "
                          f"{rate:.1f}{self.unit}{eta}   ")
        self.stream.flush()

    def close(self) -> None:
        if self._active:
            self.stream.write("\n")
            self.stream.flush()
            self._active = False


def format_duration(seconds: float) -> str:
    """12m05s, or 3h07m past an hour: how long is left, to the precision anyone waits for."""
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"
