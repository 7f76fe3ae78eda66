"""The on-disk dataset format: a directory of memory-mapped uint8 shards.

Layout of a records directory::

    manifest.json      format version, image size, count, encoding, shards, provenance
    L-00000.npy        uint8 [n, H, W]      OpenCV 8-bit L   (see jaxcolor.color.encode_lab8)
    ab-00000.npy       uint8 [n, H, W, 2]   OpenCV 8-bit a,b
    ...
    stats.npy          structured [count]   per-record statistics (jaxcolor.data.stats.STATS_DTYPE)
    ab_hist.npy        uint32 [count, 484]  per-record ab histograms (jaxcolor.data.prior); absent
                                            in sets written before them, which still open

Shards are read with `np.load(mmap_mode="r")`: opening a directory costs a few file headers
and reading a batch touches only the pages of the records in it, so datasets far larger than
RAM work. `RecordsWriter` fills a hidden temporary directory and renames it into place at the
end (an atomic rename on POSIX), so an interrupted ingestion never leaves a directory that
opens as complete. `Records` validates everything on open and names the file at fault.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from jaxcolor.data import prior as prior_lib
from jaxcolor.data import stats as stats_lib
from jaxcolor.errors import RunError

FORMAT_VERSION = 1
ENCODING = "opencv-lab8"  # L8 = L*255/100, a8 = a+128, b8 = b+128 (jaxcolor.color)
MANIFEST = "manifest.json"
STATS_FILE = "stats.npy"
DEFAULT_SHARD_BYTES = 128 * 2**20


class RecordsError(RunError, ValueError):
    """A records directory is missing, incomplete or inconsistent. The message names the file."""


def shard_names(index: int) -> tuple[str, str]:
    return f"L-{index:05d}.npy", f"ab-{index:05d}.npy"


@dataclasses.dataclass(frozen=True)
class Manifest:
    """What `manifest.json` holds. `source` and `skipped` record how the set was made."""

    height: int
    width: int
    count: int
    shards: tuple[dict, ...]  # each {"L": name, "ab": name, "count": n}
    source: dict
    skipped: tuple[dict, ...] = ()  # each {"path": ..., "reason": ...}
    val_every: int = 0  # record i is held out for validation iff val_every and i % val_every == 0
    version: int = FORMAT_VERSION
    encoding: str = ENCODING

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d["shards"], d["skipped"] = list(self.shards), list(self.skipped)
        return json.dumps(d, indent=1)

    @classmethod
    def read(cls, directory: Path) -> "Manifest":
        path = directory / MANIFEST
        if not path.is_file():
            raise RecordsError(f"{path}: missing; not a records directory (make one with "
                               "`jaxcolor ingest`)")
        try:
            raw = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RecordsError(f"{path}: unreadable manifest ({e})") from None
        if not isinstance(raw, dict):
            raise RecordsError(f"{path}: manifest must be a JSON object")
        version = raw.get("version")
        if version != FORMAT_VERSION:
            raise RecordsError(f"{path}: unknown format version {version!r} "
                               f"(this jaxcolor reads version {FORMAT_VERSION})")
        if raw.get("encoding") != ENCODING:
            raise RecordsError(f"{path}: unknown encoding {raw.get('encoding')!r}, "
                               f"expected {ENCODING!r}")
        try:
            m = cls(height=int(raw["height"]), width=int(raw["width"]), count=int(raw["count"]),
                    shards=tuple({"L": str(s["L"]), "ab": str(s["ab"]), "count": int(s["count"])}
                                 for s in raw["shards"]),
                    source=dict(raw.get("source", {})),
                    skipped=tuple(raw.get("skipped", ())),
                    val_every=int(raw.get("val_every", 0)))
        except (KeyError, TypeError, ValueError) as e:
            raise RecordsError(f"{path}: malformed manifest field ({type(e).__name__}: {e})") from None
        total = sum(s["count"] for s in m.shards)
        if total != m.count:
            raise RecordsError(f"{path}: shard counts add up to {total} but count is {m.count}")
        if m.val_every < 0:
            raise RecordsError(f"{path}: val_every must be >= 0, got {m.val_every}")
        if m.height <= 0 or m.width <= 0:
            raise RecordsError(f"{path}: invalid image size {m.height}x{m.width}")
        return m


NPY_MAGIC = b"\x93NUMPY"


def _load_npy(path: Path, what: str, mmap_mode: str | None = None) -> np.ndarray:
    """`np.load` that names `path` and the damage in one line: numpy's own message for a
    damaged header is often a misleading hint about pickles."""
    try:
        with open(path, "rb") as f:
            magic = f.read(len(NPY_MAGIC))
        if magic != NPY_MAGIC:
            raise RecordsError(f"{path}: not a .npy file (header starts {magic!r}, expected "
                               f"{NPY_MAGIC!r}); the {what} is damaged")
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except RecordsError:
        raise
    except Exception as e:  # numpy raises ValueError/OSError/EOFError for damaged files
        raise RecordsError(f"{path}: unreadable or truncated {what} ({e})") from None


def _open_shard(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """Memory-map one shard and check it is exactly what the manifest promises."""
    if not path.is_file():
        raise RecordsError(f"{path}: shard missing")
    arr = _load_npy(path, "shard", mmap_mode="r")
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8:
        raise RecordsError(f"{path}: dtype {getattr(arr, 'dtype', '?')}, expected uint8")
    if arr.shape != shape:
        raise RecordsError(f"{path}: shape {arr.shape}, manifest says {shape}")
    return arr


class Records:
    """Read-only view of a records directory; validates on open.

    Random access is cheap: `read(indices)` gathers a batch with one sorted fancy-index read
    per shard. Memmaps are opened lazily per process and dropped when pickled, so a `Records`
    can be handed to Grain worker processes.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise RecordsError(f"{self.directory}: records directory does not exist")
        self.manifest = Manifest.read(self.directory)
        self._offsets = np.cumsum([0] + [s["count"] for s in self.manifest.shards])
        self._shards: list[tuple[np.ndarray, np.ndarray]] | None = None
        self._open()  # validate every shard now, not at the first batch
        self.stats = self._read_stats()

    # -- validation ---------------------------------------------------------------------

    def _open(self) -> list[tuple[np.ndarray, np.ndarray]]:
        if self._shards is None:
            h, w = self.manifest.height, self.manifest.width
            self._shards = [
                (_open_shard(self.directory / s["L"], (s["count"], h, w)),
                 _open_shard(self.directory / s["ab"], (s["count"], h, w, 2)))
                for s in self.manifest.shards
            ]
        return self._shards

    def _read_stats(self) -> np.ndarray:
        path = self.directory / STATS_FILE
        if not path.is_file():
            raise RecordsError(f"{path}: statistics file missing (re-run ingestion)")
        stats = _load_npy(path, "statistics file")
        if stats.dtype != stats_lib.STATS_DTYPE:
            raise RecordsError(f"{path}: fields {stats.dtype.names}, expected "
                               f"{stats_lib.STATS_DTYPE.names}")
        if stats.shape != (len(self),):
            raise RecordsError(f"{path}: {stats.shape[0] if stats.ndim else 0} rows for "
                               f"{len(self)} records")
        return stats

    # -- access -------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.manifest.count

    def split(self, name: str) -> np.ndarray:
        """Record indices of a split: "train", "val" or "all".

        The held-out validation split is deterministic and recorded in the manifest
        (`val_every`): every k-th record, so it spans the whole set and never overlaps train.
        """
        every = self.manifest.val_every
        idx = np.arange(len(self), dtype=np.int64)
        if name == "all":
            return idx
        is_val = (idx % every == 0) if every else np.zeros(len(self), bool)
        if name == "val":
            return idx[is_val]
        if name == "train":
            return idx[~is_val]
        raise ValueError(f"unknown split {name!r}; expected 'train', 'val' or 'all'")

    @property
    def image_size(self) -> tuple[int, int]:
        return self.manifest.height, self.manifest.width

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """One record as (L8 [H, W], ab8 [H, W, 2]) copies."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"record {index} out of range for {len(self)} records")
        index %= len(self)
        shard = int(np.searchsorted(self._offsets, index, side="right") - 1)
        L, ab = self._open()[shard]
        local = index - self._offsets[shard]
        return np.array(L[local]), np.array(ab[local])

    def read(self, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A batch as (L8 [n, H, W], ab8 [n, H, W, 2]), in the order of `indices`.

        Reads each shard once with sorted indices (sequential page access), then puts the
        rows back in the requested order. Callers that do not care about order inside a
        batch can pass sorted indices and skip that reordering entirely.
        """
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"record indices out of range for {len(self)} records")
        h, w = self.image_size
        L_out = np.empty((idx.size, h, w), np.uint8)
        ab_out = np.empty((idx.size, h, w, 2), np.uint8)
        order = np.argsort(idx, kind="stable")
        sorted_idx = idx[order]
        shard_of = np.searchsorted(self._offsets, sorted_idx, side="right") - 1
        shards = self._open()
        for shard in np.unique(shard_of):
            sel = shard_of == shard
            local = sorted_idx[sel] - self._offsets[shard]
            L, ab = shards[shard]
            L_out[order[sel]] = L[local]
            ab_out[order[sel]] = ab[local]
        return L_out, ab_out

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_shards"] = None  # memmaps are reopened in the receiving process
        return state

    def ab_histograms(self) -> np.ndarray:
        """uint32 [count, BINS]: each record's pixel counts per ab bin (`data.prior`)."""
        return prior_lib.record_histograms(self)

    def __repr__(self) -> str:
        h, w = self.image_size
        return f"Records({str(self.directory)!r}, count={len(self)}, size={h}x{w})"


