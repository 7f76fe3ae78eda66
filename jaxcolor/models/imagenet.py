"""ImageNet's 1000 class names and a classifier's top-k: how to see that ported weights work.

A ported classifier that names the cat in a photo of a cat has its weights, layouts,
padding and input normalisation right all at once, which no shape check can say.
`imagenet_classes.txt` (package data) lists torchvision's names in index order.
"""

from __future__ import annotations

import functools
from importlib import resources

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxcolor.models.resnet import normalize_rgb

NUM_CLASSES = 1000


@functools.cache
def class_names() -> tuple[str, ...]:
    """The 1000 ImageNet class names, index order (torchvision's `_IMAGENET_CATEGORIES`)."""
    text = resources.files("jaxcolor.models").joinpath("imagenet_classes.txt").read_text("utf-8")
    names = tuple(text.splitlines())
    assert len(names) == NUM_CLASSES, f"imagenet_classes.txt has {len(names)} names"
    return names


@nnx.jit
def _probabilities(model: nnx.Module, rgb: jax.Array) -> jax.Array:
    x = normalize_rgb(rgb.astype(jnp.float32) / 255.0, type(model).input_mean,
                      type(model).input_std)
    return jax.nn.softmax(model(x).astype(jnp.float32), axis=-1)


def probabilities(model: nnx.Module, rgb: np.ndarray) -> np.ndarray:
    """Class probabilities [B, classes] of an eval-mode classifier for uint8 RGB photos
    [B, H, W, 3], normalised as the network's weights expect (`input_mean`, `input_std`)."""
    return np.asarray(_probabilities(model, jnp.asarray(rgb)))


def top_k(probs: np.ndarray, k: int = 5) -> list[tuple[int, str, float]]:
    """(index, name, probability) of the k likeliest classes of one photo, likeliest first.
    Names are ImageNet's for a 1000-class head, else "class N" (a head trained on others)."""
    names = class_names() if len(probs) == NUM_CLASSES else None
    order = np.argsort(-probs, kind="stable")[:k]
    return [(int(i), names[i] if names else f"class {i}", float(probs[i])) for i in order]
