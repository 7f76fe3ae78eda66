"""U-Net generator: an ImageNet encoder and a light decoder that predicts ab from L.

Input is lightness in model units, L / 50 - 1 in [-1, 1], NHWC [B, H, W, 1] with H and W
multiples of 32 (the encoder's total stride). Output is float32 [B, H, W, 2]: a / 110 and
b / 110 in [-1, 1], from one of two heads (`COLOUR_HEADS`):
  regression  a 3x3 conv to (a, b), squashed by tanh, trained with L1 (or its rebalanced
              form): an uncertain pixel gets the median of its plausible colours, which on
              varied photos is a dull brown-gray
  bins        Zhang et al. 2016's classification: a 1x1 conv to logits over the 265
              in-gamut 10-unit ab bins (`jaxcolor.ab_grid`), trained with cross-entropy
              against the truth's Gaussian soft encoding, decoded by the annealed mean
              (softmax(logits / T) times the bin centres; T = 1 the mean, T -> 0 the mode;
              Zhang et al.'s T = 0.38): a confident pixel keeps its saturated mode, an
              uncertain one falls back towards the mean. `predict` also returns the logits
              for training's loss.

Encoder: any of `encoders.BACKBONES` (torchvision ResNet 18..152, MobileNetV2,
EfficientNet-Lite0; no classification head) that sees L as the gray RGB photo it stands for,
normalised as its own weights expect (`encoders.input_from_l`), so ImageNet weights apply
unchanged. It gives 5 feature maps at strides 2..32 (`feature_channels`).
Decoder: five blocks, each doubling the resolution (bilinear, not transposed convolutions,
which leave checkerboard artefacts), concatenating the encoder feature of that scale
(/16, /8, /4, /2, and at full resolution L itself so the output can follow the exact edges
of the input), then two 3x3 conv + BatchNorm + ReLU.

Why the decoder stays light: the encoder carries the semantics and is usually pretrained.
A 1x1 conv first narrows the /32 map (2048 channels for ResNet-50+) to the first decoder
width, and each encoder skip is mapped to its block's width before the 3x3 convs; without
these the first block's 3x3 conv over 2048 + 1024 channels at /16 alone would cost ~18% of a
ResNet-101. Measured with XLA's cost analysis at 224x224 (ResNet-101, default widths):
encoder 15.3 GFLOP, decoder 4.5 GFLOP; 42.5M encoder and 3.4M decoder parameters. With the
mobile encoders the decoder is the larger part: narrow its widths for them.

Freezing the encoder (DeOldify-style warm-up): `ENCODER_PARAMS` / `DECODER_PARAMS` are nnx
filters and `is_encoder_path` a path predicate, e.g.
`nnx.grad(loss, argnums=nnx.DiffState(0, DECODER_PARAMS))` to differentiate the decoder only,
or `optax.multi_transform` with labels from `nnx.map_state(lambda p, _: is_encoder_path(p),
params)`. Remember `model.encoder.eval()` to also freeze its BatchNorm statistics.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jaxcolor import ab_grid, color
from jaxcolor.models import encoders
from jaxcolor.models import hint_branch

ENCODER_STRIDE = 32
"""H and W of the input must be multiples of this (5 stride-2 stages)."""

COLOUR_HEADS = ("regression", "bins")
ANNEALED_T = 0.38  # Zhang et al. 2016's temperature for the annealed mean


def bin_centres() -> jax.Array:
    """float32 [Q, 2]: the bins head's classes, as ab / 110 (model units)."""
    return jnp.asarray(ab_grid.in_gamut_centres() / color.AB_SCALE, jnp.float32)


def annealed_mean(logits: jax.Array, temperature: float) -> jax.Array:
    """ab / 110 [..., 2] of logits over the bins [..., Q]: the mean of the distribution
    sharpened by 1 / temperature (Zhang et al. 2016, eq. 5)."""
    probs = jax.nn.softmax(logits.astype(jnp.float32) / temperature, axis=-1)
    return probs @ bin_centres()


