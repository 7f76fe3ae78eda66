"""The ImageNet classifiers the generator can use as its encoder, by backbone name.

`config.model.backbone` names one of `BACKBONES`; `build` makes it. Every encoder class
follows one small protocol (`Encoder`), which is all the U-Net (`generator.py`), the porter
(`port.py`) and the ONNX export rely on:

  * `feature_channels`: channels of its 5 feature maps, at strides 2, 4, 8, 16 and 32;
  * `__call__(x, return_features=True)`: those maps (False: the logits, with a head);
  * `input_mean`, `input_std`: the normalisation of RGB in [0, 1] its weights expect, so L
    can be shown to it as the gray photo it stands for (`resnet.gray_input_from_l`);
  * `head_names`: the top-level attributes that make its classification head, which an
    encoder (num_classes None) lacks and an encoder checkpoint leaves out.
"""

from __future__ import annotations

from typing import Callable, Protocol

import jax
import jax.numpy as jnp
from flax import nnx

from jaxcolor.models import efficientnet, mobilenet, resnet

RESNET_BACKBONES = tuple(f"resnet{depth}" for depth in sorted(resnet.STAGE_SIZES))
BACKBONES = RESNET_BACKBONES + ("mobilenet_v2", "efficientnet_lite0")
"""Every value `config.model.backbone` may take."""


class Encoder(Protocol):
    feature_channels: tuple[int, ...]
    input_mean: tuple[float, float, float]
    input_std: tuple[float, float, float]
    head_names: tuple[str, ...]

    def __call__(self, x: jax.Array, *, return_features: bool = False): ...


def encoder_class(backbone: str) -> type[nnx.Module]:
    """The module class of a backbone (its class attributes: `head_names`, `input_mean`...)."""
    if backbone in RESNET_BACKBONES:
        return resnet.ResNet
    if backbone == "mobilenet_v2":
        return mobilenet.MobileNetV2
    if backbone == "efficientnet_lite0":
        return efficientnet.EfficientNetLite
    raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")


def _constructor(backbone: str) -> Callable[..., nnx.Module]:
    if backbone in RESNET_BACKBONES:
        depth = int(backbone.removeprefix("resnet"))
        return lambda num_classes, **kw: resnet.resnet(depth, num_classes, **kw)
    if backbone == "mobilenet_v2":
        return mobilenet.mobilenet_v2
    if backbone == "efficientnet_lite0":
        return efficientnet.efficientnet_lite0
    raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")


def build(backbone: str, num_classes: int | None = None, *, dtype=jnp.float32,
          param_dtype=jnp.float32, rngs: nnx.Rngs) -> nnx.Module:
    """The named ImageNet network: an encoder (num_classes None) or a classifier."""
    return _constructor(backbone)(num_classes, dtype=dtype, param_dtype=param_dtype, rngs=rngs)


def input_from_l(encoder: Encoder, l_norm: jax.Array) -> jax.Array:
    """L in model units [B, H, W, 1] -> the gray RGB photo `encoder` expects [B, H, W, 3]."""
    return resnet.gray_input_from_l(l_norm, encoder.input_mean, encoder.input_std)
