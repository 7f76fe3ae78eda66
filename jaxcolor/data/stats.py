"""Per-record filter statistics and the device-parallel normalisation.

Both are data-parallel functions over a `jax.sharding.Mesh` with one `data` axis: a
`jax.shard_map` under `jax.jit`, which is what `jax.pmap` is built on today. Each device
works on its slice of the batch; with one CPU device it is an ordinary jitted function.

Statistics (one row per record, `STATS_DTYPE`):
  colorfulness  Hasler & Suesstrunk CF on 0..255 sRGB: rg = |R - G|, yb = |(R + G)/2 - B|,
                CF = sqrt(var rg + var yb) + 0.3 sqrt(mean rg^2 + mean yb^2)
  a_std, b_std  spread of a and b (Lab units)
  ab_max        max |a|, |b| (Lab units)
  l_std         contrast: spread of L (Lab units, 0..100)
  l_mean        mean lightness
They drive the pipeline's filter (`select`): grayscale, sepia-like and flat images teach a
colouriser nothing but dull colours.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec as P

from jaxcolor import color, sharding
from jaxcolor.errors import UsageError
from jaxcolor.metrics import colorfulness

STATS_FIELDS = ("colorfulness", "a_std", "b_std", "ab_max", "l_std", "l_mean")
STATS_DTYPE = np.dtype([(name, np.float32) for name in STATS_FIELDS])


# --------------------------------------------------------------------------------------
# Statistics.
# --------------------------------------------------------------------------------------


def _record_stats(L8: jnp.ndarray, ab8: jnp.ndarray) -> jnp.ndarray:
    """uint8 [n, H, W], [n, H, W, 2] -> float32 [n, len(STATS_FIELDS)]."""
    L = L8.astype(jnp.float32) / color.L8_SCALE
    ab = ab8.astype(jnp.float32) - color.AB8_OFFSET
    rgb = color.lab_to_rgb(jnp.concatenate([L[..., None], ab], axis=-1)) * 255.0
    cols = [
        colorfulness(rgb),
        jnp.std(ab[..., 0], axis=(1, 2)),
        jnp.std(ab[..., 1], axis=(1, 2)),
        jnp.max(jnp.abs(ab), axis=(1, 2, 3)),
        jnp.std(L, axis=(1, 2)),
        jnp.mean(L, axis=(1, 2)),
    ]
    return jnp.stack(cols, axis=-1)


@functools.lru_cache(maxsize=8)
def _stats_fn(mesh: Mesh):
    data = P(sharding.DATA_AXIS)
    fn = jax.shard_map(_record_stats, mesh=mesh, in_specs=(data, data), out_specs=data)
    return jax.jit(fn)


def compute_stats(L8: np.ndarray, ab8: np.ndarray, mesh: Mesh | None = None) -> np.ndarray:
    """Statistics of a host batch, computed data-parallel on the devices of `mesh`.

    The batch is padded to a multiple of the device count (padding rows are dropped from the
    result), placed sharded over `data` and reduced per record on its own device.
    """
    mesh = mesh or sharding.local_mesh()
    n = L8.shape[0]
    n_dev = mesh.devices.size
    pad = (-n) % n_dev
    if pad:
        L8 = np.concatenate([L8, np.zeros((pad, *L8.shape[1:]), L8.dtype)])
        ab8 = np.concatenate([ab8, np.zeros((pad, *ab8.shape[1:]), ab8.dtype)])
    batch = sharding.batch_sharding(mesh)
    out = _stats_fn(mesh)(jax.device_put(L8, batch), jax.device_put(ab8, batch))
    values = np.asarray(out)[:n]
    stats = np.empty(n, STATS_DTYPE)
    for i, name in enumerate(STATS_FIELDS):
        stats[name] = values[:, i]
    return stats


# --------------------------------------------------------------------------------------
# Filtering: an index subset of the records whose statistics pass the thresholds.
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FilterThresholds:
    """Keep a record only if every statistic clears its threshold (None disables a rule).

    Defaults drop grayscale and near-monochrome photos (CF < 5, where sepia prints and
    tinted scans sit) and flat, low-contrast images (L std < 4).
    """

    min_colorfulness: float | None = 5.0
    min_ab_std: float | None = None  # on max(a_std, b_std)
    min_l_std: float | None = 4.0

    @classmethod
    def from_config(cls, cfg) -> "FilterThresholds":
        return cls(**{f.name: cfg.get(f.name, f.default) for f in dataclasses.fields(cls)})


class EmptyFilterError(UsageError):
    """Every record was filtered out."""


def select(stats: np.ndarray, thresholds: FilterThresholds,
           candidates: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, int]]:
    """Indices (sorted, int64) of the records that pass, and how many each rule removed.

    Rules are applied in order; a record is counted against the first rule it fails.
    `candidates` restricts the selection (e.g. to one split).
    """
    keep = np.ones(len(stats), bool) if candidates is None else np.zeros(len(stats), bool)
    if candidates is not None:
        keep[np.asarray(candidates, np.int64)] = True
    rules = {
        "min_colorfulness": (thresholds.min_colorfulness, stats["colorfulness"]),
        "min_ab_std": (thresholds.min_ab_std, np.maximum(stats["a_std"], stats["b_std"])),
        "min_l_std": (thresholds.min_l_std, stats["l_std"]),
    }
    removed = {}
    for name, (threshold, values) in rules.items():
        if threshold is None:
            continue
        fails = keep & ~(values >= threshold)
        removed[name] = int(fails.sum())
        keep &= ~fails
    indices = np.flatnonzero(keep).astype(np.int64)
    if indices.size == 0:
        raise EmptyFilterError(
            f"all {int(len(stats) if candidates is None else len(candidates))} records were "
            f"filtered out by {dataclasses.asdict(thresholds)} (removed per rule: {removed}); "
            "lower the thresholds in config.data.filter")
    return indices, removed
