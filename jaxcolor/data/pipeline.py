"""Input pipeline: records -> filtered index subset -> shuffled batches -> global jax.Array.

One training step's data, per JAX process::

    split indices ──select──> filtered ──[p::P]──> this process's shard
      ──permutation per epoch (seed, process, epoch)──> endless stream ──cut──> index batch
      ──Records.read(sorted)──> crop (rng from (seed, process, step))──> uint8 dict + flip flags
      ──make_global_batch──> one jax.Array per key, sharded over the mesh's `data` axis
      ──stats.prepare_batch (inside the jitted step)──> mirrored where flagged, normalised

Why it is built this way (figures measured with benchmarks/input_pipeline.py on 2 CPU cores):

* Grain works on indices, never on records. Reading a record per `__getitem__` costs ~10x
  one sorted fancy-index read per batch, so an element of the Grain dataset is a whole batch:
  `grain.MapDataset.source(_EpochBatches)` yields the step's record indices and a
  `map_with_index` reads and augments them. Grain still provides what we need from it:
  the `DatasetIterator` whose `get_state()/set_state()` (and `grain.checkpoint.CheckpointSave/
  CheckpointRestore` through Orbax) resume a run exactly, read-ahead threads and optional
  worker processes (`mp_prefetch`).
* Shuffle, repeat and batch happen in numpy on whole epochs (`_EpochBatches`). Grain's own
  `range().shuffle().repeat().batch()` gives the same semantics but spends ~1.5 ms per batch
  of 64 on per-element index arithmetic, as long as reading the batch itself.
* Everything random is a pure function of (seed, process, epoch or step). A batch is therefore
  the same with 0 or N worker processes and after a restore, and no RNG state needs saving.
* Each epoch is a fresh permutation and the stream runs on across epoch boundaries, so no
  record is ever dropped by batching; a batch may hold the tail of one epoch and the head of
  the next. `PipelineInfo.batches_per_epoch` is therefore fractional.
* Records stay uint8 until they are on the device (`stats.normalize` inside the jitted step).
* The horizontal flip is the expensive part on the host: numpy mirrors an axis element by
  element, so flipping half of a 224^2 batch costs about twice reading it. Worker processes
  (`num_workers`) spread that over cores, but each ~10 MB batch then crosses a process
  boundary; on 2 cores they are slower than the in-process read-ahead threads.

Held-out validation (`make_eval_dataset`) reads a split once, in index order, centre-cropped,
with the last batch padded (repeating the last record) and a boolean `mask` marking the real
rows, so every process yields the same number of batches and metrics can ignore the padding.
"""

from __future__ import annotations

import dataclasses
import functools
import sys

import grain
import jax
import numpy as np
from absl import flags, logging
from jax.sharding import Mesh

from jaxcolor import sharding
from jaxcolor.data import stats as stats_lib
from jaxcolor.data.records import Records
from jaxcolor.errors import UsageError

# First element of every seed tuple, so that the shuffle and the augmentation never share a
# random stream even for equal (seed, process, epoch == step).
_SHUFFLE, _AUGMENT = 0, 1


class PipelineError(UsageError):
    """The pipeline cannot be built as configured. The message names the argument at fault."""


@dataclasses.dataclass(frozen=True)
class PipelineInfo:
    """What the pipeline selected; logged at construction and useful in run summaries."""

    split: str
    split_records: int  # records in the split before filtering
    removed: dict[str, int]  # filter rule -> records it removed (first failing rule counts)
    kept: int  # records that passed the filter
    shard_index: int
    shard_count: int
    shard_records: int  # records this process reads per epoch
    unsharded: int  # filtered records left out so every process has an equal shard (< count)
    global_batch: int
    local_batch: int
    crop_size: int
    image_size: tuple[int, int]

    @property
    def batches_per_epoch(self) -> float:
        return self.shard_records / self.local_batch


# --------------------------------------------------------------------------------------
# Index stream: which records each step reads.
# --------------------------------------------------------------------------------------


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


@functools.lru_cache(maxsize=4)
def _epoch_permutation(seed: int, shard_index: int, epoch: int, n: int) -> np.ndarray:
    """The order of epoch `epoch` of a shard of `n` records (pure; cached per process)."""
    perm = _rng(_SHUFFLE, seed, shard_index, epoch).permutation(n)
    perm.flags.writeable = False
    return perm


