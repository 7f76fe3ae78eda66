"""The one evaluator: what is measured of a colourised photo, and the summary of a set.

Training's validation (`jaxcolor.train.validation`, on the devices, inside the jitted eval
step), `jaxcolor evaluate` (`jaxcolor.inference.evaluation`, in the pipeline's worker
threads) and the benchmarks all measure with `image_metrics` and summarise with
`summarize`, so a checkpoint is scored (`jaxcolor.checkpoints.score`) by the same numbers
`evaluate` reports and the benchmarks read. As in big_vision, one mechanism serves training
and standalone evaluation; the runners differ only in where the photos come from.

Every metric is taken from delivered 8-bit sRGB images (what a user sees and saves), the
prediction and the gray image of the same lightness (a = b = 0: the floor to beat, and the
honest reference for dull sepia outputs), each against the truth:

  psnr, ssim       on RGB in [0, 1]                       (`jaxcolor.metrics`)
  ab_mae           mean |a - a'|, |b - b'| in Lab units;  ab_auc  Zhang et al.'s AuC
  cf               Hasler & Suesstrunk colourfulness (the truth's is `cf_true`)
per image as `NAME` (the prediction) and `NAME_gray` (the gray image), and per set the means,
`delta_cf` = |mean cf - mean cf_true| (and `delta_cf_gray` = mean cf_true) and `images`.
`xp` is numpy on the host and jax.numpy on the devices: one implementation.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxcolor import color, metrics

PER_IMAGE = ("psnr", "ssim", "ab_mae", "ab_auc", "cf")
"""Metrics of one image against its truth, for the prediction and for the gray image."""
TABLE = (("PSNR (dB)", "psnr", "{:8.2f}"), ("SSIM", "ssim", "{:8.4f}"),
         ("|ab| error", "ab_mae", "{:8.2f}"), ("AuC", "ab_auc", "{:8.4f}"),
         ("CF", "cf", "{:8.1f}"), ("delta-CF", "delta_cf", "{:8.1f}"))


def gray_image(true_rgb8, *, xp=jnp):
    """The 8-bit gray sRGB image (R = G = B) of the truth's lightness."""
    if xp is np:
        true_rgb8 = np.asarray(true_rgb8, np.uint8)
    else:
        true_rgb8 = xp.asarray(true_rgb8).astype(xp.int32)
    L = color.srgb8_lightness(xp, true_rgb8)
    gray = xp.round(color.gray_rgb_from_l(L, xp=xp) * 255.0)
    return xp.repeat(gray[..., None], 3, axis=-1)


def _lab(rgb8, xp):
    rgb = xp.asarray(rgb8, xp.float32) / 255.0
    return color.rgb_to_lab(rgb) if xp is jnp else color.rgb_to_lab_np(rgb)


def _scores(rgb8, true_rgb8, true_ab, xp) -> dict:
    pred, true = xp.asarray(rgb8, xp.float32) / 255.0, xp.asarray(true_rgb8, xp.float32) / 255.0
    ab = _lab(rgb8, xp)[..., 1:]
    return {"psnr": metrics.psnr(pred, true, xp=xp), "ssim": metrics.ssim(pred, true, xp=xp),
            "ab_mae": metrics.ab_mae(ab, true_ab, xp=xp),
            "ab_auc": metrics.ab_auc(ab, true_ab, xp=xp),
            "cf": metrics.colorfulness(xp.asarray(rgb8, xp.float32), xp=xp)}


def image_metrics(pred_rgb8, true_rgb8, *, xp=jnp) -> dict:
    """Per-image metrics of sRGB images `[..., H, W, 3]` holding 0..255 (uint8, or floats of
    integer values): the prediction's (`NAME`), the gray image's (`NAME_gray`) and the
    truth's colourfulness (`cf_true`), each of shape `[...]`."""
    true_ab = _lab(true_rgb8, xp)[..., 1:]
    model = _scores(pred_rgb8, true_rgb8, true_ab, xp)
    gray = _scores(gray_image(true_rgb8, xp=xp), true_rgb8, true_ab, xp)
    return {**model, **{f"{k}_gray": v for k, v in gray.items() if k != "cf"},
            "cf_true": metrics.colorfulness(xp.asarray(true_rgb8, xp.float32), xp=xp)}