class RecordsWriter:
    """Writes a records directory atomically.

    Usage::

        with RecordsWriter(out, height=224, width=224, source={...}) as w:
            w.add(L8_batch, ab8_batch)      # any number of times
            w.skip(path, reason)            # optional: inputs that were not usable
        # `out` appears only here, complete

    Records are buffered up to one shard (`shard_bytes`, 128 MiB by default), so memory stays
    bounded however many records are written. Statistics are computed per batch by
    `jaxcolor.data.stats.compute_stats` (data-parallel over the local devices), ab histograms
    by `jaxcolor.data.prior.histograms` (the colour prior's raw material). If the block
    raises, the temporary directory is removed and `out` is left untouched.
    """

    def __init__(self, directory: str | os.PathLike, height: int, width: int, *,
                 source: dict[str, Any] | None = None, shard_bytes: int = DEFAULT_SHARD_BYTES,
                 overwrite: bool = False, val_every: int = 0, stats_fn=None):
        self.directory = Path(directory)
        if self.directory.exists() and not overwrite:
            raise RecordsError(f"{self.directory}: already exists (choose another --out or "
                               "delete it)")
        self.height, self.width = int(height), int(width)
        self.source = dict(source or {})
        record_bytes = self.height * self.width * 3
        self.shard_size = max(1, shard_bytes // record_bytes)
        self._stats_fn = stats_fn or stats_lib.compute_stats
        self._overwrite = overwrite
        self.val_every = int(val_every)
        self._tmp = self.directory.parent / f".{self.directory.name}.tmp-{os.getpid()}"
        self._buffer_L: list[np.ndarray] = []
        self._buffer_ab: list[np.ndarray] = []
        self._buffered = 0
        self._shards: list[dict] = []
        self._stats: list[np.ndarray] = []
        self._hists: list[np.ndarray] = []
        self._skipped: list[dict] = []
        self._started = time.time()

    @property
    def count(self) -> int:
        return sum(s["count"] for s in self._shards) + self._buffered

    @property
    def skipped(self) -> list[dict]:
        return list(self._skipped)

    def __enter__(self) -> "RecordsWriter":
        if self._tmp.exists():
            shutil.rmtree(self._tmp)
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir()
        return self

    def add(self, L8: np.ndarray, ab8: np.ndarray, stats: np.ndarray | None = None) -> None:
        """Append a batch: L8 uint8 [n, H, W], ab8 uint8 [n, H, W, 2]."""
        L8, ab8 = np.asarray(L8), np.asarray(ab8)
        n = L8.shape[0]
        if L8.dtype != np.uint8 or ab8.dtype != np.uint8:
            raise RecordsError(f"{self.directory}: records must be uint8, got {L8.dtype}/{ab8.dtype}")
        if L8.shape != (n, self.height, self.width) or ab8.shape != (n, self.height, self.width, 2):
            raise RecordsError(f"{self.directory}: batch shapes {L8.shape} / {ab8.shape} do not "
                               f"match image size {self.height}x{self.width}")
        self._stats.append(self._stats_fn(L8, ab8) if stats is None else stats)
        self._hists.append(prior_lib.histograms(ab8))
        start = 0
        while start < n:
            take = min(n - start, self.shard_size - self._buffered)
            self._buffer_L.append(L8[start:start + take])
            self._buffer_ab.append(ab8[start:start + take])
            self._buffered += take
            start += take
            if self._buffered == self.shard_size:
                self._flush()

    def skip(self, path: str, reason: str) -> None:
        """Record an input that could not be used; it is listed in the manifest."""
        self._skipped.append({"path": str(path), "reason": str(reason)})

    def _flush(self) -> None:
        if not self._buffered:
            return
        L_name, ab_name = shard_names(len(self._shards))
        np.save(self._tmp / L_name, np.concatenate(self._buffer_L))
        np.save(self._tmp / ab_name, np.concatenate(self._buffer_ab))
        self._shards.append({"L": L_name, "ab": ab_name, "count": self._buffered})
        self._buffer_L, self._buffer_ab, self._buffered = [], [], 0

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            return
        try:
            self._flush()
            if not self._shards:
                raise RecordsError(f"{self.directory}: no records were written "
                                   f"({len(self._skipped)} inputs skipped)")
            stats = np.concatenate(self._stats).astype(stats_lib.STATS_DTYPE)
            np.save(self._tmp / STATS_FILE, stats)
            np.save(self._tmp / prior_lib.HIST_FILE, np.concatenate(self._hists))
            manifest = Manifest(height=self.height, width=self.width, count=len(stats),
                                shards=tuple(self._shards),
                                source={**self.source,
                                        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                        "seconds": round(time.time() - self._started, 3)},
                                skipped=tuple(self._skipped), val_every=self.val_every)
            (self._tmp / MANIFEST).write_text(manifest.to_json())
            _fsync_dir_files(self._tmp)
            if self.directory.exists() and self._overwrite:
                shutil.rmtree(self.directory)
            os.replace(self._tmp, self.directory)
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise


def _fsync_dir_files(directory: Path) -> None:
    """Flush every file so the rename never publishes data still in the page cache only."""
    for p in directory.iterdir():
        with open(p, "rb") as f:
            os.fsync(f.fileno())