class _EpochBatches:
    """Endless random-access sequence: step -> {"index": sorted record indices of its batch}.

    Position p of the stream is record `indices[perm_e[p % n]]` with e = p // n, so the
    stream is shuffle -> repeat -> batch of `indices`, computable for any step in O(batch).
    Sorted because order inside a random batch does not matter and sorted reads are fastest.
    """

    def __init__(self, indices: np.ndarray, batch_size: int, seed: int, shard_index: int):
        self.indices = np.asarray(indices, np.int64)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shard_index = int(shard_index)

    def __len__(self) -> int:
        return sys.maxsize

    def __getitem__(self, step: int) -> dict[str, np.ndarray]:
        n = len(self.indices)
        start = int(step) * self.batch_size
        stop = start + self.batch_size
        parts = []
        for epoch in range(start // n, (stop - 1) // n + 1):
            lo, hi = max(start, epoch * n) - epoch * n, min(stop, (epoch + 1) * n) - epoch * n
            parts.append(_epoch_permutation(self.seed, self.shard_index, epoch, n)[lo:hi])
        return {"index": np.sort(self.indices[np.concatenate(parts)])}

    def __repr__(self) -> str:
        return (f"_EpochBatches(n={len(self.indices)}, batch_size={self.batch_size}, "
                f"seed={self.seed}, shard_index={self.shard_index})")


# --------------------------------------------------------------------------------------
# Reading and augmentation: index batch -> uint8 arrays.
# --------------------------------------------------------------------------------------


def crop_windows(L8: np.ndarray, ab8: np.ndarray, top: np.ndarray, left: np.ndarray,
                 size: int) -> tuple[np.ndarray, np.ndarray]:
    """Square `size` windows at (top[i], left[i]) of L8 [n, H, W] and ab8 [n, H, W, 2].

    When the window is the whole image the inputs are returned as they are (the pipeline
    passes freshly read buffers it owns), which saves a copy of the batch. One strided copy
    per image otherwise: ~4x faster than a batched fancy-index gather at 224^2. The (a, b)
    pairs are moved as one uint16 each, several times faster than a trailing axis of 2.

    Horizontal flips are not done here: mirroring costs numpy about twice the read itself
    (it copies element by element), while on the device it is free. The pipeline emits a
    per-image `flip` flag and `stats.prepare_batch` mirrors inside the jitted step.
    """
    n, h, w = L8.shape
    if size == h == w:
        return L8, ab8
    L_out = np.empty((n, size, size), np.uint8)
    ab_out = np.empty((n, size, size, 2), np.uint8)
    ab16, ab16_out = _pairs_as_uint16(ab8), _pairs_as_uint16(ab_out)
    for i in range(n):
        rows = slice(int(top[i]), int(top[i]) + size)
        cols = slice(int(left[i]), int(left[i]) + size)
        L_out[i] = L8[i, rows, cols]
        ab16_out[i] = ab16[i, rows, cols]
    return L_out, ab_out


def _pairs_as_uint16(ab8: np.ndarray) -> np.ndarray:
    """[..., 2] uint8 -> [...] uint16 view of the same memory (a, b moved together)."""
    return ab8.view(np.uint16).reshape(ab8.shape[:-1])


class _ReadBatch:
    """(step, {"index"[, "mask"]}) -> {"L", "ab", "flip", "index"[, "mask"]}; picklable.

    Training (`augment=True`): uniform random crop offsets and a fair coin per image for the
    flip, drawn from a generator keyed by (seed, shard, step). Evaluation: centre crop, no
    flip. `flip` (bool [n]) is applied on the device by `stats.prepare_batch`.
    """

    def __init__(self, records: Records, crop_size: int, *, augment: bool, flip: bool,
                 seed: int, shard_index: int):
        self.records = records
        self.crop_size = int(crop_size)
        self.augment, self.flip = bool(augment), bool(flip)
        self.seed, self.shard_index = int(seed), int(shard_index)

    def __call__(self, step: int, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        indices = batch["index"]
        L8, ab8 = self.records.read(indices)
        n, (h, w), c = len(indices), self.records.image_size, self.crop_size
        if self.augment:
            rng = _rng(_AUGMENT, self.seed, self.shard_index, step)
            top = rng.integers(0, h - c + 1, n)
            left = rng.integers(0, w - c + 1, n)
            flip = rng.random(n) < 0.5 if self.flip else np.zeros(n, bool)
        else:
            top, left, flip = np.full(n, (h - c) // 2), np.full(n, (w - c) // 2), np.zeros(n, bool)
        L8, ab8 = crop_windows(L8, ab8, top, left, c)
        return {**batch, "L": L8, "ab": ab8, "flip": flip,
                "index": np.asarray(indices, np.int32)}

    def __repr__(self) -> str:
        return f"_ReadBatch({self.records!r}, crop_size={self.crop_size}, augment={self.augment})"


# --------------------------------------------------------------------------------------
# Public constructors.
# --------------------------------------------------------------------------------------


def _shard_args(shard_index: int | None, shard_count: int | None) -> tuple[int, int]:
    """Default: one shard per JAX process. Explicit values let one process simulate many."""
    index = jax.process_index() if shard_index is None else int(shard_index)
    count = jax.process_count() if shard_count is None else int(shard_count)
    if count < 1 or not 0 <= index < count:
        raise PipelineError(f"shard_index={index}, shard_count={count}: need "
                            "0 <= shard_index < shard_count")
    return index, count


def _check_sizes(records: Records, *, global_batch: int, crop_size: int, shard_count: int,
                 mesh: Mesh | None) -> int:
    """Validates batch and crop sizes; returns the per-process batch."""
    h, w = records.image_size
    if not 0 < crop_size <= min(h, w):
        raise PipelineError(f"crop_size={crop_size}: must be in 1..{min(h, w)}, the size of the "
                            f"{h}x{w} records in {records.directory}")
    if global_batch < 1:
        raise PipelineError(f"global_batch={global_batch}: must be positive")
    if global_batch % shard_count:
        raise PipelineError(f"global_batch={global_batch}: not divisible by the "
                            f"{shard_count} processes (shard_count)")
    if mesh is not None and global_batch % mesh.devices.size:
        raise PipelineError(f"global_batch={global_batch}: not divisible by the "
                            f"{mesh.devices.size} devices of the mesh")
    return global_batch // shard_count


def _select(records: Records, split: str,
            thresholds: stats_lib.FilterThresholds | None) -> tuple[np.ndarray, dict[str, int]]:
    candidates = records.split(split)
    if thresholds is None:
        return candidates, {}
    return stats_lib.select(records.stats, thresholds, candidates)


def _read_options(read_threads: int, prefetch: int) -> grain.ReadOptions:
    # Grain's defaults (16 threads, 500 elements) would buffer ~5 GB of 224^2 batches.
    return grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=prefetch)


def _with_workers(ds: grain.IterDataset, num_workers: int) -> grain.IterDataset:
    if num_workers <= 0:
        return ds
    # Grain reads absl flags in mp_prefetch; outside absl.app.run (pytest, notebooks) they are
    # unparsed and reading them raises UnparsedFlagAccessError.
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    return ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))


