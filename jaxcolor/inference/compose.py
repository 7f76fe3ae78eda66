"""Full-resolution compose on the device: `photo.compose` as jitted JAX, uint8 in and out.

On an accelerator the network takes microseconds per photo and the full-resolution pixel
work (ab upsampling guided by the photo's own L, Lab -> sRGB keeping L, gamut mapping) is
what remains; here it runs where the network's output already is, and only uint8 crosses the
host-device link both ways: the photo's pixels in, the colour photo out.

Why fixed tiles (`TILE` x `TILE`, no halo). Every output pixel depends on its own input
pixel (its L) and on the low-resolution maps G produced (ab and the L they were predicted
from), nothing else at full resolution; so a photo cut into tiles composes exactly like the
whole photo, with no halo, as long as each tile knows where it lies in its photo. That
position, the photo's size and its place in the render square are *data* (an int32 row per
tile), not shapes, so one compiled program serves photos of every size: the programs are
one per (tile count bucket, batch bucket, pixel layout), each bucket a power of two (tiles
up to `MAX_TILES` per call; the batch's low-resolution maps padded as G's batch is). Size
buckets instead would compile a program per (height, width) bucket and pay for the padding
of every photo to its bucket; tiles pay at most one partial row and column of tiles per
photo, and split a 12000 x 12000 scan over several calls of the same program.

The numbers are `photo.compose`'s: the same bilinear taps and range weights of the joint
bilateral upsampling, the same bisection towards gray for colours outside sRGB, the same L;
only the last step differs, the gamma curve (a direct power here, a 65536-entry table in
numpy): outputs agree to one 8-bit level (tests/inference/test_compose.py).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcolor import color

TILE = 128
"""Side of the square tiles the device composes (pixels)."""

MAX_TILES = 256
"""Most tiles in one call (16.7 M pixels at 128 x 128): larger photos take several calls."""

META_FIELDS = ("photo", "top", "left", "height", "width", "inner_h", "inner_w", "pad_top",
               "pad_left")
"""Per-tile int32 row: index of its photo in the batch, its offset in the photo, the photo's
size, and the photo's size and offset inside the render square."""


# --------------------------------------------------------------------------------------
# Host side: cutting photos into tiles and putting them back together.
# --------------------------------------------------------------------------------------


