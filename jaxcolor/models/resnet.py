"""torchvision-compatible ResNet (v1.5) in Flax NNX: depths 18, 34, 50, 101, 152.

Why torchvision's layout and names: the colouriser's encoder starts from ImageNet weights,
and the only widely available ones are torchvision's (and timm's, which share the names).
Mirroring `torchvision.models.resnet` attribute for attribute (`conv1`, `bn1`, `layer1[0]`,
`downsample[0]`, `fc`) makes porting a key-for-key rename (see `port.py`), and any
difference from torch is a bug, not a design choice:

  * v1.5: a Bottleneck's stride sits on its 3x3 conv, not its first 1x1.
  * Padding is explicit and symmetric everywhere. "SAME" pads asymmetrically for stride-2
    layers on even inputs and shifts every feature map by half a pixel: a ported
    resnet101's logits then differ from torch by ~5%.
  * The stem max-pool pads with -inf (flax's `max_pool` pads with its init value, -inf),
    as torch does, so padding never wins the max.
  * BatchNorm epsilon 1e-5 and momentum 0.9 (flax's convention for torch's 0.1).
    One difference remains in training mode only: torch updates the running variance with
    the unbiased batch variance, flax with the biased one.

Inputs are NHWC, ImageNet-normalised RGB (`normalize_rgb`, `gray_input_from_l`).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jaxcolor.color import denormalize_l, gray_rgb_from_l

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""Per-channel mean of ImageNet RGB in [0, 1], what torchvision's weights expect."""

IMAGENET_STD = (0.229, 0.224, 0.225)
"""Per-channel standard deviation of ImageNet RGB in [0, 1]."""


def normalize_rgb(rgb01: jax.Array, mean: Sequence[float] = IMAGENET_MEAN,
                  std: Sequence[float] = IMAGENET_STD) -> jax.Array:
    """sRGB in [0, 1] (..., 3) -> (rgb - mean) / std, the input an encoder's weights expect
    (each encoder class names its own `input_mean` and `input_std`)."""
    mean = jnp.asarray(mean, jnp.float32)
    std = jnp.asarray(std, jnp.float32)
    return (jnp.asarray(rgb01, jnp.float32) - mean) / std


def gray_input_from_l(l_norm: jax.Array, mean: Sequence[float] = IMAGENET_MEAN,
                      std: Sequence[float] = IMAGENET_STD) -> jax.Array:
    """Model-normalised lightness [B, H, W, 1] in [-1, 1] -> encoder input [B, H, W, 3].

    An ImageNet encoder has seen gray photos as RGB images with three equal channels, not
    as CIELAB lightness. So L becomes the sRGB gray value it stands for (Lab with a = b = 0),
    repeated on three channels and normalised like any RGB photo: ImageNet mean/std by
    default, or the encoder's own `input_mean`/`input_std` (EfficientNet-Lite: [-1, 1]).
    """
    gray = gray_rgb_from_l(denormalize_l(l_norm))  # [B, H, W, 1] in [0, 1]
    rgb = jnp.broadcast_to(gray, (*gray.shape[:-1], 3))
    return normalize_rgb(rgb, mean, std)


# torch's kaiming_normal_(mode="fan_out", nonlinearity="relu"), as torchvision initialises convs.
_conv_init = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")


def _conv(in_ch, out_ch, kernel, stride, *, dtype, param_dtype, rngs) -> nnx.Conv:
    """A bias-free conv with torch's symmetric padding (kernel // 2 on every side)."""
    pad = kernel // 2
    return nnx.Conv(
        in_ch,
        out_ch,
        kernel_size=(kernel, kernel),
        strides=(stride, stride),
        padding=((pad, pad), (pad, pad)),
        use_bias=False,
        kernel_init=_conv_init,
        dtype=dtype,
        param_dtype=param_dtype,
        rngs=rngs,
    )


def _bn(channels, *, dtype, param_dtype, rngs) -> nnx.BatchNorm:
    return nnx.BatchNorm(
        channels,
        momentum=0.9,
        epsilon=1e-5,
        dtype=dtype,
        param_dtype=param_dtype,
        rngs=rngs,
    )


def _downsample(in_ch, out_ch, stride, *, dtype, param_dtype, rngs) -> nnx.List | None:
    """The projection shortcut [1x1 conv, bn], or None where the identity fits."""
    if stride == 1 and in_ch == out_ch:
        return None
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    return nnx.List([_conv(in_ch, out_ch, 1, stride, **kw), _bn(out_ch, **kw)])


def _shortcut(downsample: nnx.List | None, x: jax.Array) -> jax.Array:
    if downsample is None:
        return x
    conv, bn = downsample
    return bn(conv(x))


