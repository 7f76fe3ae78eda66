"""Hints spread over what they sit on: the generator's colours corrected towards each hint,
across the pixels that look like the hinted one.

A generator trained on this machine's budget learns to follow hints only weakly (the hint
sweep in BENCHMARKS.md: a fraction of a dB at 10 hints), while a restorer who says "the
dress was blue" expects the whole dress blue. So after G (and its chroma scale), the
Colorizer spreads each hint's *residual* (the hinted ab minus what G predicted there) by
kernel regression over position, lightness and G's own colour, the cross-bilateral
weighting of Levin et al. (2004) and Barron & Poole's bilateral solver without the solve:

    ab_i += sum_k w_ik (hint_k - ab_k) / (sum_k w_ik + DECAY)
    w_ik  = n_k exp(-|p_i - p_k|^2 / 2 s^2 - (L_i - L_k)^2 / 2 SIGMA_L^2
                    - |ab_i - ab_k|^2 / 2 SIGMA_AB^2)

over hinted cells k (the hint map pooled to at most 32 x 32 cells: n_k hinted pixels, their
mean position, lightness, hinted and predicted ab), at most 128 x 128 target pixels i (the
correction is upsampled to the render square, where the colours live anyway). Pixels that
resemble no hint (far away, another lightness, another predicted colour) keep G's colours:
DECAY makes the correction fade where the weights are small. The spatial scale s shrinks as
hints get denser (`SPATIAL` x the render side / sqrt(hinted cells)): ten hints each speak
for a tenth of the photo, a hundred for their neighbourhoods. The constants come from a
grid on validation photos (BENCHMARKS.md, "Colour hints"), with one constraint PSNR does
not see: a hint must stay out of a region of another lightness next to it (a red dress
does not turn the wall behind it red; tests/inference/test_spread.py). A wider SIGMA_L
and a smaller DECAY score ~0.2 dB more at 10 hints by bleeding colour across such edges.

A pure function of arrays (`xp` = jax.numpy on the device or numpy for ONNX Runtime's
output); both give the same colours. Photos without hints (an all-zero mask) are unchanged.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxcolor import color

SIGMA_L = 6.0  # CIELAB L units: hints spread over pixels of similar lightness
SIGMA_AB = 10.0  # ab units: ... and of similar predicted colour (G's idea of the object)
SPATIAL = 1.5  # the spatial scale, in units of the mean spacing of the hinted cells
DECAY = 0.4  # hinted pixels' worth of weight below which a correction fades
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
    """ab [B, R, R, 2] (Lab units) corrected towards the hint map [B, R, R, 3] (a/110,
    b/110 where the mask is set, the mask) over lightness L [B, R, R] (0..100)."""
    b, r = L.shape[0], L.shape[1]
    f32 = xp.float32
    L, ab, hint = (xp.asarray(v, f32) for v in (L, ab, hint))
    mask = hint[..., 2:]
    given = color.denormalize_ab(hint[..., :2])
    # Hinted cells: n_k, and the mask-weighted means of position, L, hinted and predicted ab.
    fc = _factor(r, CELLS)
    pos = xp.broadcast_to(_centres(r, 1, xp)[None], (b, r, r, 2))
    sums = _pool(xp.concatenate([mask, mask * pos, mask * L[..., None], mask * given,
                                 mask * ab], axis=-1), fc, xp).reshape(b, -1, 8)
    n = sums[..., 0]
    means = sums[..., 1:] / xp.maximum(n, 1e-6)[..., None]
    pos_k, L_k, given_k, ab_k = means[..., :2], means[..., 2], means[..., 3:5], means[..., 5:]
    cells = xp.sum(n > 0, axis=1).astype(f32)  # [B]
    scale = SPATIAL * r / xp.sqrt(xp.maximum(cells, 1.0))
    # Target pixels: L, ab and position of TARGET x TARGET blocks.
    ft = _factor(r, TARGET)
    area = float(ft * ft)
    L_i = (_pool(L[..., None], ft, xp) / area).reshape(b, -1)
    ab_i = (_pool(ab, ft, xp) / area).reshape(b, -1, 2)
    pos_i = _centres(r, ft, xp).reshape(1, -1, 2)

    def sq_dist(x, y):  # [B, I, C], [B, K, C] -> [B, I, K]
        return xp.sum((x[:, :, None] - y[:, None]) ** 2, axis=-1)

    log_w = (-sq_dist(xp.broadcast_to(pos_i, (b,) + pos_i.shape[1:]), pos_k)
             / (2 * scale[:, None, None] ** 2)
             - (L_i[:, :, None] - L_k[:, None]) ** 2 / (2 * SIGMA_L ** 2)
             - sq_dist(ab_i, ab_k) / (2 * SIGMA_AB ** 2))
    w = n[:, None] * xp.exp(log_w)  # [B, I, K]; 0 for cells without hints
    correction = (xp.einsum("bik,bkc->bic", w, given_k - ab_k)
                  / (xp.sum(w, axis=-1, keepdims=True) + DECAY))
    t = r // ft
    correction = correction.reshape(b, t, 1, t, 1, 2)
    correction = xp.broadcast_to(correction, (b, t, ft, t, ft, 2)).reshape(b, r, r, 2)
    return ab + correction
