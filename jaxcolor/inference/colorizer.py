"""Colourise photos of any size with a trained generator: `Colorizer`.

    colorizer = Colorizer.from_checkpoint("/runs/gan101")        # latest step; or step=, best=
    colour = colorizer.colorize(Image.open("grandma.jpg"))       # PIL in -> PIL out
    colours = colorizer.colorize([gray_uint8, rgba_uint8])       # numpy in -> numpy out

Only the generator is restored (the checkpoint's `generator` item: inference weights and
BatchNorm statistics), with the model config saved beside it, so a checkpoint restores
without the discriminator, optimisers or data of training.

A photo of any size and aspect ratio is seen by the network at the *render size* R (default:
the training crop size, made a multiple of 32; users should never have to tune it by hand,
DeOldify's render-factor lesson), inside an R x R square padded by reflection. The predicted
colour is upsampled to full resolution, edge-aware, guided by the photo's own lightness and
combined with it (`jaxcolor.inference.photo`): the output has the input's exact size and
lightness.
Photos are batched through the network; batches are padded to powers of two, so few shapes
ever compile.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from PIL import Image

from jaxcolor import color
from jaxcolor.errors import UsageError
from jaxcolor.inference import restore as restore_lib
from jaxcolor.inference.photo import (UPSAMPLING, InputImageError, Photo, compose, crop_render,
                                      default_render_size, render_lightness, round_render_size)
from jaxcolor.models import factory

BACKENDS = ("auto", "jax", "onnx")
"""How G runs: the jit-compiled NNX module, or its ONNX graph in ONNX Runtime
(`jaxcolor.inference.onnx.runtime`); "auto" picks one (`resolve_backend`)."""


# --------------------------------------------------------------------------------------
# The colouriser.
# --------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=0)
def _forward(graphdef: nnx.GraphDef, params, batch_stats, l_norm: jax.Array) -> jax.Array:
    """G in eval mode. The graph definition is static (hashable), so every Colorizer of the
    same architecture shares the compiled code of each batch shape."""
    return nnx.merge(graphdef, params, batch_stats)(l_norm)


def resolve_backend(backend: str) -> str:
    """"auto" -> "onnx" where JAX runs on the CPU and `jaxcolor[onnx]` is installed (ONNX
    Runtime runs this network 1.7-2.4x faster there, see BENCHMARKS.md), else "jax"."""
    if backend != "auto":
        return backend
    from jaxcolor.inference.onnx import runtime

    return "onnx" if jax.default_backend() == "cpu" and runtime.available() else "jax"


class Colorizer:
    """A restored generator plus the any-size pipeline of the module docstring.

    Args:
      graphdef, variables: the generator in eval mode (`{"params", "batch_stats"}`).
      config: the run's ConfigDict (its `model` built the generator).
      step, directory: the checkpoint step and checkpoints directory, for reports.
      render_size: side of the square the network sees (rounded up to a multiple of 32);
        None: the training crop size.
      batch_size: most photos per forward pass. Batches are padded to a power of two, so at
        most log2(batch_size) + 1 shapes are ever compiled.
      upsample: "bilateral" (edge-aware, default) or "bilinear" (see `jaxcolor.inference.photo`).
      backend: "jax" (the jit-compiled generator), "onnx" (the same weights as an ONNX
        graph run by ONNX Runtime, faster on CPU; needs `pip install 'jaxcolor[onnx]'`) or
        "auto" (onnx on a CPU where it is installed, else jax). `self.backend` is the one
        chosen.
    """

    def __init__(self, graphdef: nnx.GraphDef, variables: dict, config, *, step: int,
                 directory: Path | None = None, render_size: int | None = None,
                 batch_size: int = 8, upsample: str = "bilateral", backend: str = "jax"):
        if backend not in BACKENDS:
            raise UsageError(f"backend: {backend!r}; choose one of {BACKENDS}")
        backend = resolve_backend(backend)
        if upsample not in UPSAMPLING:
            raise UsageError(f"upsample: {upsample!r}; choose one of {UPSAMPLING}")
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1, got {batch_size}")
        if render_size is not None and render_size < 1:
            raise UsageError(f"render_size must be positive, got {render_size}")
        self.config = config
        self.step = step
        self.directory = directory
        self.render_size = (default_render_size(config) if render_size is None
                            else round_render_size(render_size))
        self.batch_size = int(batch_size)
        self.upsample = upsample
        self._graphdef = graphdef
        self._variables = variables
        self.backend = backend
        self._onnx = None
        if backend == "onnx":
            from jaxcolor.inference.onnx import runtime  # optional dependency, on demand

            self._onnx = runtime.OnnxGenerator.from_generator(
                self.generator(), height=self.render_size, width=self.render_size)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, *, step: int | None = None,
                        best: bool = False, **kwargs) -> "Colorizer":
        """Restore G (latest step, `step`, or the best by validation score) from a run
        workdir or its checkpoints directory (`jaxcolor.inference.restore`)."""
        restored = restore_lib.restore(path, step=step, best=best)
        return cls(restored.graphdef, restored.variables, restored.config, step=restored.step,
                   directory=restored.directory, **kwargs)

    @classmethod
    def from_config(cls, config, *, seed: int = 0, **kwargs) -> "Colorizer":
        """A freshly initialised generator of `config.model` (random weights): for
        benchmarks and tests of the pipeline, whose cost does not depend on the weights."""
        graphdef, variables = restore_lib.eval_split(
            factory.make_generator(config.model, seed=seed))
        return cls(graphdef, variables, config, step=0, **kwargs)

    # -- public API ----------------------------------------------------------------------

    def generator(self):
        """The restored generator as an eval-mode NNX module (e.g. for the ONNX export)."""
        return nnx.merge(self._graphdef, self._variables["params"],
                         self._variables["batch_stats"])

    def colorize(self, image_or_images):
        """PIL image(s) -> PIL RGB (RGBA if the input had alpha); uint8 numpy gray [H, W],
        RGB [H, W, 3] or RGBA [H, W, 4] -> uint8 RGB [H, W, 3] / RGBA [H, W, 4]. A list in
        gives a list out, in order. Output size = input size."""
        single = not isinstance(image_or_images, (list, tuple))
        items = [image_or_images] if single else list(image_or_images)
        photos, is_pil = [], []
        for item in items:
            if isinstance(item, Image.Image):
                photos.append(Photo.from_pil(item))
                is_pil.append(True)
            elif isinstance(item, np.ndarray):
                photos.append(Photo.from_array(item))
                is_pil.append(False)
            else:
                raise InputImageError(f"expected a PIL image or a numpy array, got "
                                      f"{type(item).__name__}")
        outs = [Image.fromarray(o) if pil else o
                for o, pil in zip(self.colorize_photos(photos), is_pil)]
        return outs[0] if single else outs

    def colorize_photos(self, photos: Sequence[Photo]) -> list[np.ndarray]:
        """`Photo`s -> uint8 RGB / RGBA arrays of the same sizes, batched through G."""
        outputs = []
        for start in range(0, len(photos), self.batch_size):
            chunk = photos[start:start + self.batch_size]
            rendered = [render_lightness(p, self.render_size) for p in chunk]
            ab = self.predict_ab(np.stack([r[0] for r in rendered]))
            for photo, (L_sq, inner), ab_sq in zip(chunk, rendered, ab):
                outputs.append(compose(photo, crop_render(ab_sq, inner), crop_render(L_sq, inner),
                                       upsample=self.upsample))
        return outputs

    def predict_ab(self, L: np.ndarray) -> np.ndarray:
        """Lab ab [n, R, R, 2] predicted for lightness L [n, R, R] (0..100), float32."""
        if self._onnx is not None:  # any batch size runs without recompiling
            l_norm = color.normalize_l(np.asarray(L, np.float32))[..., None]
            return color.denormalize_ab(self._onnx(l_norm))
        n = L.shape[0]
        bucket = 1 << (n - 1).bit_length()  # pad to a power of two: few compiled shapes
        padded = np.zeros((bucket,) + L.shape[1:] + (1,), np.float32)
        padded[:n, ..., 0] = color.normalize_l(L)
        ab = _forward(self._graphdef, self._variables["params"], self._variables["batch_stats"],
                      jnp.asarray(padded))
        return color.denormalize_ab(np.asarray(ab[:n], np.float32))
