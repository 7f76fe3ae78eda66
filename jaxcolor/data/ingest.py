"""Make a records directory (`jaxcolor.data.records`) from the Kaggle .npy layout or photos.

The command line is `jaxcolor ingest kaggle|images` (`jaxcolor.cli.ingest`).

`kaggle` reads the "Image Colorization" dataset as published: L as uint8 [N, H, W] in one
file and ab as uint8 [n, H, W, 2] split over several files whose counts add up to N (both in
OpenCV's 8-bit Lab, the records' own encoding). It streams through memory maps in chunks, so
memory stays flat however large N is, and checks every input before writing anything.

`images` takes a directory (searched recursively), a glob pattern or one file; photos of any
format, size and aspect are decoded by `jaxcolor.data.images` in worker processes, resized
(short side) and centre-cropped to `--size`. Records follow the sorted paths, whatever the
worker count. Files that cannot be decoded are skipped and listed, with the reason, in the
summary and in the manifest; the run goes on.

Both report progress through a callback and return a summary: records written, inputs
skipped, how many records the default filter (`jaxcolor.data.stats.select`) would remove per
rule (for information: the records keep every image; training applies the configured
filter), time and throughput. Every `--val_every`-th record is the held-out validation
split (0: none).
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import itertools
import multiprocessing
import os
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from jaxcolor.data import images
from jaxcolor.data import records as records_lib
from jaxcolor.data import stats as stats_lib
from jaxcolor.errors import RunError, UsageError

Progress = Callable[[int, int], None]  # (done, total)


class IngestError(RunError, ValueError):
    """The inputs cannot be ingested as given; the message names the file and the problem."""


# --------------------------------------------------------------------------------------
# Summary.
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class IngestSummary:
    """What an ingestion produced; `format()` is the text the CLI prints."""

    out: Path
    records: int
    train: int
    val: int
    skipped: tuple[dict, ...]
    filter_pass: int  # records the default filter keeps
    filter_removed: dict[str, int]  # per rule; empty when every record fails
    seconds: float

    @property
    def records_per_second(self) -> float:
        return self.records / max(self.seconds, 1e-9)

    def format(self, max_skipped_lines: int = 20) -> str:
        lines = [f"wrote {self.records} records to {self.out} in {self.seconds:.1f} s "
                 f"({self.records_per_second:.1f} records/s): {self.train} train, {self.val} val"]
        lines.append(f"skipped {len(self.skipped)} inputs" + (":" if self.skipped else ""))
        for entry in self.skipped[:max_skipped_lines]:
            lines.append(f"  {entry['path']}: {entry['reason']}")
        if len(self.skipped) > max_skipped_lines:
            lines.append(f"  ... and {len(self.skipped) - max_skipped_lines} more "
                         f"(all listed in {self.out / records_lib.MANIFEST})")
        removed = ", ".join(f"{k} {v}" for k, v in self.filter_removed.items())
        if self.filter_pass:
            lines.append(f"default filter (informational; the records keep every image): "
                         f"{self.filter_pass} pass; removed by {removed}")
        else:
            lines.append("default filter: no record passes it; train with lower thresholds "
                         "(config.data.filter)")
        return "\n".join(lines)


def summarize(out: str | os.PathLike, seconds: float) -> IngestSummary:
    """Re-open the finished directory (validating it) and count splits, skips and filtering."""
    recs = records_lib.Records(out)
    try:
        kept, removed = stats_lib.select(recs.stats, stats_lib.FilterThresholds())
        filter_pass = len(kept)
    except stats_lib.EmptyFilterError:
        filter_pass, removed = 0, {}
    return IngestSummary(out=recs.directory, records=len(recs), train=len(recs.split("train")),
                         val=len(recs.split("val")), skipped=recs.manifest.skipped,
                         filter_pass=filter_pass, filter_removed=removed, seconds=seconds)


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise UsageError(f"--{name} must be >= 1, got {value}")


def _check_val_every(val_every: int) -> None:
    if val_every < 0:
        raise UsageError(f"--val_every must be >= 0 (0: no validation split), got {val_every}")


# --------------------------------------------------------------------------------------
# Kaggle layout.
# --------------------------------------------------------------------------------------


def _open_npy(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise IngestError(f"{path}: {what} file not found")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # numpy raises ValueError/OSError/EOFError for damaged files
        raise IngestError(f"{path}: not a readable .npy file ({e})") from None
    if arr.dtype != np.uint8:
        raise IngestError(f"{path}: dtype {arr.dtype}, expected uint8 ({what})")
    return arr


def open_kaggle(gray_path: str | os.PathLike,
                ab_paths: Sequence[str | os.PathLike]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Memory-map and cross-check the Kaggle files: (L [N, H, W], [ab_i [n_i, H, W, 2]])."""
    gray_path = Path(gray_path)
    if not ab_paths:
        raise IngestError("--ab: give at least one ab .npy file")
    gray = _open_npy(gray_path, "gray (L)")
    if gray.ndim != 3:
        raise IngestError(f"{gray_path}: shape {gray.shape}, expected [N, H, W]")
    h, w = gray.shape[1:]
    abs_ = []
    for p in map(Path, ab_paths):
        ab = _open_npy(p, "ab")
        if ab.ndim != 4 or ab.shape[1:] != (h, w, 2):
            raise IngestError(f"{p}: shape {ab.shape}, expected [n, {h}, {w}, 2] to match "
                              f"{gray_path} {gray.shape}")
        abs_.append(ab)
    counts = [len(ab) for ab in abs_]
    if sum(counts) != len(gray):
        per_file = ", ".join(f"{Path(p).name}: {n}" for p, n in zip(ab_paths, counts))
        raise IngestError(f"ab files hold {sum(counts)} records ({per_file}) but {gray_path} "
                          f"holds {len(gray)}")
    return gray, abs_


