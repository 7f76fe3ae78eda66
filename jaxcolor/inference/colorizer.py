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

import dataclasses
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
from jaxcolor.inference import compose as compose_lib
from jaxcolor.inference import hints as hints_lib
from jaxcolor.inference import spread as spread_lib
from jaxcolor.inference import restore as restore_lib
from jaxcolor.inference.photo import (BILATERAL_SIGMA, UPSAMPLING, InputImageError, Photo, compose,
                                      crop_render, render_lightness)
from jaxcolor.inference.photo import render_size as resolve_render_size
from jaxcolor.models import factory

BACKENDS = ("auto", "jax", "onnx")
"""How G runs: the jit-compiled NNX module, or its ONNX graph in ONNX Runtime
(`jaxcolor.inference.onnx.runtime`); "auto" picks one (`resolve_backend`)."""

COMPOSES = ("auto", "device", "host")
"""Where the full-resolution pixel work runs: jitted JAX on the device
(`jaxcolor.inference.compose`) or numpy on the host (`jaxcolor.inference.photo.compose`)."""


# --------------------------------------------------------------------------------------
# The colouriser.
# --------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=(0, 6))
def forward(graphdef: nnx.GraphDef, params, batch_stats, L: jax.Array,
            hint: jax.Array | None = None, chroma: jax.Array | float = 1.0,
            reads_hints: bool = False, chroma_gamma: jax.Array | float = 1.0) -> jax.Array:
    """Lab ab [B, R, R, 2] of G in eval mode for lightness L [B, R, R] (0..100), scaled by
    `chroma` with exponent `chroma_gamma` (`color.scale_chroma`), drawn towards the hint map
    [B, R, R, 3] where one is given (`spread`); a G with hint inputs (`reads_hints`) reads
    the map itself first. The graph definition is static (hashable), so every Colorizer of
    the same architecture shares the compiled code of each batch shape."""
    model = nnx.merge(graphdef, params, batch_stats)
    ab_norm = model(color.normalize_l(L)[..., None], hint if reads_hints else None)
    ab = color.scale_chroma(color.denormalize_ab(ab_norm.astype(jnp.float32)), chroma,
                            chroma_gamma)
    if hint is None:
        return ab
    return jax.lax.cond(jnp.any(hint[..., 2] > 0), lambda: spread_lib.spread(L, ab, hint),
                        lambda: ab)  # a batch without hints skips the spreading's work


