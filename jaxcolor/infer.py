"""Colourise photos of any size with a trained generator: `Colorizer`.

    colorizer = Colorizer.from_checkpoint("/runs/gan101")        # latest step; or step=, best=
    colour = colorizer.colorize(Image.open("grandma.jpg"))       # PIL in -> PIL out
    colours = colorizer.colorize([gray_uint8, rgba_uint8])       # numpy in -> numpy out

Only the generator is restored (the checkpoint's `generator` item: inference weights and
BatchNorm statistics), together with the model config saved beside it, so any checkpoint
restores without the training code's optimisers, discriminator or data.

How one photo is coloured, at any size and aspect ratio:
  1. The model sees the photo at the *render size* R (default: the training crop size, made
     a multiple of 32): the long side is resized to R, the short side keeps the aspect ratio,
     and the rest of the R x R square is filled by reflecting the photo (stretching would
     distort shapes; a fixed square lets every photo share one compiled shape and fill whole
     batches). Users never tune this by hand (DeOldify's render-factor lesson).
  2. The predicted ab is cropped back to the photo's area and upsampled to full resolution
     with a fast guided filter (He & Sun, 2015) guided by the photo's own full-resolution L:
     colour edges then follow the sharp edges of the photo instead of the blur of a bilinear
     upsample ("bilinear" remains available).
  3. The output is the photo's own L with that ab. Where an (L, ab) pair lies outside sRGB,
     the chroma is reduced (never L), so the output's lightness is the input's, up to 8-bit
     rounding.
Everything at full resolution (L extraction, upsampling, Lab -> sRGB, alpha) runs in strips of
rows, so a 12000 x 12000 photo needs the output array plus a few strips of memory; the network
itself only ever runs at render size.

What a `Photo` holds (`pixels`): uint8 sRGB gray [H, W] or RGB [H, W, 3], or float CIELAB
lightness [H, W] in [0, 100] (e.g. a Kaggle-style L array, see `Photo.from_lightness8`),
plus an optional uint8 alpha [H, W] that the output keeps.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from PIL import Image

from jaxcolor import color
from jaxcolor.data import images
from jaxcolor.models.generator import ENCODER_STRIDE
from jaxcolor.train import build, checkpoint

MIN_SIDE = 8
"""Photos smaller than this on a side are refused: nothing recognisable to colour."""

STRIP_PIXELS = 2**19
"""Full-resolution work is done this many pixels at a time (~30 MB of float temporaries
per thread)."""

GUIDED_RADIUS = 2  # box radius of the guided filter, in render-size pixels
GUIDED_EPS = 1e-3  # its regulariser, for a guide (L / 100) in [0, 1]


class InputImageError(ValueError):
    """An input cannot be colourised (wrong type, dtype, shape, range or too small)."""


# --------------------------------------------------------------------------------------
# Inputs.
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Photo:
    """One image to colourise, validated on construction (see the module docstring)."""

    pixels: np.ndarray
    alpha: np.ndarray | None = None

    def __post_init__(self):
        p = self.pixels
        if not isinstance(p, np.ndarray):
            raise InputImageError(f"expected a numpy array, got {type(p).__name__}")
        gray_or_rgb = p.dtype == np.uint8 and (p.ndim == 2 or (p.ndim == 3 and p.shape[2] == 3))
        lightness = p.ndim == 2 and np.issubdtype(p.dtype, np.floating)
        if not (gray_or_rgb or lightness):
            raise InputImageError(f"unsupported array {p.dtype} {p.shape}: expected uint8 gray "
                                  "[H, W], RGB [H, W, 3] or RGBA [H, W, 4], or float lightness "
                                  "[H, W] in [0, 100]")
        h, w = p.shape[:2]
        if min(h, w) < MIN_SIDE:
            raise InputImageError(f"image is {w}x{h} pixels; colourising needs at least "
                                  f"{MIN_SIDE} pixels on each side")
        if lightness and not (np.all(np.isfinite(p)) and p.min() >= -0.5 and p.max() <= 100.5):
            raise InputImageError(f"float lightness must lie in [0, 100] (CIELAB L); got values "
                                  f"in [{np.nanmin(p):.3g}, {np.nanmax(p):.3g}]")
        if self.alpha is not None and (self.alpha.shape != (h, w) or self.alpha.dtype != np.uint8):
            raise InputImageError(f"alpha must be uint8 [{h}, {w}], got {self.alpha.dtype} "
                                  f"{self.alpha.shape}")

    @property
    def size(self) -> tuple[int, int]:
        return self.pixels.shape[0], self.pixels.shape[1]

    @classmethod
    def from_array(cls, array: np.ndarray) -> "Photo":
        """uint8 gray [H, W] ([H, W, 1]), RGB [H, W, 3] or RGBA [H, W, 4] (alpha kept)."""
        a = np.asarray(array)
        if a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] in (1, 4):
            return cls(a[..., 0], None) if a.shape[2] == 1 else cls(a[..., :3], a[..., 3])
        if a.dtype != np.uint8:
            raise InputImageError(f"numpy images must be uint8, got {a.dtype} {a.shape} (for "
                                  "float CIELAB lightness use Photo(pixels=L))")
        return cls(a)

    @classmethod
    def from_pil(cls, image: Image.Image) -> "Photo":
        """Any Pillow mode: alpha (RGBA, LA, PA, palette transparency) is kept; 16-bit gray
        is scaled to 8 bit; palette, bilevel, CMYK, YCbCr become gray or RGB."""
        mode = image.mode
        if mode in ("RGBA", "RGBa", "LA", "La", "PA") or (mode == "P" and "transparency" in image.info):
            rgba = np.asarray(image.convert("RGBA"))
            return cls(rgba[..., :3], rgba[..., 3])
        if mode in ("L", "1"):
            return cls(np.asarray(image.convert("L")))
        if mode.startswith("I;16") or mode == "I":
            return cls(images.sixteen_to_eight_bit(np.asarray(image)))
        try:
            return cls(np.asarray(images.to_rgb(image)))
        except ValueError as e:
            raise InputImageError(f"PIL mode {mode}: {e}") from None

    @classmethod
    def from_lightness8(cls, L8: np.ndarray) -> "Photo":
        """OpenCV 8-bit L (L8 = L * 255 / 100, the records' and Kaggle arrays' encoding)."""
        return cls(np.asarray(L8, np.uint8).astype(np.float32) / color.L8_SCALE)


def _cie_f(t: np.ndarray) -> np.ndarray:
    """CIE's f(t) of L = 116 f(Y / Yn) - 16 (cube root, linear near black)."""
    d = 6.0 / 29.0
    return np.where(t > d**3, np.cbrt(np.maximum(t, d**3)), t / (3 * d * d) + 4.0 / 29.0)


