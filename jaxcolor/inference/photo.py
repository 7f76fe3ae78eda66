"""A photo at full resolution, and the pixel work around the network: `compose`.

The network (`jaxcolor.inference.Colorizer`) only ever sees a small square; everything that
touches the full-resolution photo lives here, as numpy functions:

  * `Photo`: what can be colourised, validated once: uint8 sRGB gray [H, W] or RGB
    [H, W, 3], or float CIELAB lightness [H, W] in [0, 100] (a Kaggle-style L array, see
    `Photo.from_lightness8`), plus an optional uint8 alpha [H, W] that the output keeps.
    Photos under `MIN_SIDE` pixels on a side are refused.
  * `render_lightness`: the photo's L inside the render square R x R: the long side resized
    to R, aspect ratio kept, the rest filled by reflecting the photo (stretching would
    distort shapes; a fixed square lets every photo share one compiled shape and fill whole
    batches); `crop_render` undoes the padding.
  * `compose`: predicted ab (at render size) upsampled to full resolution, edge-aware: a
    joint bilateral upsampling guided by the photo's own full-resolution L (`Upsampler`),
    so colour stops at the photo's sharp edges instead of bleeding across them ("bilinear"
    remains available); combined with that L; out-of-gamut colours lose chroma, never
    lightness (`lab_to_rgb8_keep_l`), so the output's L is the input's up to 8-bit rounding.

Full-resolution work runs in strips of rows (`STRIP_PIXELS`), in parallel threads, so a
12000 x 12000 photo needs its output array plus a few strips of memory.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os

import numpy as np
from PIL import Image

from jaxcolor import color
from jaxcolor.data import images
from jaxcolor.errors import RunError, UsageError
from jaxcolor.models.generator import ENCODER_STRIDE

MIN_SIDE = 8
"""Photos smaller than this on a side are refused: nothing recognisable to colour."""

STRIP_PIXELS = 2**19
"""Full-resolution work is done this many pixels at a time (~30 MB of float temporaries
per thread)."""

UPSAMPLING = ("bilateral", "bilinear")
"""How predicted ab reaches full resolution: edge-aware (default) or plain bilinear."""

BILATERAL_SIGMA = 10.0
"""Range scale of the joint bilateral upsampling, in L units (0..100)."""


class InputImageError(RunError, ValueError):
    """An input cannot be colourised (wrong type, dtype, shape, range or too small)."""


# --------------------------------------------------------------------------------------
# Inputs.
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Photo:
    """One image to colourise, validated on construction (see the module docstring)."""

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    hints: tuple = ()  # `inference.hints.Hint`s: colours the user gave, in pixel coordinates

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
        if images.has_alpha(image):
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


def lightness(pixels: np.ndarray) -> np.ndarray:
    """CIELAB L (float32 [h, W], 0..100) of rows of `Photo.pixels`."""
    if pixels.dtype != np.uint8:
        return np.clip(pixels.astype(np.float32), 0.0, 100.0)
    return color.srgb8_lightness(np, pixels)


# --------------------------------------------------------------------------------------
# Geometry: photo <-> render square.
# --------------------------------------------------------------------------------------


def round_render_size(size: int) -> int:
    """A render size the encoder takes: rounded up to a multiple of its stride (32)."""
    return max(ENCODER_STRIDE, -(-int(size) // ENCODER_STRIDE) * ENCODER_STRIDE)


def render_size(config, requested: int | None = None) -> int:
    """The render size of a colouriser: `requested` rounded up to the encoder's stride, or by
    default the training crop size of the run's config (users should never have to tune it
    by hand: DeOldify's render-factor lesson)."""
    if requested is not None and requested < 1:
        raise UsageError(f"render_size must be positive, got {requested}")
    return round_render_size(int(config.data.crop_size) if requested is None else requested)


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


def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """The two source indices [n_out, 2] and bilinear weights of each output position
    (half-pixel centres, clamped at the borders)."""
    pos = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    base = np.floor(pos).astype(np.int64)[:, None] + np.arange(2)
    weights = np.maximum(0.0, 1.0 - np.abs(pos[:, None] - base))
    return np.clip(base, 0, n_in - 1), weights.astype(np.float32)