def _read_rows(parts: Sequence[np.ndarray], offsets: np.ndarray, start: int,
               stop: int) -> np.ndarray:
    """Rows [start, stop) of the concatenation of `parts`, copied out of the memory maps."""
    pieces = []
    for part, offset in zip(parts, offsets):
        lo, hi = max(start, offset), min(stop, offset + len(part))
        if lo < hi:
            pieces.append(part[lo - offset:hi - offset])
    return np.concatenate(pieces) if len(pieces) > 1 else np.array(pieces[0])


def ingest_kaggle(gray_path: str | os.PathLike, ab_paths: Sequence[str | os.PathLike],
                  out: str | os.PathLike, *, chunk: int = 256, val_every: int = 20,
                  overwrite: bool = False, shard_bytes: int = records_lib.DEFAULT_SHARD_BYTES,
                  progress: Progress | None = None) -> IngestSummary:
    """Kaggle .npy layout -> records at `out`, `chunk` records at a time (memory: O(chunk))."""
    _check_positive(chunk=chunk)
    _check_val_every(val_every)
    gray, abs_ = open_kaggle(gray_path, ab_paths)
    n, h, w = gray.shape
    offsets = np.cumsum([0] + [len(ab) for ab in abs_])[:-1]
    source = {"kind": "kaggle", "gray": str(gray_path), "ab": [str(p) for p in ab_paths]}
    started = time.time()
    writer = records_lib.RecordsWriter(out, h, w, source=source, val_every=val_every,
                                       overwrite=overwrite, shard_bytes=shard_bytes)
    with writer:
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            writer.add(np.array(gray[start:stop]), _read_rows(abs_, offsets, start, stop))
            if progress:
                progress(stop, n)
    return summarize(out, time.time() - started)


# --------------------------------------------------------------------------------------
# Folders of photos.
# --------------------------------------------------------------------------------------


def _decode_in_order(paths: Sequence[Path], decode: Callable, workers: int) -> Iterator:
    """Yield (path, record or ImageDecodeError) in the order of `paths`.

    With workers > 1, decoding runs in a pool of spawned processes (forking a process that
    has started JAX's threads can deadlock) with a bounded number of files in flight, so
    memory stays flat when decoding outpaces writing.
    """
    if workers <= 1:
        for path in paths:
            try:
                yield path, decode(path)
            except images.ImageDecodeError as e:
                yield path, e
        return
    context = multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context)
    try:
        todo = iter(paths)
        pending = collections.deque((path, pool.submit(decode, path))
                                    for path in itertools.islice(todo, 4 * workers))
        while pending:
            path, future = pending.popleft()
            following = next(todo, None)
            if following is not None:
                pending.append((following, pool.submit(decode, following)))
            try:
                yield path, future.result()
            except images.ImageDecodeError as e:
                yield path, e
            except concurrent.futures.process.BrokenProcessPool:
                raise IngestError(f"{path}: a decoding worker died (out of memory, or a "
                                  "decoder crashed on this file); re-run with --workers=1 to "
                                  "see which file") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def ingest_images(src: str | os.PathLike, out: str | os.PathLike, *, size: int = 256,
                  workers: int | None = None, val_every: int = 20, batch: int = 64,
                  max_pixels: int | None = None, overwrite: bool = False,
                  shard_bytes: int = records_lib.DEFAULT_SHARD_BYTES,
                  progress: Progress | None = None) -> IngestSummary:
    """Photos under `src` -> size x size records at `out`; undecodable files are skipped.

    workers: decoding processes (default: all CPUs; <= 1 decodes in this process).
    batch: records per statistics batch (the writer computes statistics on the devices).
    max_pixels: refuse larger images (default `PIL.Image.MAX_IMAGE_PIXELS`).
    """
    _check_positive(size=size, batch=batch)
    _check_val_every(val_every)
    paths = images.find_images(src)
    workers = min((os.cpu_count() or 1) if workers is None else workers, len(paths))
    source = {"kind": "images", "src": str(src), "size": size, "files": len(paths)}
    started = time.time()
    writer = records_lib.RecordsWriter(out, size, size, source=source, val_every=val_every,
                                       overwrite=overwrite, shard_bytes=shard_bytes)
    decode = functools.partial(images.load_record, size=size, max_pixels=max_pixels)
    with writer:
        L_batch, ab_batch = [], []
        results = _decode_in_order(paths, decode, workers)
        for done, (path, result) in enumerate(results, 1):
            if isinstance(result, images.ImageDecodeError):
                writer.skip(path, result.reason)
            else:
                L_batch.append(result[0])
                ab_batch.append(result[1])
            if len(L_batch) == batch or (done == len(paths) and L_batch):
                writer.add(np.stack(L_batch), np.stack(ab_batch))
                L_batch, ab_batch = [], []
            if progress:
                progress(done, len(paths))
        if writer.count == 0:
            reasons = "; ".join(f"{e['path']}: {e['reason']}" for e in writer.skipped[:3])
            raise IngestError(f"{src}: none of the {len(paths)} files could be decoded "
                              f"({reasons}{'; ...' if len(paths) > 3 else ''})")
    return summarize(out, time.time() - started)