def _top(path: Sequence):
    """The first entry of an nnx path or a jax key path (DictKey / GetAttrKey entries)."""
    first = path[0] if path else None
    return getattr(first, "key", getattr(first, "name", first))


def is_encoder_path(path: Sequence) -> bool:
    """True for a variable of the generator's encoder.

    `path` is an nnx path (("encoder", "layer1", 0, "conv1", "kernel")) or a jax key path
    (DictKey / GetAttrKey entries), so it serves both nnx filters and optax label trees.
    """
    return _top(path) == "encoder"


def is_hint_path(path: Sequence) -> bool:
    """True for a variable of the generator's hint branch (paths as `is_encoder_path`'s)."""
    return _top(path) == "hints"


ENCODER_PARAMS = nnx.All(nnx.Param, lambda path, _: is_encoder_path(path))
"""nnx filter: the encoder's trainable parameters (those to freeze during a warm-up)."""

DECODER_PARAMS = nnx.All(nnx.Param, nnx.Not(lambda path, _: is_encoder_path(path)))
"""nnx filter: every trainable parameter outside the encoder (decoder, attention, head)."""

_he_init = nnx.initializers.he_normal()  # the decoder's convs feed ReLUs.


class ConvBNReLU(nnx.Module):
    """k x k conv (no bias: BatchNorm shifts) + BatchNorm + ReLU, 'same' size output."""

    def __init__(self, in_features: int, out_features: int, kernel: int, *, dtype, rngs):
        pad = kernel // 2
        self.conv = nnx.Conv(
            in_features,
            out_features,
            kernel_size=(kernel, kernel),
            padding=((pad, pad), (pad, pad)),
            use_bias=False,
            kernel_init=_he_init,
            dtype=dtype,
            param_dtype=jnp.float32,
            rngs=rngs,
        )
        self.bn = nnx.BatchNorm(out_features, momentum=0.9, epsilon=1e-5, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return nnx.relu(self.bn(self.conv(x)))


def _upsample2x_along(x: jax.Array, axis: int) -> jax.Array:
    n = x.shape[axis]
    pads = [(0, 0)] * x.ndim
    pads[axis] = (1, 1)
    padded = jnp.pad(x, pads, mode="edge")
    before = jax.lax.slice_in_dim(padded, 0, n, axis=axis)
    after = jax.lax.slice_in_dim(padded, 2, n + 2, axis=axis)
    even = 0.75 * x + 0.25 * before  # output 2i samples input position i - 1/4
    odd = 0.75 * x + 0.25 * after  # output 2i + 1 samples input position i + 1/4
    out = jnp.stack([even, odd], axis=axis + 1)
    return out.reshape(x.shape[:axis] + (2 * n,) + x.shape[axis + 1 :])


def upsample2x(x: jax.Array) -> jax.Array:
    """Bilinear x2 upsampling of NHWC maps, half-pixel centres and clamped edges.

    Equal to `jax.image.resize(..., method="bilinear")` and torch's
    `interpolate(scale_factor=2, mode="bilinear", align_corners=False)`, but as a fixed
    two-tap stencil: jax.image.resize contracts with a dense [out, in] weight matrix per
    axis, whose cost grows with the square of the side (in this decoder at 224x224 it added
    0.7 GFLOP, a sixth of the decoder's total).
    """
    return _upsample2x_along(_upsample2x_along(x, 1), 2)


class DecoderBlock(nnx.Module):
    """x2 upsample, concat the skip (optionally narrowed by a 1x1 conv), two 3x3 ConvBNReLU."""

    def __init__(
        self,
        in_features: int,
        skip_features: int,
        width: int,
        *,
        narrow_skip: bool,
        dtype,
        rngs: nnx.Rngs,
    ):
        if narrow_skip:
            self.skip_proj = ConvBNReLU(skip_features, width, 1, dtype=dtype, rngs=rngs)
            skip_features = width
        else:
            self.skip_proj = None
        self.conv1 = ConvBNReLU(in_features + skip_features, width, 3, dtype=dtype, rngs=rngs)
        self.conv2 = ConvBNReLU(width, width, 3, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, skip: jax.Array, extra: jax.Array | None = None) -> jax.Array:
        """`extra` (the hint branch's map at this scale) is added between the two convs."""
        x = upsample2x(x)
        if self.skip_proj is not None:
            skip = self.skip_proj(skip)
        x = self.conv1(jnp.concatenate([x, skip.astype(x.dtype)], axis=-1))
        return self.conv2(x if extra is None else x + extra.astype(x.dtype))


class SelfAttention(nnx.Module):
    """SAGAN self-attention (Zhang et al., 2019): x + gamma * attend(x), gamma starting at 0.

    Lets distant regions of the same object agree on a colour, which 3x3 convs at /16 only
    see through the encoder. gamma = 0 makes the block the identity at initialisation, so
    enabling it does not disturb a pretrained path. As in SAGAN, queries and keys are
    narrowed to channels / 8 and the logits are not scaled by 1/sqrt(d); the softmax runs
    in float32 whatever the compute dtype.
    """

    def __init__(self, channels: int, *, dtype, rngs: nnx.Rngs):
        inner = max(channels // 8, 1)

        def conv1x1(out_features):
            return nnx.Conv(
                channels, out_features, kernel_size=(1, 1), dtype=dtype, param_dtype=jnp.float32,
                rngs=rngs,
            )

        self.query = conv1x1(inner)
        self.key = conv1x1(inner)
        self.value = conv1x1(channels)
        self.gamma = nnx.Param(jnp.zeros((), jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        b, h, w, c = x.shape
        q = self.query(x).reshape(b, h * w, -1)
        k = self.key(x).reshape(b, h * w, -1)
        v = self.value(x).reshape(b, h * w, c)
        logits = jnp.einsum("bqd,bkd->bqk", q, k, preferred_element_type=jnp.float32)
        weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
        attended = jnp.einsum("bqk,bkc->bqc", weights, v).reshape(b, h, w, c)
        return x + self.gamma[...].astype(x.dtype) * attended


class UNetGenerator(nnx.Module):
    """U-Net: L [B, H, W, 1] in [-1, 1] -> ab / 110 [B, H, W, 2] in [-1, 1], float32.

    Args:
      backbone: the encoder, one of `encoders.BACKBONES` ("resnet101", "mobilenet_v2", ...).
      decoder_widths: output channels of the five decoder blocks (/16, /8, /4, /2, /1).
      self_attention: add a `SelfAttention` block after the /16 decoder block.
      hints: take colour hints (`hint_branch.HintBranch`): `g(l_norm, hint)` with hint
        [B, H, W, 3] = (a/110, b/110 where hinted, mask); none given means no hints.
      hint_scales: the decoder scales the hint map joins (of `hint_branch.SCALES`).
      hint_encoder: the encoder sees the hinted pixels in colour (`hint_branch.colour_input`).
      colour_head: "regression" or "bins" (module docstring).
      temperature: the bins head's annealed-mean temperature (ignored by regression).
      dtype: compute dtype (e.g. jnp.bfloat16); parameters are always float32.
      rngs: parameter initialisation keys.
    """

    def __init__(
        self,
        backbone: str = "resnet101",
        decoder_widths: Sequence[int] = (256, 128, 64, 32, 16),
        self_attention: bool = False,
        hints: bool = False,
        hint_scales: Sequence[int] = hint_branch.SCALES,
        hint_encoder: bool = True,
        colour_head: str = "regression",
        temperature: float = ANNEALED_T,
        *,
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        decoder_widths = tuple(decoder_widths)
        if len(decoder_widths) != 5 or min(decoder_widths) < 1:
            raise ValueError(
                f"UNetGenerator: decoder_widths must be 5 positive ints, got {decoder_widths}"
            )
        if colour_head not in COLOUR_HEADS:
            raise ValueError(f"UNetGenerator: colour_head {colour_head!r}; choose one of "
                             f"{COLOUR_HEADS}")
        if not temperature > 0:
            raise ValueError(f"UNetGenerator: temperature must be > 0, got {temperature}")
        self.colour_head = colour_head
        self.temperature = float(temperature)
        self.encoder = encoders.build(backbone, None, dtype=dtype, rngs=rngs)
        s2, s4, s8, s16, s32 = self.encoder.feature_channels
        # Narrow the /32 map, where a 1x1 conv is cheapest.
        self.bridge = ConvBNReLU(s32, decoder_widths[0], 1, dtype=dtype, rngs=rngs)
        skips = (s16, s8, s4, s2, 1)  # the last skip is L itself, kept as is.
        blocks = []
        in_features = decoder_widths[0]
        for i, (skip, width) in enumerate(zip(skips, decoder_widths)):
            blocks.append(
                DecoderBlock(in_features, skip, width, narrow_skip=i < 4, dtype=dtype, rngs=rngs)
            )
            in_features = width
        self.decoder = nnx.List(blocks)
        self.attention = (
            SelfAttention(decoder_widths[0], dtype=dtype, rngs=rngs) if self_attention else None
        )
        self.hints = (
            hint_branch.HintBranch((decoder_widths[0],) + decoder_widths, tuple(hint_scales),
                                   dtype=dtype, rngs=rngs)
            if hints else None
        )
        self.hint_encoder = hints and hint_encoder
        # The bins head is 1x1: a 3x3 conv to 265 classes at full resolution would cost more
        # than the rest of a mobile U-Net.
        regression = colour_head == "regression"
        self.head = nnx.Conv(
            decoder_widths[-1],
            2 if regression else len(ab_grid.in_gamut_centres()),
            kernel_size=(3, 3) if regression else (1, 1),
            padding=((1, 1), (1, 1)) if regression else ((0, 0), (0, 0)),
            dtype=dtype,
            param_dtype=jnp.float32,
            rngs=rngs,
        )

    def __call__(self, l_norm: jax.Array, hint: jax.Array | None = None) -> jax.Array:
        return self.predict(l_norm, hint)[0]

    def predict(self, l_norm: jax.Array,
                hint: jax.Array | None = None) -> tuple[jax.Array, jax.Array | None]:
        """(ab / 110 [B, H, W, 2], the bins head's float32 logits [B, H, W, Q] or None)."""
        out = self.head(self._decode(l_norm, hint)).astype(jnp.float32)
        if self.colour_head == "regression":
            return jnp.tanh(out), None
        return annealed_mean(out, self.temperature), out

    def _decode(self, l_norm: jax.Array, hint: jax.Array | None) -> jax.Array:
        """The decoder's full-resolution features, before the head."""
        shape = tuple(l_norm.shape)
        if len(shape) != 4 or shape[-1] != 1:
            raise ValueError(f"UNetGenerator: expected L as [B, H, W, 1], got shape {shape}")
        if shape[1] % ENCODER_STRIDE or shape[2] % ENCODER_STRIDE:
            raise ValueError(
                f"UNetGenerator: H and W must be multiples of {ENCODER_STRIDE}, got shape {shape}; "
                "pad or resize the input"
            )
        if hint is not None and self.hints is None:
            raise ValueError("UNetGenerator: a hint map for a generator without hint inputs")
        if hint is None or not self.hint_encoder:
            image = encoders.input_from_l(self.encoder, l_norm)
        else:
            image = hint_branch.colour_input(l_norm, hint, type(self.encoder).input_mean,
                                             type(self.encoder).input_std)
        s2, s4, s8, s16, s32 = self.encoder(image, return_features=True)
        x = self.bridge(s32)
        extras = {}
        if self.hints is not None:
            extras = self.hints(hint_branch.empty(l_norm) if hint is None else hint)
        at_bridge, *at_blocks = (extras.get(scale) for scale in hint_branch.SCALES)
        if at_bridge is not None:
            x = x + at_bridge.astype(x.dtype)
        skips = (s16, s8, s4, s2, l_norm)
        for i, (block, skip, extra) in enumerate(zip(self.decoder, skips, at_blocks)):
            x = block(x, skip, extra)
            if i == 0 and self.attention is not None:
                x = self.attention(x)
        return x