def _cie_f_inv(f: np.ndarray) -> np.ndarray:
    d = 6.0 / 29.0
    return np.where(f > d, f**3, 3 * d * d * (f - 4.0 / 29.0))


def _luminance_tables() -> np.ndarray:
    """[3, 256] float32: each 8-bit level's share of luminance Y, per sRGB channel.

    Derived from `color.rgb_to_lab_np` (L of the pure channel colours, inverted to Y), so
    `lightness` agrees with the colour module by construction while costing three table
    look-ups and one cube root per pixel instead of a full Lab conversion.
    """
    levels = np.arange(256, dtype=np.uint8)
    tables = np.zeros((3, 256), np.float64)
    for c in range(3):
        rgb = np.zeros((256, 3), np.uint8)
        rgb[:, c] = levels
        L = color.rgb_to_lab_np(rgb)[:, 0].astype(np.float64)
        tables[c] = _cie_f_inv((L + 16.0) / 116.0)
    return tables.astype(np.float32)


_Y_TABLES = _luminance_tables()  # constants, computed once at import
_GRAY_L = color.rgb_to_lab_np(np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, 1))[:, 0]


def lightness(pixels: np.ndarray) -> np.ndarray:
    """CIELAB L (float32 [h, W], 0..100) of rows of `Photo.pixels`."""
    if pixels.dtype != np.uint8:
        return np.clip(pixels.astype(np.float32), 0.0, 100.0)
    if pixels.ndim == 2:
        return _GRAY_L[pixels]
    y = _Y_TABLES[0][pixels[..., 0]] + _Y_TABLES[1][pixels[..., 1]] + _Y_TABLES[2][pixels[..., 2]]
    return 116.0 * _cie_f(y) - 16.0


