"""Image-quality and colourfulness metrics: pure functions on batched arrays.

Every metric takes images channels-last, `[..., H, W, C]` with any leading batch axes, and
returns one value per image (shape `[...]`). The array module is a keyword: `xp=jnp` (the
default) inside the jitted eval step on the device, `xp=np` on the host, where evaluation
measures photos of every size in worker threads without compiling a program per shape; one
implementation serves both. What is measured of a colourised photo, and how a set is
summarised, is `jaxcolor.evaluator`'s.

Definitions follow the references the numbers are compared with:
  psnr          scikit-image `peak_signal_noise_ratio`; identical images give +inf, as there.
  ssim          Wang et al. (2004) SSIM as scikit-image `structural_similarity(...,
                gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                channel_axis=-1)`: 11-tap Gaussian window, K1 = 0.01, K2 = 0.03, mean over
                the map with the 5-pixel border cropped, then over channels.
  ab_mae        mean |a - a'| and |b - b'| over pixels, Lab units.
  colorfulness  Hasler & Suesstrunk (2003) in the absolute-value form used by DDColor and CT2.
  ab_auc        Zhang et al. (2016) "Colorful Image Colorization": area under the curve of the
                fraction of pixels whose ab error is within a threshold, thresholds 0..150.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # scikit-image's choice: radius int(3.5 * 1.5 + 0.5) = 5, an 11-tap window
SSIM_K1 = 0.01
SSIM_K2 = 0.03


class MetricInputError(ValueError):
    """An array handed to a metric has the wrong shape."""


def _as_float(x, xp):
    """An array of `xp` in floating point (integers and bf16 are computed in float32)."""
    x = xp.asarray(x)
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _check_pair(fn: str, pred: jnp.ndarray, true: jnp.ndarray, channels: int | None) -> None:
    if pred.shape != true.shape:
        raise MetricInputError(f"metrics.{fn}: prediction shape {pred.shape} differs from "
                               f"target shape {true.shape}")
    if pred.ndim < 3 or (channels is not None and pred.shape[-1] != channels):
        want = f"[..., H, W, {channels}]" if channels is not None else "[..., H, W, C]"
        raise MetricInputError(f"metrics.{fn}: expected images shaped {want}, got {pred.shape}")


# --------------------------------------------------------------------------------------
# Fidelity to the ground truth.
# --------------------------------------------------------------------------------------


def psnr(pred_rgb, true_rgb, data_range: float = 1.0, *, xp=jnp):
    """Peak signal-to-noise ratio in dB per image, over all pixels and channels.

    Identical images have zero error and give +inf, as scikit-image does: a clamp would hide
    that a prediction copied its target. Average finite sets (see `summarize`).
    """
    pred, true = _as_float(pred_rgb, xp), _as_float(true_rgb, xp)
    _check_pair("psnr", pred, true, channels=None)
    mse = xp.mean(xp.square(pred - true), axis=(-3, -2, -1))
    with np.errstate(divide="ignore"):  # an exact match: +inf, as documented
        return 10.0 * xp.log10(data_range**2 / mse)


def _gaussian_taps(sigma: float, truncate: float) -> np.ndarray:
    """The normalised 1-D Gaussian of `scipy.ndimage.gaussian_filter` (radius int(t*s+.5))."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (x / sigma) ** 2)
    return taps / taps.sum()


def _gaussian_valid(x, taps: np.ndarray):
    """Separable Gaussian blur of every channel of NHWC `x`, 'VALID' positions only: a sum
    of shifted slices, the same code in numpy and jax.numpy.

    scikit-image filters with reflected borders and then crops (window - 1) / 2 pixels from
    each side, which leaves exactly the positions whose window lies inside the image: a
    VALID filter computes those and nothing else, so border handling cannot differ.
    """
    k = len(taps)
    for axis in (1, 2):
        n = x.shape[axis] - k + 1
        x = sum(float(t) * _slice(x, axis, i, i + n) for i, t in enumerate(taps))
    return x


def _slice(x, axis: int, start: int, stop: int):
    index = [slice(None)] * x.ndim
    index[axis] = slice(start, stop)
    return x[tuple(index)]