def to_rgb8(rgb01):
    """Float sRGB in [0, 1] -> the 8-bit values it is delivered as (jax.numpy, on device)."""
    return jnp.round(jnp.clip(rgb01, 0.0, 1.0) * 255.0)


def summarize(per_image: dict) -> dict[str, float]:
    """Per-image arrays (each `[N]`, the keys of `image_metrics`) -> the set's numbers:
    every mean (float64, on the host; a +inf PSNR of an exact match makes the mean +inf
    rather than being dropped silently), `delta_cf`, `delta_cf_gray` and `images`."""
    summary = {}
    for name, values in per_image.items():
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 1 or values.size == 0:
            raise metrics.MetricInputError(f"evaluator.summarize: '{name}' must be a non-empty "
                                           f"per-image [N] array, got shape {values.shape}")
        summary[name] = float(values.mean())
    if "cf" in per_image and "cf_true" in per_image:
        summary["delta_cf"] = metrics.delta_colorfulness(per_image["cf"], per_image["cf_true"])
        summary["delta_cf_gray"] = summary["cf_true"]  # the gray image's CF is 0
    summary["images"] = len(next(iter(per_image.values()))) if per_image else 0
    return summary


def model_and_gray(summary: dict) -> tuple[dict, dict]:
    """A summary split into the prediction's numbers and the gray image's, by the names of
    `TABLE` (plus `cf_true`)."""
    model = {key: summary[key] for _, key, _ in TABLE}
    gray = {key: summary[f"{key}_gray"] for _, key, _ in TABLE if key != "cf"}
    gray["cf"] = 0.0
    model["cf_true"] = gray["cf_true"] = summary["cf_true"]
    return model, gray


def format_table(summary: dict) -> str:
    """The short model | gray table `jaxcolor evaluate` prints."""
    model, gray = model_and_gray(summary)
    lines = [f"{'':12s}{'model':>8s}{'gray':>8s}"]
    for title, key, fmt in TABLE:
        lines.append(f"{title:12s}{fmt.format(model[key])}{fmt.format(gray[key])}")
    lines.append(f"{'CF (true)':12s}{summary['cf_true']:8.1f}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Uncertainty: paired bootstrap over photos.
# --------------------------------------------------------------------------------------

INTERVAL_LEVEL = 0.95


def _set_statistics(per_image: dict, rows: np.ndarray) -> dict[str, np.ndarray]:
    """The set-level numbers of resampled sets (`rows`: [samples, n] photo indices)."""
    take = {k: np.asarray(per_image[k], np.float64)[rows] for k in
            ("psnr", "psnr_gray", "cf", "cf_true")}
    return {"psnr": take["psnr"].mean(-1),
            "psnr_gain": (take["psnr"] - take["psnr_gray"]).mean(-1),
            "delta_cf": np.abs(take["cf"].mean(-1) - take["cf_true"].mean(-1))}


def bootstrap(per_image: dict, other: dict | None = None, *, samples: int = 2000,
              seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """(estimate, low, high) 95 % percentile intervals of a set's PSNR, its gain over the
    gray image (`psnr_gain`, paired per photo) and its delta-CF, by resampling photos with
    replacement; with `other` (the same photos, in the same order, measured for another
    model) also the paired differences `psnr_diff` and `delta_cf_diff` (this minus other).
    A difference whose interval holds 0 is no difference."""
    n = len(per_image["psnr"])
    if other is not None and len(other["psnr"]) != n:
        raise metrics.MetricInputError(f"evaluator.bootstrap: {n} photos against "
                                       f"{len(other['psnr'])}: a paired comparison needs the "
                                       "same photos")
    rows = np.random.default_rng(seed).integers(0, n, (samples, n))
    everything = np.arange(n)[None]
    mine, mine_all = _set_statistics(per_image, rows), _set_statistics(per_image, everything)
    resampled, estimate = dict(mine), {k: float(v[0]) for k, v in mine_all.items()}
    if other is not None:
        theirs, theirs_all = _set_statistics(other, rows), _set_statistics(other, everything)
        for name in ("psnr", "delta_cf"):
            resampled[f"{name}_diff"] = mine[name] - theirs[name]
            estimate[f"{name}_diff"] = float(mine_all[name][0] - theirs_all[name][0])
    tail = 100 * (1 - INTERVAL_LEVEL) / 2
    return {k: (estimate[k], float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail)))
            for k, v in resampled.items()}