# --------------------------------------------------------------------------------------
# Geometry: photo <-> render square.
# --------------------------------------------------------------------------------------


def render_shape(height: int, width: int, render_size: int) -> tuple[int, int]:
    """The photo's size inside the render square: long side = render_size, aspect kept."""
    scale = render_size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def render_lightness(photo: Photo, render_size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The photo's L resized into the render square and reflect-padded: ([R, R], (rh, rw))."""
    rh, rw = render_shape(*photo.size, render_size)
    p = photo.pixels
    image = Image.fromarray(p if p.dtype == np.uint8 else p.astype(np.float32))
    resized = np.asarray(image.resize((rw, rh), Image.Resampling.LANCZOS, reducing_gap=3.0))
    small = lightness(resized if p.dtype == np.uint8 else np.clip(resized, 0, 100))
    top, left = (render_size - rh) // 2, (render_size - rw) // 2
    pad = ((top, render_size - rh - top), (left, render_size - rw - left))
    mode = "reflect" if min(rh, rw) > 1 else "edge"
    return np.pad(small, pad, mode=mode), (rh, rw)


def crop_render(square: np.ndarray, inner: tuple[int, int]) -> np.ndarray:
    """Undo the padding of `render_lightness` on a [R, R, ...] map."""
    rh, rw = inner
    top, left = (square.shape[0] - rh) // 2, (square.shape[1] - rw) // 2
    return square[top:top + rh, left:left + rw]


# --------------------------------------------------------------------------------------
# Upsampling ab to full resolution, strip by strip.
# --------------------------------------------------------------------------------------


def _bilinear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of half-pixel-centred bilinear resampling, clamped edges."""
    pos = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (pos - i0).astype(np.float32)


def _box_mean(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over the (2r+1)^2 window clipped to the image, per channel of [h, w, C]."""
    def along(a, axis):
        n = a.shape[axis]
        c = np.cumsum(a, axis=axis, dtype=np.float64)
        c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), c], axis=axis)
        hi = np.minimum(np.arange(n) + r + 1, n)
        lo = np.maximum(np.arange(n) - r, 0)
        shape = [1] * a.ndim
        shape[axis] = n
        return (np.take(c, hi, axis=axis) - np.take(c, lo, axis=axis)) / (hi - lo).reshape(shape)
    return along(along(x, 0), 1).astype(np.float32)


def guided_coefficients(guide: np.ndarray, ab: np.ndarray, radius: int = GUIDED_RADIUS,
                        eps: float = GUIDED_EPS) -> np.ndarray:
    """Fast guided filter at low resolution: per-pixel linear models ab ~ A * guide + B.

    `guide` [h, w] in [0, 1], `ab` [h, w, 2]. Returns the window-averaged (A_a, A_b, B_a, B_b)
    as [h, w, 4]; upsampled and applied to the full-resolution guide they give ab whose edges
    follow the guide's. In flat regions A ~ 0 and the result is the smooth mean of ab.
    """
    g = guide[..., None]
    mean_g = _box_mean(g, radius)
    mean_p = _box_mean(ab, radius)
    cov = _box_mean(g * ab, radius) - mean_g * mean_p
    var = _box_mean(g * g, radius) - mean_g * mean_g
    a = cov / (var + eps)
    b = mean_p - a * mean_g
    return _box_mean(np.concatenate([a, b], axis=-1), radius)


