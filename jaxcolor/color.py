"""Colour science: sRGB <-> CIELAB, the model's normalisation and the 8-bit storage encoding.

Every conversion exists twice: in `jax.numpy` (batched, jit-able, differentiable; used on
device for normalisation, metrics and the generator's gray input) and in numpy (host code:
ingestion, inference pre/post-processing), written from the same constants so both agree.

Conventions (the same as scikit-image's `rgb2lab` / `lab2rgb`):
  * sRGB is gamma-encoded, float in [0, 1], D65 white point, channels last.
  * Lab has L in [0, 100] and a, b roughly in [-110, 110] for sRGB colours.

The model sees L in [-1, 1] and ab / 110 (`normalize_l`, `normalize_ab`).

On disk, records use OpenCV's 8-bit Lab encoding, which is also the layout of the Kaggle
"Image Colorization" dataset: L8 = L * 255 / 100, a8 = a + 128, b8 = b + 128, all rounded and
clipped to uint8 (`encode_lab8` / `decode_lab8`).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

# D65 reference white (CIE 1931 2 degree observer), as scikit-image uses.
D65_WHITE = (0.95047, 1.0, 1.08883)

# Linear sRGB -> CIE XYZ (IEC 61966-2-1), and its inverse.
_RGB_TO_XYZ = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    dtype=np.float64,
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
# (X/Xn, Y/Yn, Z/Zn) -> linear sRGB: the white point folded into the matrix's columns.
XYZ_WHITE_TO_RGB = (_XYZ_TO_RGB * np.asarray(D65_WHITE)).astype(np.float32)

LAB_DELTA = 6.0 / 29.0
"""CIE's f(t) (L = 116 f(Y / Yn) - 16) is a cube root above LAB_DELTA**3, linear below."""

LAB_SLOPE = 1.0 / (3.0 * LAB_DELTA**2)
"""Slope of the linear piece of f(t): f(t) = t * LAB_SLOPE + 4 / 29."""

SRGB_KNEE = 0.0031308
"""Linear sRGB value below which the sRGB curve is the straight line 12.92 x."""

AB_SCALE = 110.0
"""Divisor that maps a, b to roughly [-1, 1]; sRGB's gamut spans |a|, |b| <= ~108."""

L8_SCALE = 255.0 / 100.0
"""OpenCV 8-bit Lab: L8 = L * 255 / 100."""

AB8_OFFSET = 128.0
"""OpenCV 8-bit Lab: a8 = a + 128, b8 = b + 128."""

CHROMA_GAIN_PIVOT = 20.0
"""Chroma (Lab units) at which `scale_chroma`'s gain is `scale` whatever its exponent."""


# --------------------------------------------------------------------------------------
# Shared formulas. `xp` is numpy or jax.numpy, so both twins share one implementation.
# --------------------------------------------------------------------------------------


def _srgb_to_linear(xp, c):
    return xp.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)


def _linear_to_srgb(xp, c):
    # Clip before the power so negative (out-of-gamut) values do not produce NaN.
    c_pos = xp.maximum(c, SRGB_KNEE)
    return xp.where(c > SRGB_KNEE, 1.055 * c_pos ** (1.0 / 2.4) - 0.055, 12.92 * c)


def lab_f(xp, t):
    """CIE's f(t) of L = 116 f(Y / Yn) - 16 (cube root, linear near black); `xp` is numpy or
    jax.numpy."""
    epsilon = LAB_DELTA**3
    t_safe = xp.maximum(t, epsilon)  # keeps cbrt's gradient finite at 0
    return xp.where(t > epsilon, xp.cbrt(t_safe), t * LAB_SLOPE + 4.0 / 29.0)


def lab_f_inv(xp, f):
    """The inverse of `lab_f` (f**3 by products, linear below LAB_DELTA)."""
    return xp.where(f > LAB_DELTA, f * f * f, (f - 4.0 / 29.0) / LAB_SLOPE)


