"""The generator's colour hints: joined to the encoder's input and to the decoder's scales.

Input (Zhang et al. 2017's `(ab_hint, mask)`): `hint` [B, H, W, 3] = the hinted a/110, b/110
where the mask is 1 (0 elsewhere), and the mask; zeros everywhere mean "no hints", so one
generator serves automatic and guided colourisation.

Two paths, neither disturbing the ported ImageNet weights (each optional:
`config.model.hint_encoder`, `config.model.hint_scales`):

  * The encoder's input (`colour_input`): the encoder sees L as the gray photo it stands for
    (`resnet.gray_input_from_l`); with hints it sees that photo with the hinted pixels in
    their colour (Lab -> sRGB of (L, hinted ab)). An ImageNet classifier was trained on
    colour photos, so a coloured dot is something its filters already respond to, and its
    deep layers carry it as far as the object it sits on: the semantic spread Zhang et al.
    get by feeding hints to their network's first layer, here with no new weight in the
    encoder at all. Without hints the input is exactly the gray photo.
  * The decoder (`HintBranch`): the hint map reduced to the chosen decoder scales (/32 ..
    /1) by a mask-weighted average (the mean hinted colour of a cell, and the share of the
    cell that is hinted), added to that block's features by a 1x1 convolution: the exact
    colour and where it was given, which the encoder's features lose. The projections start
    at zero, so a hint-free checkpoint loaded into a generator with hints (`config.model.
    init_from`) computes what it computed before until training moves them; they have no
    bias, so a map of no hints adds exactly nothing however they are trained.

Why the choice of paths: through the encoder and the coarse scales a hint reaches the whole
photo, and training on hints drawn from the truth rewards that (a photo's true colours are
alike), so a user's red dot recoloured a gray wall far from it (BENCHMARKS.md, "Colour
hints"). Joined only to the fine scales and not to the encoder (the starter's choice), a
hint's reach is bounded by the receptive field of the decoder layers after the join: 37 px
from /8 (tests/models/test_hint_branch.py pins it). The longer-range spread is then the
Colorizer's (`inference/spread.py`), which stops at another lightness and within a set
distance.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxcolor import color
from jaxcolor.models import resnet

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


def check_scales(scales) -> tuple[int, ...]:
    """`scales` as a tuple of distinct members of `SCALES` (config.model.hint_scales)."""
    scales = tuple(int(s) for s in scales)
    if not scales or len(set(scales)) != len(scales) or not set(scales) <= set(SCALES):
        raise ValueError(f"hint scales must be distinct members of {SCALES}, got {scales}")
    return scales


class HintBranch(nnx.Module):
    """(hint map) -> {scale: additive map} for each of `scales` (members of `SCALES`), the
    map at `SCALES[i]` being `widths[i]` wide."""

    def __init__(self, widths: tuple[int, ...], scales: tuple[int, ...] = SCALES, *, dtype,
                 rngs: nnx.Rngs):
        zeros = nnx.initializers.zeros_init()
        self.scales = check_scales(scales)
        width_at = dict(zip(SCALES, widths))
        self.proj = nnx.List([
            nnx.Conv(CHANNELS, width_at[scale], kernel_size=(1, 1), kernel_init=zeros,
                     use_bias=False, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
            for scale in self.scales])

    def __call__(self, hint: jax.Array) -> dict[int, jax.Array]:
        return {scale: proj(pooled(hint, scale).astype(proj.dtype or hint.dtype))
                for proj, scale in zip(self.proj, self.scales)}


def colour_input(l_norm: jax.Array, hint: jax.Array, mean, std) -> jax.Array:
    """The encoder's input [B, H, W, 3] with the hinted pixels in colour: the sRGB of (L,
    hinted ab), normalised by the encoder's `mean`/`std` (module docstring)."""
    L = color.denormalize_l(l_norm)
    hinted = color.lab_to_rgb(jnp.concatenate([L, color.denormalize_ab(hint[..., :2])], -1))
    gray = color.gray_rgb_from_l(L)  # exactly the hint-free input elsewhere
    return resnet.normalize_rgb(jnp.where(hint[..., 2:] > 0, hinted, gray), mean, std)


def empty(l_norm: jax.Array) -> jax.Array:
    """The hint map of no hints, for an input `l_norm` [B, H, W, 1]."""
    return jnp.zeros(l_norm.shape[:-1] + (CHANNELS,), jnp.float32)
