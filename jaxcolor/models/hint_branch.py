"""The generator's colour-hint branch: user-given colours joined to the decoder at every scale.

Input (Zhang et al. 2017's `(ab_hint, mask)`): `hint` [B, H, W, 3] = the hinted a/110, b/110
where the mask is 1, and the mask; zeros everywhere mean "no hints", so one generator serves
automatic and guided colourisation.

Why the decoder, and why zero-initialised: the encoder is an ImageNet classifier whose
ported weights a hint input must not disturb, and which needs to see only the photo to find
objects and edges. The hint map is reduced to every decoder scale (/32 .. /1) by a
mask-weighted average (the mean hinted colour of a cell, and the share of the cell that is
hinted), and a 1x1 convolution per scale adds it to that decoder block's features. At /32 one
cell spans a sixteenth of a 128 px render, so a single point reaches a whole region at once,
and the decoder's 3x3 convolutions, guided by the encoder's features, decide where the colour
stops. The projections start at zero: a generator with the branch computes exactly what the
same generator without it computes until training moves them, so a hint-free checkpoint is a
valid starting point (its decoder and encoder load unchanged) and the branch adds nothing at
zero hints at initialisation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

CHANNELS = 3  # a/110, b/110, mask
SCALES = (32, 16, 8, 4, 2, 1)  # the bridge's output, then each decoder block's


def pooled(hint: jax.Array, factor: int) -> jax.Array:
    """[B, H, W, 3] -> [B, H/f, W/f, 3]: each cell's mean hinted colour (0 where nothing is
    hinted) and the share of the cell that is hinted."""
    if factor == 1:
        return hint
    b, h, w, c = hint.shape
    cells = hint.reshape(b, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))
    ab_sum, share = cells[..., :2], cells[..., 2:]
    return jnp.concatenate([ab_sum / jnp.maximum(share, 1e-6), share], axis=-1)


class HintBranch(nnx.Module):
    """(hint map) -> one additive map per decoder scale (`SCALES`), each `widths[i]` wide."""

    def __init__(self, widths: tuple[int, ...], *, dtype, rngs: nnx.Rngs):
        zeros = nnx.initializers.zeros_init()
        self.proj = nnx.List([
            nnx.Conv(CHANNELS, width, kernel_size=(1, 1), kernel_init=zeros, bias_init=zeros,
                     dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
            for width in widths])

    def __call__(self, hint: jax.Array) -> list[jax.Array]:
        return [proj(pooled(hint, factor).astype(proj.dtype or hint.dtype))
                for proj, factor in zip(self.proj, SCALES)]


def empty(l_norm: jax.Array) -> jax.Array:
    """The hint map of no hints, for an input `l_norm` [B, H, W, 1]."""
    return jnp.zeros(l_norm.shape[:-1] + (CHANNELS,), jnp.float32)