def _rgb_to_lab(xp, rgb, dtype):
    rgb = xp.asarray(rgb, dtype=dtype)
    linear = _srgb_to_linear(xp, rgb)
    xyz = linear @ xp.asarray(_RGB_TO_XYZ.T, dtype=dtype)
    xyz = xyz / xp.asarray(D65_WHITE, dtype=dtype)
    fx, fy, fz = (lab_f(xp, xyz[..., i]) for i in range(3))
    L = 116.0 * fy - 16.0
    a = 500.0 * (fx - fy)
    b = 200.0 * (fy - fz)
    return xp.stack([L, a, b], axis=-1)


def lab_to_linear_planes(xp, L, a, b):
    """Linear sRGB (R, G, B planes, not clipped) of CIELAB channels. Planar, channel by
    channel: numpy is slow on a trailing axis of 3 (per-pixel matmul, min, max)."""
    fy = (L + 16.0) / 116.0
    fx = fy + a / 500.0
    # Like scikit-image, clamp f(z) at 0 (very blue, out-of-gamut colours) before inverting.
    fz = xp.maximum(fy - b / 200.0, 0.0)
    x, y, z = (lab_f_inv(xp, f) for f in (fx, fy, fz))
    return tuple(m[0] * x + m[1] * y + m[2] * z for m in XYZ_WHITE_TO_RGB)


def _lab_to_rgb(xp, lab, dtype, clip):
    lab = xp.asarray(lab, dtype=dtype)
    linear = xp.stack(lab_to_linear_planes(xp, lab[..., 0], lab[..., 1], lab[..., 2]), -1)
    rgb = _linear_to_srgb(xp, linear)
    return xp.clip(rgb, 0.0, 1.0) if clip else rgb


# --------------------------------------------------------------------------------------
# jax.numpy: batched, jit-able, differentiable.
# --------------------------------------------------------------------------------------


def rgb_to_lab(rgb: jnp.ndarray) -> jnp.ndarray:
    """sRGB in [0, 1] (..., 3) -> CIELAB (..., 3), L in [0, 100]. float32."""
    return _rgb_to_lab(jnp, rgb, jnp.float32)


def lab_to_rgb(lab: jnp.ndarray, clip: bool = True) -> jnp.ndarray:
    """CIELAB (..., 3) -> sRGB (..., 3); clipped to [0, 1] unless `clip=False`. float32."""
    return _lab_to_rgb(jnp, lab, jnp.float32, clip)


def gray_rgb_from_l(L, *, xp=jnp):
    """The sRGB gray value in [0, 1] that lightness L (in [0, 100]) stands for.

    Equal to `lab_to_rgb` with a = b = 0 (every channel gets the same value), but one value
    per pixel: this is what an ImageNet-pretrained encoder should see for a gray photo, and
    the gray image evaluation measures the model against (`xp=np` there).
    """
    L = xp.asarray(L, xp.float32)
    y = lab_f_inv(xp, (L + 16.0) / 116.0)  # Y / Yn with Yn = 1
    return xp.clip(_linear_to_srgb(xp, xp.maximum(y, 0.0)), 0.0, 1.0)


def scale_chroma(ab, scale, gamma=1.0, *, xp=jnp):
    """Predicted Lab a/b [..., 2] times scale * (|ab| / CHROMA_GAIN_PIVOT) ** (gamma - 1),
    hue kept (`model.chroma` and `model.chroma_gamma` of a model's config).

    gamma = 1 is one scale for every pixel. An L1-trained G predicts a small a/b where it
    is unsure (the median of the colours it saw there) and a large one where it is sure;
    gamma > 1 colours the sure pixels more than the unsure ones, which at equal
    colourfulness costs less PSNR than one scale (BENCHMARKS.md, "A chroma gain that grows
    with the predicted chroma"). `scale` and `gamma` may be traced values (no recompiling).
    """
    if isinstance(gamma, (int, float)) and gamma == 1.0:
        return ab * xp.asarray(scale, xp.float32)
    chroma = xp.sqrt(xp.sum(ab * ab, axis=-1, keepdims=True) + 1e-6)  # finite gradient at 0
    gain = xp.asarray(scale, xp.float32) * (chroma / CHROMA_GAIN_PIVOT) ** (
        xp.asarray(gamma, xp.float32) - 1.0)
    return ab * gain