class Upsampler:
    """Predicted ab [h, w, 2] at render size -> full-resolution rows, one strip at a time.

    Joint bilateral upsampling (Kopf et al., 2007) on the bilinear footprint: each output
    pixel blends the 2 x 2 nearest low-resolution predictions with their bilinear weights
    times a range weight exp(-(L - L_tap)^2 / (2 sigma^2)) that compares the pixel's own
    full-resolution lightness with the lightness each prediction was made from. In flat
    regions this is exactly bilinear; across an edge, colour comes from the side the pixel
    belongs to, so colour does not bleed over sharp edges. `sigma=None` is plain bilinear.

    (Measured on scikit-image's photos with the true ab downsampled to 64 / 224 px and
    upsampled back: mean |ab| error 1.84 -> 1.70 / 1.09 -> 1.04 against bilinear; a fast
    guided filter did worse than bilinear, its window averaging dulls colour.)

    The horizontal gathers are done once at low resolution (h x W x 3 floats: small);
    strips gather rows of them, so no full-resolution float map is kept.
    """

    def __init__(self, ab: np.ndarray, L: np.ndarray, height: int, width: int,
                 sigma: float | None = BILATERAL_SIGMA):
        x_idx, self._x_w = _taps(ab.shape[1], width)
        y_idx, self._y_w = _taps(ab.shape[0], height)
        self._y_idx = y_idx
        # One contiguous [h, W] plane per horizontal tap and channel (planar: numpy is slow
        # on a trailing axis of 2): strips gather whole rows of them.
        def planes(x):
            return [np.ascontiguousarray(x[:, x_idx[:, j]], np.float32) for j in range(2)]
        self._a, self._b, self._L = planes(ab[..., 0]), planes(ab[..., 1]), planes(L)
        self._range_scale = None if sigma is None else -0.5 / sigma**2  # of exp(-d^2/2s^2)

    def ab(self, start: int, stop: int, L: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
        """(a, b), each [stop - start, W], for those rows; `L` ([rows, W]) is needed with
        sigma."""
        shape = (stop - start, len(self._x_w))
        a, b, den = (np.zeros(shape, np.float32) for _ in range(3))
        for i in range(2):
            rows = self._y_idx[start:stop, i]
            y_w = self._y_w[start:stop, i, None]
            for j in range(2):
                w = y_w * self._x_w[None, :, j]
                if self._range_scale is not None:
                    d = L - self._L[j][rows]
                    w *= np.exp(d * d * self._range_scale)
                a += w * self._a[j][rows]
                b += w * self._b[j][rows]
                den += w
        np.reciprocal(den, out=den)
        return a * den, b * den


# --------------------------------------------------------------------------------------
# Lab -> sRGB keeping L.
# --------------------------------------------------------------------------------------


def lab_to_rgb8_keep_l(L: np.ndarray, a: np.ndarray, b: np.ndarray,
                       steps: int = 12) -> np.ndarray:
    """Lab planes (L, a, b) -> uint8 sRGB [..., 3], reducing chroma (not lightness) of colours
    outside the sRGB gamut.

    Clipping out-of-gamut RGB would change lightness (a saturated dark blue clipped to black).
    Instead such a pixel's ab is scaled towards gray (hue and L kept) by the largest factor
    in [0, 1] that fits, found by bisection to 2^-steps (12 steps: the colour ends on the
    gamut's boundary to the 8-bit level; 8 left dark colours up to 12 levels inside it).
    The bisection tests the gamut in linear RGB (the gamma curve is monotonic, so the test
    is the same), and the gamma curve is applied once, by table look-up: an untrained or
    saturated model can put most pixels out of gamut, and this must stay cheap then.
    """
    L, a, b = (np.asarray(c, np.float32) for c in (L, a, b))
    planes = color.lab_to_linear_planes(np, L, a, b)
    out = ~color.in_srgb_gamut(np, *planes)
    if out.any():
        L_o, a_o, b_o = L[out], a[out], b[out]
        lo, hi = np.zeros(len(L_o), np.float32), np.ones(len(L_o), np.float32)  # 0: gray fits
        for _ in range(steps):
            mid = 0.5 * (lo + hi)
            fits = color.in_srgb_gamut(np, *color.lab_to_linear_planes(np, L_o, a_o * mid,
                                                                        b_o * mid))
            lo, hi = np.where(fits, mid, lo), np.where(fits, hi, mid)
        fitted = color.lab_to_linear_planes(np, L_o, a_o * lo, b_o * lo)
        for plane, fitted_plane in zip(planes, fitted):
            plane[out] = fitted_plane
    rgb = np.empty(L.shape + (3,), np.uint8)
    for c, plane in enumerate(planes):
        rgb[..., c] = color.linear_to_srgb8(np, plane)
    return rgb


def compose(photo: Photo, ab_render: np.ndarray, L_render: np.ndarray, *,
            upsample: str = "bilateral", threads: int | None = None) -> np.ndarray:
    """Full-resolution uint8 RGB [H, W, 3] (RGBA when the photo has alpha) from the photo's
    own L and the ab predicted at render size (`ab_render`, `L_render`: cropped, Lab units).

    Works in strips of `STRIP_PIXELS`, on `threads` threads (default: one per CPU core).
    """
    h, w = photo.size
    if upsample not in UPSAMPLING:
        raise ValueError(f"upsample: {upsample!r}; choose one of {UPSAMPLING}")
    up = Upsampler(ab_render, L_render, h, w,
                   sigma=BILATERAL_SIGMA if upsample == "bilateral" else None)
    out = np.empty((h, w, 3 if photo.alpha is None else 4), np.uint8)

    def strip(start: int) -> None:
        stop = min(start + rows, h)
        L = lightness(photo.pixels[start:stop])
        out[start:stop, :, :3] = lab_to_rgb8_keep_l(L, *up.ab(start, stop, L))

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
