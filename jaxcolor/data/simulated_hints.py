"""Colour hints simulated from the truth for training, as Zhang et al. (2017) simulate them.

Per image, the number of points is drawn from a geometric distribution (`HintConfig.p`,
1/8: mean 7, often 0 or 1); each point is a square patch of 1..`max_patch` pixels at a
uniformly random place, carrying the mean true ab over the patch; a share of the batches
(`none_share`) gets no hints at all, so automatic colourisation does not get worse for
learning to follow hints. The result is the generator's hint map (`models.hint_branch`): a/110,
b/110 where hinted (0 elsewhere) and the mask.

Pure JAX on the device, inside the jitted step, from a key derived from the step: no host
work, the same hints for a step whatever the devices, and a resumed run draws what an
uninterrupted one drew. Patch means come from one integral image per batch; patches are
painted through separable row and column masks, never a [points, H, W] array per image.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class HintConfig:
    p: float = 1 / 8  # geometric parameter of the number of points per image
    max_points: int = 24  # points drawn per image at most (P(more) = (1 - p) ** 25 = 3.5 %)
    max_patch: int = 9  # patch sides are 1..max_patch pixels
    none_share: float = 0.25  # share of the batches with no hints at all

    @classmethod
    def from_config(cls, hints_cfg) -> "HintConfig":
        return cls(p=float(hints_cfg.p), max_points=int(hints_cfg.max_points),
                   max_patch=int(hints_cfg.max_patch), none_share=float(hints_cfg.none_share))


def _box_sum(integral: jax.Array, top, left, bottom, right) -> jax.Array:
    """Sums over [top, bottom) x [left, right) of every image's points: integral [B, H+1,
    W+1, C], corners [B, K] -> [B, K, C]."""
    def at(y, x):
        return jax.vmap(lambda im, yy, xx: im[yy, xx])(integral, y, x)

    return at(bottom, right) - at(top, right) - at(bottom, left) + at(top, left)


def simulate(key: jax.Array, ab: jax.Array, cfg: HintConfig) -> tuple[jax.Array, jax.Array]:
    """(hint map [B, H, W, 3], points per image [B]) for true ab / 110 [B, H, W, 2]."""
    b, h, w, _ = ab.shape
    k_count, k_y, k_x, k_size, k_none = jax.random.split(key, 5)
    u = jax.random.uniform(k_count, (b,), minval=1e-7, maxval=1.0)
    count = jnp.floor(jnp.log(u) / jnp.log1p(-cfg.p)).astype(jnp.int32)  # 0, 1, 2, ...
    count = jnp.where(jax.random.uniform(k_none, ()) < cfg.none_share, 0,
                      jnp.minimum(count, cfg.max_points))
    k = cfg.max_points
    size = jax.random.randint(k_size, (b, k), 1, cfg.max_patch + 1)
    top = jax.random.randint(k_y, (b, k), 0, h - size + 1)
    left = jax.random.randint(k_x, (b, k), 0, w - size + 1)
    live = jnp.arange(k)[None] < count[:, None]  # [B, K]
    integral = jnp.pad(jnp.cumsum(jnp.cumsum(ab, axis=1), axis=2),
                       ((0, 0), (1, 0), (1, 0), (0, 0)))
    mean = _box_sum(integral, top, left, top + size, left + size) / (size * size)[..., None]
    rows = (jnp.arange(h)[None, None] >= top[..., None]) & \
        (jnp.arange(h)[None, None] < (top + size)[..., None]) & live[..., None]  # [B, K, H]
    cols = (jnp.arange(w)[None, None] >= left[..., None]) & \
        (jnp.arange(w)[None, None] < (left + size)[..., None])  # [B, K, W]
    rows, cols = rows.astype(ab.dtype), cols.astype(ab.dtype)
    cover = jnp.einsum("bkh,bkw->bhw", rows, cols)  # points covering each pixel
    summed = jnp.einsum("bkh,bkw,bkc->bhwc", rows, cols, mean)
    mask = (cover > 0).astype(ab.dtype)[..., None]
    hint_ab = summed / jnp.maximum(cover, 1.0)[..., None]  # overlapping patches: their mean
    return jnp.concatenate([hint_ab, mask], axis=-1), count
