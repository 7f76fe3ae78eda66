"""Input pipeline: records -> filtered index subset -> shuffled batches -> global jax.Array.

One training step's data, per JAX process::

    split indices ──select──> filtered ──[p::P]──> this process's shard
      ──permutation per epoch (seed, process, epoch)──> endless stream ──cut──> index batch
      ──Records.read(sorted)──> crop (rng from (seed, process, step))──> uint8 dict + flip flags
      ──make_global_batch──> one jax.Array per key, sharded over the mesh's `data` axis
      ──batches.prepare_batch (inside the jitted step)──> mirrored where flagged, normalised

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
* Progressive training (a resolution schedule of `Stage`s) changes the crop and batch size
  at given steps within the same stream (`jaxcolor.data.batches`): one iterator, one saved
  position, whatever stage a run is stopped in.
* Records stay uint8 until they are on the device (`batches.prepare_batch` inside the jitted step).
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

import grain
import jax
import numpy as np
from absl import flags, logging
from jax.sharding import Mesh

from jaxcolor import sharding
from jaxcolor.data import stats as stats_lib
from jaxcolor.data.batches import Stage, _EpochBatches, _ReadBatch, crop_windows  # noqa: F401
from jaxcolor.data.records import Records
from jaxcolor.errors import UsageError

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
    stages: tuple = ()  # the resolution schedule (`Stage`s), the last at crop_size/global_batch

    @property
    def batches_per_epoch(self) -> float:
        return self.shard_records / self.local_batch


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


def select_split(records: Records, split: str, thresholds: stats_lib.FilterThresholds | None
                 ) -> tuple[np.ndarray, dict[str, int]]:
    """The records of `split` that pass the filter (all of them for `thresholds=None`), and
    how many each rule removed: what the pipelines read, and what a colour prior sums over."""
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
    stages: tuple[Stage, ...] = (),
) -> tuple[grain.DatasetIterator, PipelineInfo]:
    """An endless Grain iterator of this process's training batches, and what it selected.

    Yields {"L": uint8 [b, crop, crop], "ab": uint8 [b, crop, crop, 2], "index": int32 [b]}
    with b = global_batch / shard_count. The iterator's `get_state()/set_state()` resume it
    exactly (checkpoint it with `grain.checkpoint.CheckpointSave`); keep `num_workers` and the
    process count fixed across a resumed run, since the saved state is per worker.

    `stages`, a resolution schedule (progressive training): element `step` of the iterator
    (the run's global step) is cropped and batched as the last stage whose `first_step` is
    <= step says; the last stage is (`crop_size`, `global_batch`) and runs on for ever. One
    iterator serves every stage, so its saved state is just its position, in any stage.

    `thresholds=None` disables filtering. `mesh`, when given, also checks that the global
    batch divides over its devices. `read_threads` read batches ahead of the consumer in this
    process; `num_workers` > 0 moves reading into that many worker processes.
    """
    shard_index, shard_count = _shard_args(shard_index, shard_count)
    schedule = _checked_stages(stages, crop_size, global_batch)
    local_batches = [_check_sizes(records, global_batch=st.global_batch, crop_size=st.crop_size,
                                  shard_count=shard_count, mesh=mesh) for st in schedule]
    local_batch = local_batches[-1]
    if seed < 0:
        raise PipelineError(f"seed={seed}: must be non-negative")
    kept, removed = select_split(records, split, thresholds)
    per_shard = len(kept) // shard_count
    shard = kept[shard_index:per_shard * shard_count:shard_count]
    for st, local in zip(schedule, local_batches):
        if local > per_shard:
            raise PipelineError(
                f"global_batch={st.global_batch}: the per-process batch of {local} is larger "
                f"than the {per_shard} records of each of {shard_count} shard(s) left after "
                f"filtering split {split!r} of {records.directory} (removed per rule: {removed})")
    info = PipelineInfo(split=split, split_records=len(records.split(split)), removed=removed,
                        kept=len(kept), shard_index=shard_index, shard_count=shard_count,
                        shard_records=per_shard, unsharded=len(kept) - per_shard * shard_count,
                        global_batch=global_batch, local_batch=local_batch, crop_size=crop_size,
                        image_size=records.image_size, stages=tuple(schedule))
    logging.info("train pipeline over %s: %s", records.directory, info)
    batches = tuple((st.first_step, local) for st, local in zip(schedule, local_batches))
    crops = tuple((st.first_step, st.crop_size) for st in schedule)
    ds = (grain.MapDataset.source(_EpochBatches(shard, batches, seed, shard_index))
          .map_with_index(_ReadBatch(records, crop_size, augment=True, flip=flip, seed=seed,
                                     shard_index=shard_index, crop_sizes=crops))
          .to_iter_dataset(_read_options(read_threads, prefetch)))
    return iter(_with_workers(ds, num_workers)), info


def _checked_stages(stages, crop_size: int, global_batch: int) -> list[Stage]:
    """The complete schedule: `stages`, which must start at step 0, increase, and end in the
    (crop_size, global_batch) stage; or that one stage from step 0 when `stages` is empty."""
    if not stages:
        return [Stage(0, crop_size, global_batch)]
    schedule = [Stage(int(st.first_step), int(st.crop_size), int(st.global_batch))
                for st in stages]
    firsts = [st.first_step for st in schedule]
    if firsts[0] != 0 or any(b <= a for a, b in zip(firsts, firsts[1:])):
        raise PipelineError(f"stages: first steps {firsts} must start at 0 and increase")
    last = schedule[-1]
    if (last.crop_size, last.global_batch) != (crop_size, global_batch):
        raise PipelineError(f"stages: the last stage ({last}) must crop crop_size={crop_size} "
                            f"in batches of global_batch={global_batch}")
    return schedule


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
    kept, removed = select_split(records, split, thresholds)
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