def make_train_iterator(
    records: Records, *, global_batch: int, crop_size: int, flip: bool = True, seed: int = 0,
    thresholds: stats_lib.FilterThresholds | None = stats_lib.FilterThresholds(),
    split: str = "train", shard_index: int | None = None, shard_count: int | None = None,
    num_workers: int = 0, read_threads: int = 2, prefetch: int = 4, mesh: Mesh | None = None,
) -> tuple[grain.DatasetIterator, PipelineInfo]:
    """An endless Grain iterator of this process's training batches, and what it selected.

    Yields {"L": uint8 [b, crop, crop], "ab": uint8 [b, crop, crop, 2], "index": int32 [b]}
    with b = global_batch / shard_count. The iterator's `get_state()/set_state()` resume it
    exactly (checkpoint it with `grain.checkpoint.CheckpointSave`); keep `num_workers` and the
    process count fixed across a resumed run, since the saved state is per worker.

    `thresholds=None` disables filtering. `mesh`, when given, also checks that the global
    batch divides over its devices. `read_threads` read batches ahead of the consumer in this
    process; `num_workers` > 0 moves reading into that many worker processes.
    """
    shard_index, shard_count = _shard_args(shard_index, shard_count)
    local_batch = _check_sizes(records, global_batch=global_batch, crop_size=crop_size,
                               shard_count=shard_count, mesh=mesh)
    if seed < 0:
        raise PipelineError(f"seed={seed}: must be non-negative")
    kept, removed = _select(records, split, thresholds)
    per_shard = len(kept) // shard_count
    shard = kept[shard_index:per_shard * shard_count:shard_count]
    if local_batch > per_shard:
        raise PipelineError(
            f"global_batch={global_batch}: the per-process batch of {local_batch} is larger than "
            f"the {per_shard} records of each of {shard_count} shard(s) left after filtering "
            f"split {split!r} of {records.directory} (removed per rule: {removed})")
    info = PipelineInfo(split=split, split_records=len(records.split(split)), removed=removed,
                        kept=len(kept), shard_index=shard_index, shard_count=shard_count,
                        shard_records=per_shard, unsharded=len(kept) - per_shard * shard_count,
                        global_batch=global_batch, local_batch=local_batch, crop_size=crop_size,
                        image_size=records.image_size)
    logging.info("train pipeline over %s: %s", records.directory, info)
    ds = (grain.MapDataset.source(_EpochBatches(shard, local_batch, seed, shard_index))
          .map_with_index(_ReadBatch(records, crop_size, augment=True, flip=flip, seed=seed,
                                     shard_index=shard_index))
          .to_iter_dataset(_read_options(read_threads, prefetch)))
    return iter(_with_workers(ds, num_workers)), info