def tile_grid(height: int, width: int, tile: int = TILE) -> tuple[int, int]:
    """(rows, columns) of tiles covering a height x width photo."""
    return -(-height // tile), -(-width // tile)


def cut_tiles(pixels: np.ndarray, tile: int = TILE) -> np.ndarray:
    """[H, W(, C)] -> [rows * cols, tile, tile(, C)] in row-major order, zero-padded at the
    bottom and right edges (those pixels are composed and then dropped by `assemble`)."""
    h, w = pixels.shape[:2]
    rows, cols = tile_grid(h, w, tile)
    padded = np.zeros((rows * tile, cols * tile) + pixels.shape[2:], pixels.dtype)
    padded[:h, :w] = pixels
    shaped = padded.reshape((rows, tile, cols, tile) + pixels.shape[2:])
    return np.ascontiguousarray(np.swapaxes(shaped, 1, 2)).reshape(
        (rows * cols, tile, tile) + pixels.shape[2:])


def assemble(tiles: np.ndarray, height: int, width: int) -> np.ndarray:
    """The inverse of `cut_tiles`: [rows * cols, T, T, C] -> [height, width, C]."""
    tile = tiles.shape[1]
    rows, cols = tile_grid(height, width, tile)
    grid = tiles.reshape((rows, cols, tile, tile) + tiles.shape[3:])
    whole = np.swapaxes(grid, 1, 2).reshape((rows * tile, cols * tile) + tiles.shape[3:])
    return whole[:height, :width]


def tile_meta(photo: int, height: int, width: int, inner: tuple[int, int], render_size: int,
              tile: int = TILE) -> np.ndarray:
    """int32 [tiles, len(META_FIELDS)] rows of one photo (`photo` is its index in the batch
    of low-resolution maps; `inner` its size inside the render square)."""
    rows, cols = tile_grid(height, width, tile)
    tops, lefts = np.meshgrid(np.arange(rows) * tile, np.arange(cols) * tile, indexing="ij")
    rh, rw = inner
    fixed = (photo, height, width, rh, rw, (render_size - rh) // 2, (render_size - rw) // 2)
    meta = np.empty((rows * cols, len(META_FIELDS)), np.int32)
    meta[:, 0] = photo
    meta[:, 1], meta[:, 2] = tops.ravel(), lefts.ravel()
    meta[:, 3:] = fixed[1:]
    return meta


def bucket(n: int) -> int:
    """The padded tile count of a call: the next power of two (bounded compiled shapes)."""
    return 1 << max(n - 1, 0).bit_length()


def fit_batch(maps: jax.Array, size: int) -> jax.Array:
    """A batch of low-resolution maps ([n, ...]) cut or zero-padded to `size` rows. The maps
    of a call are always `bucket(photos)` long, so that the programs are one per bucket, not
    one per batch length: G's ab comes padded to a power of two, a temporal batch's ab and
    the render-size L come with one row per photo."""
    n = maps.shape[0]
    if n == size:
        return maps
    if n > size:
        return maps[:size]
    return jnp.concatenate([maps, jnp.zeros((size - n,) + maps.shape[1:], maps.dtype)])


def pad_to_bucket(tiles: np.ndarray, meta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tiles and their meta rows padded to `bucket(len(tiles))` (zero tiles, copies of the
    first row: valid positions whose output is dropped)."""
    pad = bucket(len(tiles)) - len(tiles)
    if not pad:
        return tiles, meta
    return (np.concatenate([tiles, np.zeros((pad,) + tiles.shape[1:], tiles.dtype)]),
            np.concatenate([meta, np.repeat(meta[:1], pad, axis=0)]))


# --------------------------------------------------------------------------------------
# Device side.
# --------------------------------------------------------------------------------------


def _taps(positions: jax.Array, n_out: jax.Array, n_in: jax.Array):
    """`photo._taps` for output `positions`: the two source indices [T, 2] (clamped to the
    inner map) and their bilinear weights, half-pixel centres."""
    pos = (positions.astype(jnp.float32) + 0.5) * (n_in.astype(jnp.float32)
                                                   / n_out.astype(jnp.float32)) - 0.5
    base = jnp.floor(pos).astype(jnp.int32)[:, None] + jnp.arange(2, dtype=jnp.int32)
    weights = jnp.maximum(0.0, 1.0 - jnp.abs(pos[:, None] - base.astype(jnp.float32)))
    return jnp.clip(base, 0, n_in - 1), weights


def _upsample_tile(L: jax.Array, meta: jax.Array, ab_square: jax.Array, L_square: jax.Array,
                   range_scale: float | None) -> tuple[jax.Array, jax.Array]:
    """(a, b) [T, T] of one tile: joint bilateral (or bilinear) upsampling of its photo's
    low-resolution ab, as `photo.Upsampler` computes it."""
    tile = L.shape[0]
    p, top, left, h, w, rh, rw, pad_top, pad_left = (meta[i] for i in range(len(META_FIELDS)))
    y_idx, y_w = _taps(top + jnp.arange(tile), h, rh)
    x_idx, x_w = _taps(left + jnp.arange(tile), w, rw)
    rows, cols = pad_top + y_idx, pad_left + x_idx
    ab, L_low = ab_square[p], L_square[p]
    a = b = den = jnp.zeros_like(L)
    for i in range(2):
        for j in range(2):
            r, c = rows[:, i][:, None], cols[:, j][None, :]
            weight = y_w[:, i][:, None] * x_w[:, j][None, :]
            if range_scale is not None:
                d = L - L_low[r, c]
                weight = weight * jnp.exp(d * d * range_scale)
            a = a + weight * ab[r, c, 0]
            b = b + weight * ab[r, c, 1]
            den = den + weight
    return a / den, b / den


def _keep_l_to_srgb8(L: jax.Array, a: jax.Array, b: jax.Array, steps: int) -> jax.Array:
    """`photo.lab_to_rgb8_keep_l`, dense: every pixel bisects its chroma factor (those in
    gamut keep factor 1), then the sRGB curve and 8-bit rounding."""
    planes = color.lab_to_linear_planes(jnp, L, a, b)
    inside = color.in_srgb_gamut(jnp, *planes)

    def bisect(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        fits = color.in_srgb_gamut(jnp, *color.lab_to_linear_planes(jnp, L, a * mid, b * mid))
        return jnp.where(fits, mid, lo), jnp.where(fits, hi, mid)

    lo, _ = jax.lax.fori_loop(0, steps, bisect, (jnp.zeros_like(L), jnp.ones_like(L)))
    fitted = color.lab_to_linear_planes(jnp, L, a * lo, b * lo)
    rgb = [jnp.where(inside, p, f) for p, f in zip(planes, fitted)]
    return jnp.stack([color.linear_to_srgb8(jnp, c) for c in rgb], axis=-1)


@functools.partial(jax.jit, static_argnames=("sigma", "steps"))
def compose_tiles(tiles: jax.Array, meta: jax.Array, ab_square: jax.Array,
                  L_square: jax.Array, *, sigma: float | None, steps: int = 12) -> jax.Array:
    """uint8 RGB tiles [N, T, T, 3] of the colour photos.

    tiles: the photos' pixels, uint8 gray [N, T, T] or RGB [N, T, T, 3], or float L [N, T, T]
      (records and .npy lightness); meta: int32 [N, len(META_FIELDS)] (`tile_meta`);
    ab_square: Lab ab [B, R, R, 2] predicted in the render squares; L_square: float32
      [B, R, R], the L they were predicted from; sigma: the bilateral range scale in L units
      (None: bilinear).
    """
    range_scale = None if sigma is None else -0.5 / sigma**2

    def one(tile, m):
        L = color.srgb8_lightness(jnp, tile) if tile.dtype == jnp.uint8 \
            else jnp.clip(tile.astype(jnp.float32), 0.0, 100.0)
        a, b = _upsample_tile(L, m, ab_square, L_square, range_scale)
        return _keep_l_to_srgb8(L, a, b, steps)

    return jax.vmap(one)(tiles, meta)
