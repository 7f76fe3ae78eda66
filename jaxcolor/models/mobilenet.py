"""torchvision-compatible MobileNetV2 in Flax NNX.

Why: a 3.5M-parameter ImageNet encoder (71.9% top-1) whose weights ship as
`mobilenet_v2-b0353104.pth`, light enough to fine-tune inside the U-Net on two CPU cores.
As `resnet.py` does for ResNets, the module mirrors `torchvision.models.MobileNetV2` attribute
for attribute, so porting is a key-for-key rename (`port.py`):

    features[0]        [conv 3x3 /2, bn] + ReLU6                 features.0.0 / features.0.1
    features[1..17]    InvertedResidual, `.conv` as in torchvision:
                         expand_ratio 1: [[dw conv, bn], project conv, bn]
                         otherwise:      [[1x1 conv, bn], [dw conv, bn], project conv, bn]
    features[18]       [1x1 conv to 1280, bn] + ReLU6
    classifier         [Dropout(0.2), Linear]                     classifier.1

Padding is explicit and symmetric ((k - 1) // 2, as torchvision's Conv2dNormActivation), never
"SAME" (see resnet.py). BatchNorm: epsilon 1e-5, momentum 0.9 (torch's 0.1).

Features for the U-Net (`return_features=True`): the output of the last block at each
resolution, i.e. features[1] (/2, 16 ch), [3] (/4, 24), [6] (/8, 32), [13] (/16, 96) and
[18] (/32, 1280): the taps of segmentation_models_pytorch's `mobilenet_v2` encoder. The last
block of a resolution has seen the most context there, and tapping block outputs (not the
expanded 6x hidden layers inside a block) keeps the skips narrow. The /32 tap includes
features[18]'s 1280-channel conv, as SMP's does, so every ported weight serves the encoder.

Inputs: NHWC RGB in ImageNet mean/std (`input_mean`, `input_std`), as torchvision's weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jaxcolor.models import depthwise
from jaxcolor.models.resnet import IMAGENET_MEAN, IMAGENET_STD

INVERTED_RESIDUAL_SETTING: tuple[tuple[int, int, int, int], ...] = (
    # expand ratio t, output channels c, repeats n, stride of the first s
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
"""torchvision's (and the paper's) MobileNetV2 stages."""

# torch's kaiming_normal_(mode="fan_out"), as torchvision initialises MobileNetV2's convs.
_conv_init = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")


def make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's `_make_divisible`: round to a multiple of divisor, never down by > 10%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def relu6(x: jax.Array) -> jax.Array:
    return jnp.clip(x, 0.0, 6.0)


def _conv_bn(in_ch, out_ch, kernel, stride, *, groups=1, dtype, param_dtype, rngs) -> nnx.List:
    """torchvision's Conv2dNormActivation without its activation: [conv, bn]. Depthwise convs
    run through `depthwise.conv_general_dilated` (fast on XLA:CPU)."""
    pad = (kernel - 1) // 2
    conv = nnx.Conv(in_ch, out_ch, kernel_size=(kernel, kernel), strides=(stride, stride),
                    padding=((pad, pad), (pad, pad)), feature_group_count=groups,
                    use_bias=False, kernel_init=_conv_init, dtype=dtype,
                    param_dtype=param_dtype, rngs=rngs,
                    conv_general_dilated=depthwise.conv_general_dilated)
    bn = nnx.BatchNorm(out_ch, momentum=0.9, epsilon=1e-5, dtype=dtype,
                       param_dtype=param_dtype, rngs=rngs)
    return nnx.List([conv, bn])


def conv_bn_relu6(layer: nnx.List, x: jax.Array) -> jax.Array:
    conv, bn = layer
    return relu6(bn(conv(x)))


class InvertedResidual(nnx.Module):
    """1x1 expand (unless expand_ratio is 1), 3x3 depthwise (carrying the stride), linear 1x1
    projection; the input is added back when stride is 1 and the widths agree."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: int, *,
                 dtype, param_dtype, rngs):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        hidden = int(round(in_ch * expand_ratio))
        layers = [] if expand_ratio == 1 else [_conv_bn(in_ch, hidden, 1, 1, **kw)]
        layers.append(_conv_bn(hidden, hidden, 3, stride, groups=hidden, **kw))
        project, bn = _conv_bn(hidden, out_ch, 1, 1, **kw)
        self.conv = nnx.List([*layers, project, bn])
        self.stride = stride
        self.use_residual = stride == 1 and in_ch == out_ch

    def __call__(self, x: jax.Array) -> jax.Array:
        *activated, project, bn = self.conv
        y = x
        for layer in activated:
            y = conv_bn_relu6(layer, y)
        y = bn(project(y))
        return x + y if self.use_residual else y