def make_eval_dataset(
    records: Records, *, global_batch: int, crop_size: int, split: str = "val",
    thresholds: stats_lib.FilterThresholds | None = None, shard_index: int | None = None,
    shard_count: int | None = None, num_workers: int = 0, read_threads: int = 2,
    prefetch: int = 4, mesh: Mesh | None = None,
) -> tuple[grain.IterDataset, PipelineInfo]:
    """A finite Grain dataset of one pass over `split`: iterate it once per evaluation.

    Fixed order (ascending record index, strided over processes), centre crop, no flip.
    Batches are {"L", "ab", "index", "mask": bool [b]}: the split is padded with copies of
    its last record to a multiple of the global batch, so every process yields the same
    number of full batches; `mask` is False on the padding, which metrics must ignore.
    """
    shard_index, shard_count = _shard_args(shard_index, shard_count)
    local_batch = _check_sizes(records, global_batch=global_batch, crop_size=crop_size,
                               shard_count=shard_count, mesh=mesh)
    kept, removed = _select(records, split, thresholds)
    if kept.size == 0:
        raise PipelineError(f"split={split!r}: no records in {records.directory} (is the "
                            "manifest's val_every 0? pass a separate validation directory)")
    pad = -len(kept) % global_batch
    padded = np.concatenate([kept, np.full(pad, kept[-1])])
    mask = np.arange(len(padded)) < len(kept)
    index = padded[shard_index::shard_count].reshape(-1, local_batch)
    mask = mask[shard_index::shard_count].reshape(-1, local_batch)
    info = PipelineInfo(split=split, split_records=len(records.split(split)), removed=removed,
                        kept=len(kept), shard_index=shard_index, shard_count=shard_count,
                        shard_records=int(mask.sum()), unsharded=0, global_batch=global_batch,
                        local_batch=local_batch, crop_size=crop_size,
                        image_size=records.image_size)
    logging.info("eval pipeline over %s: %s (%d batches)", records.directory, info, len(index))
    batches = [{"index": i, "mask": m} for i, m in zip(index, mask)]
    ds = (grain.MapDataset.source(batches)
          .map_with_index(_ReadBatch(records, crop_size, augment=False, flip=False, seed=0,
                                     shard_index=shard_index))
          .to_iter_dataset(_read_options(read_threads, prefetch)))
    return _with_workers(ds, num_workers), info


def validation_source(train: Records, val_dir: str | None = None) -> tuple[Records, str]:
    """Where validation comes from: a separate records directory (all of it) or the held-out
    `val` split of the training records (every `val_every`-th record, see Records.split).

    Training always reads the `train` split, which equals `all` when `val_every` is 0, so the
    two never overlap within one directory. A separate directory is trusted to be disjoint.
    """
    if val_dir:
        return Records(val_dir), "all"
    if not train.manifest.val_every:
        raise PipelineError(f"val: not set and {train.directory} holds no validation split "
                            "(manifest val_every is 0); pass a validation records directory "
                            "or re-ingest with a validation split")
    return train, "val"


def make_global_batch(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """This process's batch -> global jax.Arrays sharded over the mesh's `data` axis.

    Every process calls this with its own rows (same shapes); the global batch is their
    concatenation in process order. dtypes are kept (uint8 stays uint8: normalisation runs
    on the device, inside the jitted step).
    """
    batch_sharding = sharding.batch_sharding(mesh)
    local_devices = sum(d.process_index == jax.process_index() for d in mesh.devices.flat)
    out = {}
    for key, value in local_batch.items():
        value = np.asarray(value)
        if local_devices and value.shape[0] % local_devices:
            raise PipelineError(f"local batch {key!r} of {value.shape[0]} rows: not divisible by "
                                f"the {local_devices} devices of this process in the mesh")
        out[key] = jax.make_array_from_process_local_data(batch_sharding, value)
    return out

