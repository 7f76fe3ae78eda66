"""Colourise a planned list of files: decode ahead, batch through G, write behind.

`run` is the loop behind `jaxcolor colorize`: worker threads decode the next photos and
write finished ones while the main thread runs the network; at most one chunk of outputs
waits to be written, so memory stays bounded whatever the number of files. A file that
cannot be read, coloured or written is reported in the `Summary` and the rest still run.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time
from collections import deque
from pathlib import Path
from typing import Callable, Iterable, Iterator

from jaxcolor.inference import files
from jaxcolor.inference.colorizer import Colorizer

CHUNK_PIXELS = 2**27  # decoded pixels held at once (plus lookahead), whatever the batch size
COLORIZE_ERRORS = (ValueError, MemoryError, RuntimeError)  # RuntimeError: XLA out of memory


@dataclasses.dataclass
class Summary:
    done: int = 0
    skipped: int = 0
    failures: list[files.Failure] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def format(self, output: Path) -> str:
        rate = self.done / max(self.seconds, 1e-9)
        lines = [f"failed: {f.label}: {f.reason}" for f in self.failures]
        skipped = (f", skipped {self.skipped} existing (--overwrite to redo)"
                   if self.skipped else "")
        lines.append(f"done {self.done}, failed {len(self.failures)}{skipped} in "
                     f"{self.seconds:.1f} s ({rate:.2f} images/s); outputs in {output}")
        return "\n".join(lines)


def _reason(e: BaseException) -> str:
    return getattr(e, "reason", None) or str(e) or type(e).__name__


def _lookahead(pool, fn, items: Iterable, ahead: int) -> Iterator:
    """(item, future of fn(item)) in order, with at most `ahead` running ahead."""
    queue = deque()
    for item in items:
        queue.append((item, pool.submit(fn, item)))
        if len(queue) > ahead:
            yield queue.popleft()
    while queue:
        yield queue.popleft()


def run(colorizer: Colorizer, planned: list[tuple[files.Item, Path]], *, overwrite: bool,
        workers: int, progress: Callable[[int, int], None], summary: Summary) -> Summary:
    """Colourise `planned` (item, output path) pairs; fills and returns `summary`.

    Worker threads decode the next photos and write finished ones while the main thread runs
    the network; at most one chunk of outputs waits to be written, so memory stays bounded.
    """
    todo = [(item, out) for item, out in planned if overwrite or not out.exists()]
    summary.skipped += len(planned) - len(todo)
    started = time.perf_counter()

    def fail(item: files.Item, reason: str) -> None:
        summary.failures.append(files.Failure(item.label, reason))
        progress(summary.done + len(summary.failures), len(todo))

    def colour(chunk) -> list:
        """Outputs (or the exception) per photo; a failing batch is retried one by one."""
        try:
            return colorizer.colorize_photos([photo for _, _, photo in chunk])
        except COLORIZE_ERRORS as e:
            return [e] if len(chunk) == 1 else [o for c in chunk for o in colour([c])]

    def settle(pending) -> None:
        for item, out, future in pending:
            error = future.exception()
            if error is not None:
                fail(item, f"cannot write {out}: {_reason(error)}")
            else:
                summary.done += 1
                progress(summary.done + len(summary.failures), len(todo))

    def flush(pool, chunk, pending) -> list:
        outs = colour(chunk)
        settle(pending)
        submitted = []
        for (item, out, _), pixels in zip(chunk, outs):
            if isinstance(pixels, BaseException):
                fail(item, _reason(pixels))
            else:
                submitted.append((item, out, pool.submit(files.save_image, pixels, out)))
        return submitted

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        chunk, pixels, pending = [], 0, []
        loads = _lookahead(pool, lambda pair: pair[0].load(), todo, ahead=colorizer.batch_size)
        for (item, out), future in loads:
            try:
                photo = future.result()
            except files.READ_ERRORS as e:
                fail(item, _reason(e))
                continue
            chunk.append((item, out, photo))
            pixels += photo.pixels.size
            if len(chunk) == colorizer.batch_size or pixels >= CHUNK_PIXELS:
                pending = flush(pool, chunk, pending)
                chunk, pixels = [], 0
        settle(flush(pool, chunk, pending) if chunk else pending)
    summary.seconds = time.perf_counter() - started
    return summary
