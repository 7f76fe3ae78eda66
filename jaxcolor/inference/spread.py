"""Hints spread over what they sit on: the generator's colours corrected towards each hint,
across the pixels that look like the hinted one.

A generator trained on this machine's budget learns to follow hints only weakly (the hint
sweep in BENCHMARKS.md: a fraction of a dB at 10 hints), while a restorer who says "the
dress was blue" expects the whole dress blue. So after G (and its chroma scale), the
Colorizer draws each pixel's colour towards the hints' colours, weighted by kernel
regression over position and lightness, the cross-bilateral weighting of Levin et
al. (2004) and Barron & Poole's bilateral solver without the solve:

    ab_i += W_i / (W_i + DECAY) * (sum_k w_ik hint_k / W_i - ab_i),   W_i = sum_k w_ik
    w_ik  = n_k exp(-|p_i - p_k|^2 / 2 s^2 - (L_i - L_k)^2 / 2 SIGMA_L^2)

over hinted cells k (the hint map pooled to at most 32 x 32 cells: n_k hinted pixels, their
mean position, lightness and hinted ab) and at most 128 x 128 target pixels i
(the correction is upsampled to the render square, where the colours live anyway). Pixels
that resemble no hint (far away, another lightness) keep G's colours: DECAY makes the
correction fade where the weights are small. G's own colours are no guide to what belongs
together: a generator that takes hints already colours the hinted pixels, so there its
colour differs from the rest of the same object.

The spatial scale s shrinks as hints get denser (`SPATIAL` x the render side / sqrt(hinted
cells)): ten hints each speak for a tenth of the photo, a hundred for their
neighbourhoods. It never exceeds `REACH` x the side: without that ceiling one hint spoke
for the whole photo and recoloured everything of its lightness, far from where the user
clicked (hints drawn from the truth reward that, since a photo's true colours are
alike; a restorer's red dress does not). The constants come from a grid on validation
photos (BENCHMARKS.md, "Colour hints"): the largest PSNR gain at 10 hints among the settings
where one red hint changes the pixels more than a quarter of the photo away from it by less
than a just-noticeable difference (2.3 ab units on average), and a hint stays out of a
region of another lightness next to it (a red dress does not turn the wall behind it red;
tests/inference/test_spread.py).

A pure function of arrays (`xp` = jax.numpy on the device or numpy for ONNX Runtime's
output); both give the same colours. Photos without hints (an all-zero mask) are unchanged.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxcolor import color

SIGMA_L = 6.0  # CIELAB L units: hints spread over pixels of similar lightness
SPATIAL = 1.5  # the spatial scale, in units of the mean spacing of the hinted cells
DECAY = 0.4  # hinted pixels' worth of weight below which a correction fades
REACH = 0.12  # the spatial scale's ceiling, in render sides
TARGET = 128  # the correction is computed on at most TARGET x TARGET pixels
CELLS = 32  # the hint map pooled to at most CELLS x CELLS cells


def _factor(side: int, most: int) -> int:
    """The smallest power of two f with side / f <= most (render sides are multiples of 32,
    so f divides them up to a side of 32 * most)."""
    f = 1
    while side // f > most:
        f *= 2
    return f


def _pool(x, f: int, xp):
    """[B, R, R, C] -> [B, R/f, R/f, C]: sums over f x f blocks."""
    b, h, w, c = x.shape
    return x.reshape(b, h // f, f, w // f, f, c).sum(axis=(2, 4))


def _centres(side: int, f: int, xp):
    """[side/f, side/f, 2]: the (y, x) of each f x f block's centre, in pixels."""
    c = (xp.arange(side // f, dtype=xp.float32) + 0.5) * f - 0.5
    return xp.stack(xp.meshgrid(c, c, indexing="ij"), axis=-1)


def spread(L, ab, hint, *, xp=jnp):
    """ab [B, R, R, 2] (Lab units) drawn towards the hint map [B, R, R, 3] (a/110, b/110
    where the mask is set, the mask) over lightness L [B, R, R] (0..100)."""
    b, r = L.shape[0], L.shape[1]
    f32 = xp.float32
    L, ab, hint = (xp.asarray(v, f32) for v in (L, ab, hint))
    mask = hint[..., 2:]
    given = color.denormalize_ab(hint[..., :2])
    # Hinted cells: n_k, and the mask-weighted means of position, L and the hinted ab.
    fc = _factor(r, CELLS)
    pos = xp.broadcast_to(_centres(r, 1, xp)[None], (b, r, r, 2))
    sums = _pool(xp.concatenate([mask, mask * pos, mask * L[..., None], mask * given],
                                axis=-1), fc, xp).reshape(b, -1, 6)
    n = sums[..., 0]
    means = sums[..., 1:] / xp.maximum(n, 1e-6)[..., None]
    pos_k, L_k, given_k = means[..., :2], means[..., 2], means[..., 3:]
    cells = xp.sum(n > 0, axis=1).astype(f32)  # [B]
    scale = xp.minimum(SPATIAL * r / xp.sqrt(xp.maximum(cells, 1.0)), REACH * r)
    # Target pixels: the lightness and position of TARGET x TARGET blocks.
    ft = _factor(r, TARGET)
    L_i = (_pool(L[..., None], ft, xp) / float(ft * ft)).reshape(b, -1)
    pos_i = _centres(r, ft, xp).reshape(1, -1, 2)
    log_w = (-xp.sum((pos_i[:, :, None] - pos_k[:, None]) ** 2, axis=-1)
             / (2 * scale[:, None, None] ** 2)
             - (L_i[:, :, None] - L_k[:, None]) ** 2 / (2 * SIGMA_L ** 2))
    w = n[:, None] * xp.exp(log_w)  # [B, I, K]; 0 for cells without hints
    total = xp.sum(w, axis=-1, keepdims=True)
    pull = total / (total + DECAY)  # [B, I, 1]: how far towards the hints' colour
    target = xp.einsum("bik,bkc->bic", w, given_k) / xp.maximum(total, 1e-30)
    t = r // ft

    def upsampled(x):  # [B, t*t, C] -> [B, R, R, C], each block's value on its pixels
        c = x.shape[-1]
        return xp.broadcast_to(x.reshape(b, t, 1, t, 1, c), (b, t, ft, t, ft, c)).reshape(
            b, r, r, c)

    return ab + upsampled(pull) * (upsampled(target) - ab)