class Upsampler:
    """Low-resolution maps [h, w, C] -> full-resolution rows, bilinearly, one strip at a time.

    The horizontal pass is done once (h x W x C floats: small); each strip then blends two
    rows of it, so no full-resolution float map ever exists.
    """

    def __init__(self, maps: np.ndarray, height: int, width: int):
        x0, x1, wx = _bilinear_taps(maps.shape[1], width)
        self._rows = maps[:, x0] * (1 - wx)[:, None] + maps[:, x1] * wx[:, None]
        self._y0, self._y1, self._wy = _bilinear_taps(maps.shape[0], height)

    def rows(self, start: int, stop: int) -> np.ndarray:
        wy = self._wy[start:stop, None, None]
        return self._rows[self._y0[start:stop]] * (1 - wy) + self._rows[self._y1[start:stop]] * wy


# --------------------------------------------------------------------------------------
# Lab -> sRGB keeping L.
# --------------------------------------------------------------------------------------


def lab_to_rgb8_keep_l(L: np.ndarray, ab: np.ndarray, steps: int = 8) -> np.ndarray:
    """Lab -> uint8 sRGB, reducing chroma (not lightness) of colours outside the sRGB gamut.

    Plain clipping of out-of-gamut RGB changes lightness; instead each such pixel's ab is
    scaled by the largest factor in [0, 1] (found by bisection) that fits the gamut.
    """
    rgb = color.lab_to_rgb_np(np.concatenate([L[..., None], ab], -1), clip=False)
    tol = 0.5 / 255
    out = np.any((rgb < -tol) | (rgb > 1 + tol), axis=-1)
    if out.any():
        L_o, ab_o = L[out], ab[out]
        lo, hi = np.zeros(len(L_o), np.float32), np.ones(len(L_o), np.float32)
        for _ in range(steps):
            mid = 0.5 * (lo + hi)
            trial = color.lab_to_rgb_np(np.concatenate([L_o[:, None], ab_o * mid[:, None]], -1),
                                        clip=False)
            fits = np.all((trial >= -tol) & (trial <= 1 + tol), axis=-1)
            lo, hi = np.where(fits, mid, lo), np.where(fits, hi, mid)
        rgb[out] = color.lab_to_rgb_np(np.concatenate([L_o[:, None], ab_o * lo[:, None]], -1),
                                       clip=False)
    return color.rgb01_to_uint8(rgb)


def compose(photo: Photo, ab_render: np.ndarray, L_render: np.ndarray, *,
            upsample: str = "guided", threads: int | None = None) -> np.ndarray:
    """Full-resolution uint8 RGB [H, W, 3] (RGBA when the photo has alpha) from the photo's
    own L and the ab predicted at render size (`ab_render`, `L_render`: cropped, Lab units).

    Works in strips of `STRIP_PIXELS`, on `threads` threads (default: one per CPU core).
    """
    h, w = photo.size
    if upsample == "guided":
        maps = guided_coefficients(L_render / 100.0, ab_render)
    elif upsample == "bilinear":
        maps = ab_render.astype(np.float32)
    else:
        raise ValueError(f"upsample: {upsample!r}; choose 'guided' or 'bilinear'")
    up = Upsampler(maps, h, w)
    out = np.empty((h, w, 3 if photo.alpha is None else 4), np.uint8)

    def strip(start: int) -> None:
        stop = min(start + rows, h)
        L = lightness(photo.pixels[start:stop])
        m = up.rows(start, stop)
        ab = m[..., :2] * (L[..., None] / 100.0) + m[..., 2:] if upsample == "guided" else m
        ab = np.clip(ab, -color.AB_SCALE, color.AB_SCALE)
        out[start:stop, :, :3] = lab_to_rgb8_keep_l(L, ab)

    rows = max(1, STRIP_PIXELS // w)
    starts = range(0, h, rows)
    threads = min(threads or os.cpu_count() or 1, len(starts))
    if threads > 1:  # numpy releases the GIL inside its loops: strips run in parallel
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(strip, starts))
    else:
        for start in starts:
            strip(start)
    if photo.alpha is not None:
        out[..., 3] = photo.alpha
    return out


