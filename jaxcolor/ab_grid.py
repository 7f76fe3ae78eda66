"""The quantised ab plane: Zhang et al.'s ("Colorful Image Colorization", 2016) bins.

a and b are quantised into 10-unit bins over [-110, 110): a 22 x 22 grid, of which 8-bit
sRGB reaches 265 (`gamut_mask`; Zhang et al., binning differently, 313). Two users: the
colour prior and its rebalancing weights (`data.prior`), and the generator's classification
head (`models.generator`, `config.model.colour_head = "bins"`), which predicts a
distribution over the in-gamut bins (`in_gamut_centres`). It is a ground-floor module
because both layers need the same grid and neither may import the other.

Everything is numpy except `bin_index`, which takes the array module (`xp`) so a training
step bins its target on the device with the same formula.
"""

from __future__ import annotations

import functools

import numpy as np

from jaxcolor import color

BIN = 10  # ab units per bin (Zhang et al.)
AB_MIN = -110  # the grid covers [-110, 110) in a and b; values outside land in the edge bins
BINS_PER_AXIS = 22
BINS = BINS_PER_AXIS * BINS_PER_AXIS


def bin_index(a, b, *, xp=np):
    """Flat bin (0..BINS-1) of integer-valued a, b (Lab units; arrays of any shape)."""
    ia = xp.clip((a - AB_MIN) // BIN, 0, BINS_PER_AXIS - 1)
    ib = xp.clip((b - AB_MIN) // BIN, 0, BINS_PER_AXIS - 1)
    return (ia * BINS_PER_AXIS + ib).astype(xp.int32)


@functools.lru_cache(maxsize=1)
def _ab8_bins() -> np.ndarray:
    """Bin of each 8-bit a (or b) code 0..255 along its axis: a look-up table."""
    codes = np.arange(256) - int(color.AB8_OFFSET)
    return np.clip((codes - AB_MIN) // BIN, 0, BINS_PER_AXIS - 1).astype(np.int32)


def histograms(ab8: np.ndarray) -> np.ndarray:
    """Per-record pixel counts of each bin: uint8 ab8 [n, H, W, 2] -> uint32 [n, BINS]."""
    ab8 = np.asarray(ab8)
    n = ab8.shape[0]
    table = _ab8_bins()
    flat = table[ab8[..., 0]] * BINS_PER_AXIS + table[ab8[..., 1]]
    flat = flat.reshape(n, -1) + (np.arange(n, dtype=np.int64) * BINS)[:, None]
    return np.bincount(flat.ravel(), minlength=n * BINS).reshape(n, BINS).astype(np.uint32)


@functools.lru_cache(maxsize=1)
def gamut_mask() -> np.ndarray:
    """bool [BINS]: the bins some 8-bit sRGB colour falls in (at any lightness).

    Every sRGB colour on a grid of 64 levels per channel plus the cube's faces at full
    8-bit resolution (the gamut's boundary, where the extreme a and b are) is converted and
    binned. Two views of the same 8-bit encoding the records use, so no stored pixel can
    fall outside the mask by rounding."""
    levels = np.arange(0, 256, 4, dtype=np.uint8)
    cube = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    full = np.arange(256, dtype=np.uint8)
    u, v = (x.ravel() for x in np.meshgrid(full, full, indexing="ij"))
    faces = [np.stack([f(u, v, c)[i] for i in range(3)], -1)
             for c in (0, 255) for f in (lambda u, v, c: (np.full_like(u, c), u, v),
                                         lambda u, v, c: (u, np.full_like(u, c), v),
                                         lambda u, v, c: (u, v, np.full_like(u, c)))]
    rgb = np.concatenate([cube, *faces])
    _, ab8 = color.encode_lab8(color.rgb_to_lab_np(rgb))
    return histograms(ab8[None])[0] > 0


def centres() -> np.ndarray:
    """float32 [BINS, 2]: each bin's centre (a, b) in Lab units, in `bin_index` order."""
    mids = AB_MIN + BIN * (np.arange(BINS_PER_AXIS, dtype=np.float32) + 0.5)
    a, b = np.meshgrid(mids, mids, indexing="ij")
    return np.stack([a.ravel(), b.ravel()], -1)


@functools.lru_cache(maxsize=1)
def in_gamut_centres() -> np.ndarray:
    """float32 [Q, 2]: the centres of the `gamut_mask` bins (Q = 265), the classes of the
    generator's classification head."""
    out = centres()[gamut_mask()]
    out.flags.writeable = False  # cached: shared by every caller
    return out