class BasicBlock(nnx.Module):
    """Two 3x3 convs (ResNet-18/34). Output channels = planes."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int, *, dtype, param_dtype, rngs):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.conv1 = _conv(in_ch, planes, 3, stride, **kw)
        self.bn1 = _bn(planes, **kw)
        self.conv2 = _conv(planes, planes, 3, 1, **kw)
        self.bn2 = _bn(planes, **kw)
        self.downsample = _downsample(in_ch, planes, stride, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = nnx.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return nnx.relu(y + _shortcut(self.downsample, x))


class Bottleneck(nnx.Module):
    """1x1 reduce, 3x3 (carrying the stride: v1.5), 1x1 expand. Output channels = 4 * planes."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int, *, dtype, param_dtype, rngs):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        out_ch = planes * self.expansion
        self.conv1 = _conv(in_ch, planes, 1, 1, **kw)
        self.bn1 = _bn(planes, **kw)
        self.conv2 = _conv(planes, planes, 3, stride, **kw)
        self.bn2 = _bn(planes, **kw)
        self.conv3 = _conv(planes, out_ch, 1, 1, **kw)
        self.bn3 = _bn(out_ch, **kw)
        self.downsample = _downsample(in_ch, out_ch, stride, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = nnx.relu(self.bn1(self.conv1(x)))
        y = nnx.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return nnx.relu(y + _shortcut(self.downsample, x))


STAGE_SIZES: dict[int, tuple[type[nnx.Module], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}
"""depth -> (block type, blocks per stage), as in torchvision."""


class ResNet(nnx.Module):
    """torchvision's ResNet, NHWC.

    Args:
      block: `BasicBlock` or `Bottleneck`.
      stage_sizes: number of blocks in layer1..layer4.
      num_classes: size of the `fc` head; None or 0 builds no head (encoder use).
      base_channels: stem width; stage widths are base_channels * (1, 2, 4, 8) (times the
        block's expansion). torchvision's ResNets all use 64; smaller values exist only for
        tiny test networks. (Not torchvision's `width_per_group`, which widens bottlenecks.)
      dtype: computation dtype (e.g. bfloat16); param_dtype: storage dtype of parameters.

    Attributes:
      feature_channels: channels of the 5 feature maps, e.g. (64, 256, 512, 1024, 2048).
    """

    input_mean = IMAGENET_MEAN
    input_std = IMAGENET_STD
    head_names = ("fc",)
    """Top-level attributes that make the classification head (absent in an encoder)."""

    def __init__(
        self,
        block: type[nnx.Module],
        stage_sizes: Sequence[int],
        num_classes: int | None = 1000,
        *,
        base_channels: int = 64,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        if len(stage_sizes) != 4 or min(stage_sizes) < 1:
            raise ValueError(f"stage_sizes must be 4 positive ints, got {tuple(stage_sizes)}")
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.dtype = dtype
        self.conv1 = nnx.Conv(
            3,
            base_channels,
            kernel_size=(7, 7),
            strides=(2, 2),
            padding=((3, 3), (3, 3)),
            use_bias=False,
            kernel_init=_conv_init,
            **kw,
        )
        self.bn1 = _bn(base_channels, **kw)

        in_ch = base_channels
        stages = []
        for i, num_blocks in enumerate(stage_sizes):
            planes = base_channels * 2**i
            stride = 1 if i == 0 else 2
            blocks = []
            for j in range(num_blocks):
                blocks.append(block(in_ch, planes, stride if j == 0 else 1, **kw))
                in_ch = planes * block.expansion
            stages.append(nnx.List(blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

        # Channels of the 5 maps `return_features=True` gives (strides 2, 4, 8, 16, 32).
        self.feature_channels: tuple[int, ...] = (base_channels,) + tuple(
            base_channels * 2**i * block.expansion for i in range(4)
        )

        if num_classes:
            # torch's nn.Linear default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the kernel.
            self.fc = nnx.Linear(
                in_ch,
                num_classes,
                kernel_init=nnx.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
                **kw,
            )
        else:
            self.fc = None

    def __call__(self, x: jax.Array, *, return_features: bool = False):
        """x: [B, H, W, 3] ImageNet-normalised RGB.

        Returns logits [B, num_classes] (needs a head), or with `return_features=True` the
        tuple (stem after relu /2, layer1 /4, layer2 /8, layer3 /16, layer4 /32) for
        U-Net skips. Feature sizes follow torch: each stride-2 layer maps n to floor((n-1)/2)+1.
        """
        if self.fc is None and not return_features:
            raise ValueError(
                "this ResNet has no fc head (num_classes=None); call it with return_features=True"
            )
        x = jnp.asarray(x, self.dtype)
        stem = nnx.relu(self.bn1(self.conv1(x)))
        y = nnx.max_pool(stem, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        features = [stem]
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for blk in stage:
                y = blk(y)
            features.append(y)
        if return_features:
            return tuple(features)
        pooled = jnp.mean(y, axis=(1, 2))
        return self.fc(pooled)


def resnet(
    depth: int,
    num_classes: int | None = 1000,
    *,
    dtype=jnp.float32,
    param_dtype=jnp.float32,
    rngs: nnx.Rngs,
) -> ResNet:
    """The torchvision ResNet of the given depth (18, 34, 50, 101 or 152)."""
    if depth not in STAGE_SIZES:
        raise ValueError(f"ResNet depth must be one of {sorted(STAGE_SIZES)}, got {depth}")
    block, stage_sizes = STAGE_SIZES[depth]
    return ResNet(block, stage_sizes, num_classes, dtype=dtype, param_dtype=param_dtype, rngs=rngs)


def resnet18(num_classes=1000, *, dtype=jnp.float32, param_dtype=jnp.float32, rngs: nnx.Rngs):
    return resnet(18, num_classes, dtype=dtype, param_dtype=param_dtype, rngs=rngs)


def resnet34(num_classes=1000, *, dtype=jnp.float32, param_dtype=jnp.float32, rngs: nnx.Rngs):
    return resnet(34, num_classes, dtype=dtype, param_dtype=param_dtype, rngs=rngs)


def resnet50(num_classes=1000, *, dtype=jnp.float32, param_dtype=jnp.float32, rngs: nnx.Rngs):
    return resnet(50, num_classes, dtype=dtype, param_dtype=param_dtype, rngs=rngs)


def resnet101(num_classes=1000, *, dtype=jnp.float32, param_dtype=jnp.float32, rngs: nnx.Rngs):
    return resnet(101, num_classes, dtype=dtype, param_dtype=param_dtype, rngs=rngs)


def resnet152(num_classes=1000, *, dtype=jnp.float32, param_dtype=jnp.float32, rngs: nnx.Rngs):
    return resnet(152, num_classes, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