# --------------------------------------------------------------------------------------
# The colouriser.
# --------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=0)
def _forward(graphdef: nnx.GraphDef, params, batch_stats, l_norm: jax.Array) -> jax.Array:
    """G in eval mode. The graph definition is static (hashable), so every Colorizer of the
    same architecture shares the compiled code of each batch shape."""
    return nnx.merge(graphdef, params, batch_stats)(l_norm)


def default_render_size(config) -> int:
    """The training crop size, rounded up to a multiple of the encoder stride (32)."""
    return round_render_size(int(config.data.crop_size))


def round_render_size(size: int) -> int:
    return max(ENCODER_STRIDE, -(-int(size) // ENCODER_STRIDE) * ENCODER_STRIDE)


def checkpoint_dir(path: str | os.PathLike) -> Path:
    """A run workdir (holding checkpoints/) or a checkpoints directory -> the latter."""
    path = Path(path).expanduser()
    return path / "checkpoints" if (path / "checkpoints").is_dir() else path


class Colorizer:
    """A restored generator plus the any-size pipeline of the module docstring.

    Args:
      graphdef, variables: the generator in eval mode (`{"params", "batch_stats"}`).
      config: the run's ConfigDict (its `model` built the generator).
      step: the checkpoint step, for reports.
      render_size: side of the square the network sees (rounded up to a multiple of 32);
        None: the training crop size.
      batch_size: most photos per forward pass. Batches are padded to a power of two, so at
        most log2(batch_size) + 1 shapes are ever compiled.
      upsample: "guided" (edge-aware, default) or "bilinear".
    """

    def __init__(self, graphdef: nnx.GraphDef, variables: dict, config, *, step: int,
                 render_size: int | None = None, batch_size: int = 8, upsample: str = "guided"):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if render_size is not None and render_size < 1:
            raise ValueError(f"render_size must be positive, got {render_size}")
        self.config = config
        self.step = step
        self.render_size = (default_render_size(config) if render_size is None
                            else round_render_size(render_size))
        self.batch_size = int(batch_size)
        self.upsample = upsample
        self._graphdef = graphdef
        self._variables = variables

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, *, step: int | None = None,
                        best: bool = False, **kwargs) -> "Colorizer":
        """Restore G (latest step, `step`, or the best by validation L1) from a run workdir
        or its checkpoints directory. Raises `checkpoint.CheckpointError`."""
        directory = checkpoint_dir(path)
        step = checkpoint.resolve_step(directory, step=step, best=best)
        config = ml_collections.ConfigDict(checkpoint.read_config(directory, step))
        if "model" not in config or "data" not in config:
            raise checkpoint.CheckpointError(f"{directory}/{step}/config: no model/data section; "
                                             "not a jaxcolor training checkpoint")
        abstract = nnx.eval_shape(lambda: build.make_generator(config.model, seed=0))
        abstract.eval()  # BatchNorm uses the running statistics
        graphdef, params, batch_stats = nnx.split(abstract, nnx.Param, ...)
        variables = checkpoint.restore_generator(
            directory, step, {"params": params, "batch_stats": batch_stats})
        return cls(graphdef, variables, config, step=step, **kwargs)

    # -- public API ----------------------------------------------------------------------

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
        n = L.shape[0]
        bucket = 1 << (n - 1).bit_length()  # pad to a power of two: few compiled shapes
        padded = np.zeros((bucket,) + L.shape[1:] + (1,), np.float32)
        padded[:n, ..., 0] = color.normalize_l(L)
        ab = _forward(self._graphdef, self._variables["params"], self._variables["batch_stats"],
                      jnp.asarray(padded))
        return color.denormalize_ab(np.asarray(ab[:n], np.float32))