# --------------------------------------------------------------------------------------
# numpy twins for host code.
# --------------------------------------------------------------------------------------


def rgb_to_lab_np(rgb: np.ndarray) -> np.ndarray:
    """numpy version of `rgb_to_lab`. Accepts uint8 (0..255) or float in [0, 1]."""
    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint8:
        rgb = rgb.astype(np.float32) / 255.0
    return _rgb_to_lab(np, rgb, np.float32)


def lab_to_rgb_np(lab: np.ndarray, clip: bool = True) -> np.ndarray:
    """numpy version of `lab_to_rgb`; float32 sRGB in [0, 1]."""
    return _lab_to_rgb(np, lab, np.float32, clip)


# --------------------------------------------------------------------------------------
# 8-bit sRGB at full resolution: its lightness, the gamut, the gamma curve. `xp` is numpy
# (host) or jax.numpy (`jaxcolor.inference.compose`, on the device), from the same tables.
# --------------------------------------------------------------------------------------

# Overshoot that 8-bit rounding removes without visible change: half a level of the encoded
# (gamma) value, expressed in linear sRGB, where the gamut test is cheap.
_GAMUT_LOW = -(0.5 / 255) / 12.92
_GAMUT_HIGH = ((1.0 + 0.5 / 255 + 0.055) / 1.055) ** 2.4


def in_srgb_gamut(xp, r, g, b):
    """Whether linear sRGB planes encode to 8-bit sRGB without clipping (to half a level)."""
    return ((xp.minimum(xp.minimum(r, g), b) >= _GAMUT_LOW)
            & (xp.maximum(xp.maximum(r, g), b) <= _GAMUT_HIGH))


def _srgb8_table(size: int = 1 << 16) -> np.ndarray:
    linear = np.arange(size, dtype=np.float64) / (size - 1)
    return rgb01_to_uint8(_linear_to_srgb(np, linear))


def linear_to_srgb8(xp, linear):
    """Linear sRGB values (clipped to [0, 1]) -> uint8 sRGB. numpy looks the gamma curve up
    in a 65536-entry table (one look-up per value, within 1 level of the exact curve);
    jax.numpy computes the curve (cheap on an accelerator) and rounds."""
    if xp is np:
        scaled = np.clip(np.asarray(linear, np.float32) * (_SRGB8_TABLE.size - 1) + 0.5,
                         0, _SRGB8_TABLE.size - 1)
        return _SRGB8_TABLE[scaled.astype(np.uint16)]
    srgb = _linear_to_srgb(xp, xp.clip(linear, 0.0, 1.0))
    return xp.clip(xp.round(srgb * 255.0), 0, 255).astype(xp.uint8)


def _luminance_tables() -> np.ndarray:
    """[3, 256] float32: each 8-bit level's share of luminance Y, per sRGB channel.

    Derived from `rgb_to_lab_np` (L of the pure channel colours, inverted to Y), so
    `srgb8_lightness` agrees with it by construction while costing three table look-ups and
    one cube root per pixel instead of a full Lab conversion.
    """
    levels = np.arange(256, dtype=np.uint8)
    tables = np.zeros((3, 256), np.float64)
    for c in range(3):
        rgb = np.zeros((256, 3), np.uint8)
        rgb[:, c] = levels
        L = rgb_to_lab_np(rgb)[:, 0].astype(np.float64)
        tables[c] = lab_f_inv(np, (L + 16.0) / 116.0)
    return tables.astype(np.float32)