def ssim(pred_rgb, true_rgb, data_range: float = 1.0, *, xp=jnp):
    """Structural similarity per image (Gaussian window, population covariance).

    Computed per channel and averaged over channels, as scikit-image with `channel_axis=-1`.
    Images must be at least 11 x 11. Each image is centred on its per-channel mean before the
    second moments are filtered: variances are shift-invariant, and centring keeps the
    float32 differences E[x^2] - E[x]^2 from cancelling away their digits.
    """
    pred, true = _as_float(pred_rgb, xp), _as_float(true_rgb, xp)
    _check_pair("ssim", pred, true, channels=None)
    taps = _gaussian_taps(SSIM_SIGMA, SSIM_TRUNCATE)
    *batch, h, w, c = pred.shape
    if min(h, w) < len(taps):
        raise MetricInputError(f"metrics.ssim: images are {h}x{w}, smaller than the "
                               f"{len(taps)}x{len(taps)} Gaussian window")
    x = pred.reshape(-1, h, w, c)
    y = true.reshape(-1, h, w, c)
    shift = 0.5 * (xp.mean(x, axis=(1, 2), keepdims=True)
                   + xp.mean(y, axis=(1, 2), keepdims=True))
    xc, yc = x - shift, y - shift
    stacked = xp.concatenate([xc, yc, xc * xc, yc * yc, xc * yc], axis=-1)
    mx, my, mxx, myy, mxy = xp.split(_gaussian_valid(stacked, taps), 5, axis=-1)
    var_x = mxx - mx * mx
    var_y = myy - my * my
    cov = mxy - mx * my
    ux, uy = mx + shift, my + shift  # the local means of the uncentred images
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    ssim_map = ((2 * ux * uy + c1) * (2 * cov + c2)
                / ((ux * ux + uy * uy + c1) * (var_x + var_y + c2)))
    return xp.mean(ssim_map, axis=(1, 2, 3)).reshape(batch)


def ab_mae(pred_ab, true_ab, *, xp=jnp):
    """Mean absolute error of the a and b channels per image, in Lab units."""
    pred, true = _as_float(pred_ab, xp), _as_float(true_ab, xp)
    _check_pair("ab_mae", pred, true, channels=2)
    return xp.mean(xp.abs(pred - true), axis=(-3, -2, -1))


def ab_auc(pred_ab, true_ab, max_threshold: float = 150.0, steps: int = 151, *, xp=jnp):
    """Zhang et al.'s AuC of the cumulative ab-error curve per image, in [0, 1].

    With e the per-pixel Euclidean ab error and thresholds t_k = k * max_threshold /
    (steps - 1), k = 0..steps-1 (by default the integers 0..150):

        acc(t) = fraction of pixels with e <= t,     AuC = mean_k acc(t_k)

    i.e. the mean over the thresholds, not a trapezoid. A perfect prediction scores 1.0, one
    whose every pixel is off by more than max_threshold scores 0.0. Computed without the
    [pixels x thresholds] table: a pixel is within t_k for exactly
    steps - ceil(e / dt) of the thresholds (clipped to 0..steps), so AuC is the pixel mean
    of that count over `steps`.
    """
    if steps < 2 or max_threshold <= 0:
        raise MetricInputError(f"metrics.ab_auc: need steps >= 2 and max_threshold > 0, got "
                               f"steps={steps}, max_threshold={max_threshold}")
    pred, true = _as_float(pred_ab, xp), _as_float(true_ab, xp)
    _check_pair("ab_auc", pred, true, channels=2)
    error = xp.sqrt(xp.sum(xp.square(pred - true), axis=-1))
    dt = max_threshold / (steps - 1)
    within = xp.clip(steps - xp.ceil(error / dt), 0, steps)
    return xp.mean(within, axis=(-2, -1)) / steps


# --------------------------------------------------------------------------------------
# Colourfulness.
# --------------------------------------------------------------------------------------


def colorfulness(rgb255, *, xp=jnp):
    """Hasler & Suesstrunk colourfulness of `[..., H, W, 3]` sRGB images in 0..255.

        rg = |R - G|,  yb = |(R + G) / 2 - B|
        CF = sqrt(var rg + var yb) + 0.3 * sqrt(mean rg^2 + mean yb^2)

    with population variances over each image's pixels (the absolute-value form of DDColor
    and CT2). A gray image scores 0; vivid photos score ~50..100.
    """
    rgb = _as_float(rgb255, xp)
    if rgb.ndim < 3 or rgb.shape[-1] != 3:
        raise MetricInputError(f"metrics.colorfulness: expected images shaped [..., H, W, 3], "
                               f"got {rgb.shape}")
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg = xp.abs(r - g)
    yb = xp.abs(0.5 * (r + g) - b)
    axes = (-2, -1)
    spread = xp.sqrt(xp.var(rg, axis=axes) + xp.var(yb, axis=axes))
    level = xp.sqrt(xp.mean(rg, axis=axes) ** 2 + xp.mean(yb, axis=axes) ** 2)
    return spread + 0.3 * level


def delta_colorfulness(cf_pred, cf_true) -> float:
    """|mean CF(pred) - mean CF(true)| over a set: how far the set's vividness is off.

    A set-level number (DDColor's delta-CF): per-image differences would let too-dull and
    too-vivid images cancel differently, so it is taken from the two means (on the host, in
    float64, like every set-level number of `jaxcolor.evaluator.summarize`).
    """
    mean = lambda v: float(np.mean(np.asarray(v, np.float64)))  # noqa: E731
    return abs(mean(cf_pred) - mean(cf_true))