def resolve_compose(compose: str, backend: str) -> str:
    """"auto" -> "device" where G runs in JAX on an accelerator (the photo's pixels go there
    once, uint8 both ways), else "host": numpy next to ONNX Runtime or XLA:CPU (the faster
    of the two on CPUs, see BENCHMARKS.md)."""
    if compose != "auto":
        return compose
    return "device" if backend == "jax" and jax.default_backend() != "cpu" else "host"


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
      compose: where the full-resolution pixel work runs: "device" (jitted JAX, tiles of
        uint8 both ways), "host" (numpy) or "auto" (`resolve_compose`). `self.compose` is
        the one chosen.
      compose_threads: threads of one host compose (None: one per core; pipelines that
        compose several photos at once pass 1).
      chroma: the predicted a/b are scaled by this before composing (CIELAB chroma, hue
        kept; with `chroma_gamma`); None: the model's own `config.model.chroma`, calibrated on validation photos
        for a shipped model (1 for a run that sets none).
      chroma_gamma: the scale's exponent on the predicted chroma (`color.scale_chroma`: 1,
        one scale for every pixel; above 1, more for pixels G colours strongly); None: the
        model's own `config.model.chroma_gamma` (1 for a run that sets none).
    """

    def __init__(self, graphdef: nnx.GraphDef, variables: dict, config, *, step: int,
                 directory: Path | None = None, render_size: int | None = None,
                 batch_size: int = 8, upsample: str = "bilateral", backend: str = "jax",
                 compose: str = "auto", compose_threads: int | None = None,
                 chroma: float | None = None, chroma_gamma: float | None = None):
        if backend not in BACKENDS:
            raise UsageError(f"backend: {backend!r}; choose one of {BACKENDS}")
        if compose not in COMPOSES:
            raise UsageError(f"compose: {compose!r}; choose one of {COMPOSES}")
        backend = resolve_backend(backend)
        if upsample not in UPSAMPLING:
            raise UsageError(f"upsample: {upsample!r}; choose one of {UPSAMPLING}")
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1, got {batch_size}")
        self.config = config
        self.step = step
        self.directory = directory
        self.render_size = resolve_render_size(config, render_size)
        self.batch_size = int(batch_size)
        self.upsample = upsample
        self.graphdef = graphdef
        self.variables = variables
        self.backend = backend
        self.compose = resolve_compose(compose, backend)
        self.compose_threads = compose_threads
        self.chroma = float(config.model.get("chroma", 1.0) if chroma is None else chroma)
        if not 0 <= self.chroma <= 4:
            raise UsageError(f"chroma must lie in [0, 4], got {self.chroma:g}")
        self.chroma_gamma = float(config.model.get("chroma_gamma", 1.0)
                                  if chroma_gamma is None else chroma_gamma)
        if not 0.25 <= self.chroma_gamma <= 4:
            raise UsageError(f"chroma_gamma must lie in [0.25, 4], got {self.chroma_gamma:g}")
        self._onnx = None
        if backend == "onnx":
            from jaxcolor.inference.onnx import runtime  # optional dependency, on demand

            self._onnx = runtime.OnnxGenerator.from_generator(
                self.generator(), height=self.render_size, width=self.render_size)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, *, step: int | None = None,
                        best: bool = False, **kwargs) -> "Colorizer":
        """Restore G (latest step, `step`, or the best by validation score) from a run
        workdir or its checkpoints directory, or load a model file in the starter's format
        (`.npz`; `jaxcolor.inference.starter.restore_model`)."""
        from jaxcolor.inference import starter

        return cls.from_restored(starter.restore_model(path, step=step, best=best), **kwargs)

    @classmethod
    def from_starter(cls, **kwargs) -> "Colorizer":
        """The starter model shipped in the wheel (`jaxcolor.inference.starter`)."""
        from jaxcolor.inference import starter

        return cls.from_restored(starter.load(), **kwargs)

    @classmethod
    def from_restored(cls, restored: restore_lib.Restored, **kwargs) -> "Colorizer":
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
        return nnx.merge(self.graphdef, self.variables["params"],
                         self.variables["batch_stats"])

    @property
    def reads_hints(self) -> bool:
        """Whether G itself has colour-hint inputs (trained with `config.model.hints`).
        Every model follows hints: the Colorizer spreads them after G (`spread`)."""
        return factory.takes_hints(self.config.model)

    def colorize(self, image_or_images, hints=None):
        """PIL image(s) -> PIL RGB (RGBA if the input had alpha); uint8 numpy gray [H, W],
        RGB [H, W, 3] or RGBA [H, W, 4] -> uint8 RGB [H, W, 3] / RGBA [H, W, 4]. A list in
        gives a list out, in order. Output size = input size. `hints`: a list of
        `hints.Hint` for one photo (a list of such lists for several, None where a photo has
        none)."""
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
        per_photo = [hints] if single else list(hints or [None] * len(photos))
        if len(per_photo) != len(photos):
            raise UsageError(f"hints: {len(per_photo)} lists for {len(photos)} photos")
        photos = [dataclasses.replace(p, hints=tuple(h)) if h else p
                  for p, h in zip(photos, per_photo)]
        outs = [Image.fromarray(o) if pil else o
                for o, pil in zip(self.colorize_photos(photos), is_pil)]
        return outs[0] if single else outs

    def colorize_photos(self, photos: Sequence[Photo]) -> list[np.ndarray]:
        """`Photo`s -> uint8 RGB / RGBA arrays of the same sizes, batched through G."""
        outputs = []
        for start in range(0, len(photos), self.batch_size):
            batch = self.submit([self.prepare(p) for p in photos[start:start + self.batch_size]])
            batch.fetch()
            outputs += [batch.finish(i) for i in range(len(batch))]
        return outputs

    # -- the three stages of a batch, for pipelines that overlap them ---------------------

    def prepare(self, photo: Photo) -> Prepared:
        """Host work before the network, safe in worker threads: the render-size L and, for
        the device compose, the photo cut into tiles."""
        L_render, inner = render_lightness(photo, self.render_size)
        tiles = compose_lib.cut_tiles(photo.pixels) if self.compose == "device" else None
        hint = None
        if photo.hints:
            hint = hints_lib.hint_map(list(photo.hints), photo.size, self.render_size)
        return Prepared(photo, L_render.astype(np.float32), inner, tiles, hint)

    def submit(self, prepared: Sequence[Prepared]) -> HostBatch | DeviceBatch:
        """Start G (and the device compose) on a batch; with JAX this returns before the
        device is done. `fetch()` then `finish(i)` give the colour photos."""
        return self.compose_batch(prepared, self.predict(prepared))

    def predict(self, prepared: Sequence[Prepared]):
        """G's Lab ab [n', R, R, 2] for a batch (n' >= n: JAX batches are padded): a jax
        array still being computed (JAX) or numpy (ONNX). The first half of `submit`, for
        callers that change the colour before composing it
        (`jaxcolor.inference.video.temporal`)."""
        if not prepared:
            raise ValueError("predict: empty batch")
        L = np.stack([p.L_render for p in prepared])
        hint = None
        if self.reads_hints or any(p.hint is not None for p in prepared):
            empty = np.zeros(L.shape[1:] + (3,), np.float32)
            hint = np.stack([empty if p.hint is None else p.hint for p in prepared])
        if self._onnx is not None:
            return self._predict_onnx(L, hint)
        return self.predict_device(L, hint)

    def compose_batch(self, prepared: Sequence[Prepared], ab) -> HostBatch | DeviceBatch:
        """The second half of `submit`: compose `prepared` at full resolution with `ab`
        ([n' >= n, R, R, 2], Lab units, in each photo's render square)."""
        if self.compose == "host":
            return HostBatch(prepared, ab[:len(prepared)], self.upsample, self.compose_threads)
        L = np.stack([p.L_render for p in prepared])
        return DeviceBatch(prepared, ab, jnp.asarray(L), self.upsample)

    def predict_ab(self, L: np.ndarray, hint: np.ndarray | None = None) -> np.ndarray:
        """Lab ab [n, R, R, 2] predicted for lightness L [n, R, R] (0..100) (and a hint map
        [n, R, R, 3], `hints.hint_map`), float32."""
        return (self._predict_onnx(L, hint) if self._onnx is not None
                else np.asarray(self.predict_device(L, hint)[:L.shape[0]], np.float32))

    def _predict_onnx(self, L: np.ndarray, hint: np.ndarray | None = None) -> np.ndarray:
        L = np.asarray(L, np.float32)
        ab = color.denormalize_ab(self._onnx(color.normalize_l(L)[..., None],
                                             hint if self.reads_hints else None))
        ab = color.scale_chroma(ab, self.chroma, self.chroma_gamma, xp=np)
        if hint is None or not hint[..., 2].any():
            return ab
        return spread_lib.spread(L, ab, hint, xp=np)

    def predict_device(self, L, hint=None) -> jax.Array:
        """JAX backend: ab [b, R, R, 2] on the device for L [n, R, R] (and hint [n, R, R, 3]),
        the batch padded to b = the next power of two (few compiled shapes); returns
        without waiting."""
        L = jnp.asarray(L, jnp.float32)
        n = L.shape[0]
        pad = (1 << (n - 1).bit_length()) - n
        if self.reads_hints and hint is None:
            hint = jnp.zeros(L.shape + (3,), jnp.float32)
        if pad:
            L = jnp.concatenate([L, jnp.zeros((pad,) + L.shape[1:], L.dtype)])
            if hint is not None:
                hint = jnp.concatenate([jnp.asarray(hint, jnp.float32),
                                        jnp.zeros((pad,) + hint.shape[1:], jnp.float32)])
        return forward(self.graphdef, self.variables["params"],
                       self.variables["batch_stats"], L,
                       None if hint is None else jnp.asarray(hint, jnp.float32),
                       jnp.float32(self.chroma), self.reads_hints,
                       jnp.float32(self.chroma_gamma))


@dataclasses.dataclass(frozen=True)
class Prepared:
    """One photo ready for the network: its render-size L and where it sits in the square."""

    photo: Photo
    L_render: np.ndarray  # float32 [R, R]
    inner: tuple[int, int]  # (rh, rw): the photo inside the square
    tiles: np.ndarray | None  # device compose: `compose.cut_tiles(photo.pixels)`
    hint: np.ndarray | None = None  # float32 [R, R, 3]: the photo's hints (`hints.hint_map`)


class HostBatch:
    """A batch whose G ran; the full-resolution compose runs in numpy, per photo, in
    `finish` (which pipelines call from worker threads)."""

    def __init__(self, prepared, ab, upsample: str, threads: int | None):
        self._prepared, self._ab = list(prepared), ab
        self._upsample, self._threads = upsample, threads

    def __len__(self) -> int:
        return len(self._prepared)

    def fetch(self) -> None:
        self._ab = np.asarray(self._ab, np.float32)  # waits for the device, if G ran there

    def finish(self, i: int) -> np.ndarray:
        p = self._prepared[i]
        return compose(p.photo, crop_render(self._ab[i], p.inner), crop_render(p.L_render, p.inner),
                       upsample=self._upsample, threads=self._threads)


class DeviceBatch:
    """A batch composed on the device: tiles of every photo, grouped by pixel layout, in
    calls of at most `compose.MAX_TILES` tiles; `fetch` brings the uint8 tiles back."""

    def __init__(self, prepared, ab, L_square, upsample: str):
        self._prepared = list(prepared)
        sigma = BILATERAL_SIGMA if upsample == "bilateral" else None
        rows = compose_lib.bucket(len(self._prepared))
        ab = compose_lib.fit_batch(jnp.asarray(ab), rows)
        L_square = compose_lib.fit_batch(L_square, rows)
        self._calls = []  # (photo index of each tile, device output)
        for layout in {(p.tiles.dtype, p.tiles.ndim) for p in self._prepared}:
            members = [i for i, p in enumerate(self._prepared)
                       if (p.tiles.dtype, p.tiles.ndim) == layout]
            tiles = np.concatenate([self._prepared[i].tiles for i in members])
            meta = np.concatenate([compose_lib.tile_meta(
                i, *self._prepared[i].photo.size, self._prepared[i].inner, L_square.shape[1])
                for i in members])
            for start in range(0, len(tiles), compose_lib.MAX_TILES):
                chunk = slice(start, start + compose_lib.MAX_TILES)
                out = compose_lib.compose_tiles(*compose_lib.pad_to_bucket(tiles[chunk],
                                                                          meta[chunk]),
                                                ab, L_square, sigma=sigma)
                self._calls.append((meta[chunk, 0], out))
        self._tiles: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self._prepared)

    def fetch(self) -> None:
        """Wait for the device; sort the uint8 tiles back to their photos."""
        pieces = [[] for _ in self._prepared]
        for owners, out in self._calls:
            host = np.asarray(out)[:len(owners)]
            for i in np.unique(owners):
                pieces[i].append(host[owners == i])
        self._tiles = [np.concatenate(p) for p in pieces]
        self._calls = []

    def finish(self, i: int) -> np.ndarray:
        photo = self._prepared[i].photo
        rgb = compose_lib.assemble(self._tiles[i], *photo.size)
        if photo.alpha is None:
            return np.ascontiguousarray(rgb)
        return np.dstack([rgb, photo.alpha])
