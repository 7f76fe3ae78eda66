"""Validation during training: the evaluator over the validation split, on the devices.

The per-image metrics are the evaluator's (`jaxcolor.evaluator`, computed inside the jitted
eval step of `train.steps`), summarised by the evaluator, and scored by the run's
`config.best_metric` (`jaxcolor.checkpoints`): the numbers `jaxcolor evaluate` reports for
the same photos and the benchmarks read. This module only gathers them across processes and
keeps the probe images for the grid `train.monitor` shows.
"""

from __future__ import annotations

import collections
import dataclasses

import jax
import numpy as np

from jaxcolor import evaluator
from jaxcolor.train.state import TrainState


@dataclasses.dataclass(frozen=True)
class Validation:
    summary: dict[str, float]  # `evaluator.summarize` of the split
    probe: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # (L8, ab8 true, ab_pred) rows


def validate(eval_fn, state: TrainState, data, *, max_images: int,
             probe_images: int) -> Validation:
    """One pass over (up to `max_images` of) the validation split.

    Per-image metrics come back as [global batch] arrays; padding rows are dropped with the
    pipeline's mask. Every process summarises the whole split (the rows of all processes
    are gathered), so all report, and checkpoint, the same numbers. The first batch's first
    `probe_images` (of this process) are the fixed probe set.
    """
    per_image = collections.defaultdict(list)
    probe = None
    for batch, mask in data.val_batches(max_images):
        out = eval_fn(state, batch)
        # Each process fetches its own rows (the addressable shards of every output) ...
        local = {k: local_rows(v) for k, v in out.items()}
        # ... then the per-image numbers and padding masks of all processes, in process order.
        scores = _from_all_processes(
            {**{k: v for k, v in local.items() if k != "ab_pred"}, "mask": mask})
        keep = scores.pop("mask")
        for k, v in scores.items():
            per_image[k].append(v[keep])
        if probe is None:
            n = min(probe_images, int(mask.sum()))
            probe = (local_rows(batch["L"])[:n], local_rows(batch["ab"])[:n],
                     local["ab_pred"][:n])
    summary = evaluator.summarize({k: np.concatenate(v) for k, v in per_image.items()})
    return Validation(summary, probe)


def _from_all_processes(local: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Host arrays of equal shapes on every process -> their concatenation in process order."""
    if jax.process_count() == 1:
        return local
    from jax.experimental import multihost_utils

    return {k: np.asarray(v) for k, v in
            multihost_utils.process_allgather(local, tiled=True).items()}


def local_rows(x: jax.Array) -> np.ndarray:
    """The rows of a batch-sharded global array that live on this process, in order."""
    shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
    seen, rows = set(), []
    for s in shards:
        start = s.index[0].start or 0
        if start not in seen:  # replicated shards repeat; keep one copy
            seen.add(start)
            rows.append(np.asarray(s.data))
    return np.concatenate(rows)