def srgb8_lightness(xp, pixels):
    """CIELAB L (float32, 0..100) of uint8 sRGB pixels: gray [H, W] or RGB [..., 3]."""
    if pixels.ndim == 2:
        return xp.asarray(_GRAY_L)[pixels]
    tables = xp.asarray(_Y_TABLES)
    y = tables[0][pixels[..., 0]] + tables[1][pixels[..., 1]] + tables[2][pixels[..., 2]]
    return 116.0 * lab_f(xp, y) - 16.0


def rgb01_to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Float sRGB in [0, 1] -> uint8 with rounding (not truncation)."""
    return np.clip(np.rint(np.asarray(rgb) * 255.0), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------
# The model's normalisation, defined once.
# --------------------------------------------------------------------------------------


def normalize_l(L):
    """L in [0, 100] -> [-1, 1]."""
    return L / 50.0 - 1.0


def denormalize_l(l_norm):
    """[-1, 1] -> L in [0, 100]."""
    return (l_norm + 1.0) * 50.0


def normalize_ab(ab):
    """a, b -> a / 110, b / 110 (roughly [-1, 1]; the generator's tanh range)."""
    return ab / AB_SCALE


def denormalize_ab(ab_norm):
    """a / 110, b / 110 -> a, b."""
    return ab_norm * AB_SCALE


# --------------------------------------------------------------------------------------
# 8-bit storage encoding (OpenCV's 8-bit Lab; the Kaggle "Image Colorization" layout).
# --------------------------------------------------------------------------------------


def encode_lab8(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lab float (..., 3) -> (L8 uint8 (...), ab8 uint8 (..., 2)), OpenCV's 8-bit convention.

    L8 = round(L * 255 / 100); a8 = round(a + 128); b8 = round(b + 128); clipped to 0..255.
    The quantisation step is 0.39 in L and 1 in a, b: below what the eye sees in a photo.
    """
    lab = np.asarray(lab, dtype=np.float32)
    L8 = np.clip(np.rint(lab[..., 0] * L8_SCALE), 0, 255).astype(np.uint8)
    ab8 = np.clip(np.rint(lab[..., 1:] + AB8_OFFSET), 0, 255).astype(np.uint8)
    return L8, ab8


def decode_lab8(L8: np.ndarray, ab8: np.ndarray) -> np.ndarray:
    """(L8 uint8 (...), ab8 uint8 (..., 2)) -> Lab float32 (..., 3). Inverse of `encode_lab8`."""
    L = np.asarray(L8, dtype=np.float32) / L8_SCALE
    ab = np.asarray(ab8, dtype=np.float32) - AB8_OFFSET
    return np.concatenate([L[..., None], ab], axis=-1)


def lab8_to_model(L8, ab8):
    """uint8 storage -> model inputs, in jax.numpy so it runs on device after the transfer.

    Returns (L in [-1, 1] with a trailing channel axis (..., H, W, 1), ab / 110 (..., H, W, 2)),
    float32. Only uint8 crosses the host-device link: 4x less traffic than float32.
    """
    L = jnp.asarray(L8, jnp.float32)[..., None] / L8_SCALE
    ab = jnp.asarray(ab8, jnp.float32) - AB8_OFFSET
    return normalize_l(L), normalize_ab(ab)


def model_to_lab(l_norm, ab_norm):
    """Model outputs -> Lab (jnp): (L in [-1,1] (...,1), ab/110 (...,2)) -> Lab (...,3)."""
    return jnp.concatenate([denormalize_l(l_norm), denormalize_ab(ab_norm)], axis=-1)


_SRGB8_TABLE = _srgb8_table()  # uint8 sRGB of 65536 evenly spaced linear values
_Y_TABLES = _luminance_tables()  # each 8-bit level's share of Y, per channel
_GRAY_L = rgb_to_lab_np(np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, 1))[:, 0]