def feature_taps(strides: Sequence[int]) -> tuple[int, ...]:
    """Indices of the blocks whose outputs are the 5 feature maps: the last block before each
    later stride-2 block, and the last block. `strides` of features[0..], stem first."""
    taps = tuple(i for i in range(1, len(strides) - 1) if strides[i + 1] == 2)
    taps += (len(strides) - 1,)
    if len(taps) != 5 or strides.count(2) != 5:
        raise ValueError(f"MobileNetV2 needs 5 stride-2 layers for 5 feature maps, got strides "
                         f"{tuple(strides)}")
    return taps


class MobileNetV2(nnx.Module):
    """torchvision's MobileNetV2, NHWC.

    Args:
      num_classes: size of the classifier; None or 0 builds no head (encoder use).
      width_mult, settings, round_nearest: as torchvision's constructor (the real network is
        width 1.0 with `INVERTED_RESIDUAL_SETTING`; others exist for tiny test networks).
      dtype: computation dtype; param_dtype: storage dtype of parameters.

    Attributes:
      feature_channels: channels of the 5 feature maps, (16, 24, 32, 96, 1280) at width 1.
    """

    input_mean = IMAGENET_MEAN
    input_std = IMAGENET_STD
    head_names = ("classifier",)
    """Top-level attributes that make the classification head (absent in an encoder)."""

    def __init__(self, num_classes: int | None = 1000, *, width_mult: float = 1.0,
                 settings: Sequence[Sequence[int]] = INVERTED_RESIDUAL_SETTING,
                 round_nearest: int = 8, dtype=jnp.float32, param_dtype=jnp.float32,
                 rngs: nnx.Rngs):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.dtype = dtype
        in_ch = make_divisible(32 * width_mult, round_nearest)
        last_ch = make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features, strides = [_conv_bn(3, in_ch, 3, 2, **kw)], [2]
        for t, c, n, s in settings:
            out_ch = make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(in_ch, out_ch, s if i == 0 else 1, t, **kw))
                strides.append(s if i == 0 else 1)
                in_ch = out_ch
        features.append(_conv_bn(in_ch, last_ch, 1, 1, **kw))
        strides.append(1)
        self.features = nnx.List(features)
        self.taps = feature_taps(strides)
        self.feature_channels: tuple[int, ...] = tuple(
            last_ch if i == len(features) - 1 else features[i].conv[-1].num_features
            for i in self.taps)
        if num_classes:
            # torchvision: Linear weights ~ N(0, 0.01), zero bias; dropout 0.2 before it
            # (deterministic: it only acts in train mode when called with rngs).
            linear = nnx.Linear(last_ch, num_classes,
                                kernel_init=nnx.initializers.normal(0.01), **kw)
            self.classifier = nnx.List([nnx.Dropout(0.2), linear])
        else:
            self.classifier = None

    def __call__(self, x: jax.Array, *, return_features: bool = False):
        """x: [B, H, W, 3] ImageNet-normalised RGB -> logits [B, num_classes], or with
        `return_features=True` the 5 maps at strides 2, 4, 8, 16, 32 (module docstring)."""
        if self.classifier is None and not return_features:
            raise ValueError("this MobileNetV2 has no classifier (num_classes=None); call it "
                             "with return_features=True")
        y = jnp.asarray(x, self.dtype)
        features = []
        for i, layer in enumerate(self.features):
            y = layer(y) if isinstance(layer, InvertedResidual) else conv_bn_relu6(layer, y)
            if return_features and i in self.taps:
                features.append(y)
        if return_features:
            return tuple(features)
        dropout, linear = self.classifier
        return linear(dropout(jnp.mean(y, axis=(1, 2))))


def mobilenet_v2(num_classes: int | None = 1000, *, dtype=jnp.float32,
                 param_dtype=jnp.float32, rngs: nnx.Rngs) -> MobileNetV2:
    """torchvision's `mobilenet_v2()`: width 1.0, the paper's stages."""
    return MobileNetV2(num_classes, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
