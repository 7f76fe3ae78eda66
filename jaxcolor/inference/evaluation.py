"""Measure a checkpoint: metrics beside the gray baseline, and a contact sheet to look at.

The command line is `jaxcolor evaluate` (`jaxcolor.cli.evaluate`). Each image goes through
exactly what `jaxcolor colorize` does (render size, edge-aware upsampling, the image's own
L), so the numbers describe what users get. Metrics, computed
on the delivered 8-bit sRGB images against the true ones (`jaxcolor.metrics`):
  psnr, ssim        on RGB in [0, 1]
  ab_mae            mean |a - a'|, |b - b'| in Lab units;  ab_auc  Zhang et al.'s AuC (0..150)
  cf_pred, cf_true  Hasler & Suesstrunk colourfulness;  delta_cf = |mean cf_pred - mean cf_true|
The same metrics for the gray image (zero ab: the floor every number should beat, and the
honest reference for "dull sepia" outputs) are reported beside them.

Data: a records directory (its validation split when the manifest has one, else every
record; at the stored size; without the records the training config's filter drops, as in
training's validation, unless --no_filter), or photos (file, directory or glob; unreadable
ones are listed and skipped; photos larger than --max_side are first downscaled, truth too).

Writes REPORT_DIR/metrics.json (per-image values, summary, baseline, checkpoint step, the
training config; infinite PSNRs of exact matches are written as null) and
REPORT_DIR/contact_sheet.png (gray | predicted | true for the first --sheet images, each
captioned with its CF); `format_table` is the short table the command prints.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from jaxcolor import color, metrics
from jaxcolor.data import images
from jaxcolor.data import records as records_lib
from jaxcolor.data import stats as stats_lib
from jaxcolor.inference import photo as photo_lib
from jaxcolor.inference.colorizer import Colorizer

METRICS = ("psnr", "ssim", "ab_mae", "ab_auc", "cf_pred", "cf_true")
TILE = 192  # contact-sheet tile box, pixels
CAPTION = 16  # caption strip under each tile


@dataclasses.dataclass(frozen=True)
class Sample:
    name: str
    photo: photo_lib.Photo  # what the colouriser sees
    lightness: np.ndarray  # float32 [H, W], L in [0, 100]
    true_rgb: np.ndarray  # uint8 [H, W, 3]


# --------------------------------------------------------------------------------------
# Data.
# --------------------------------------------------------------------------------------


def record_samples(recs: records_lib.Records, max_images: int | None,
                   thresholds: stats_lib.FilterThresholds | None) -> tuple[Iterator[Sample], dict]:
    """Samples of a records set's validation split (every record if it has none), filtered
    by the training config's rules (`thresholds`; None keeps all) as training validation is."""
    split = "val" if recs.manifest.val_every else "all"
    candidates = recs.split(split)
    if thresholds is None:
        indices, removed = candidates, {}
    else:
        indices, removed = stats_lib.select(recs.stats, thresholds, candidates)
    indices = indices[:max_images]

    def samples():
        for start in range(0, len(indices), 64):
            chunk = indices[start:start + 64]
            L8, ab8 = recs.read(chunk)
            lab = color.decode_lab8(L8, ab8)
            true = color.rgb01_to_uint8(color.lab_to_rgb_np(lab))
            for i, index in enumerate(chunk):
                yield Sample(f"{recs.directory.name}[{index}]", photo_lib.Photo(lab[i, ..., 0]),
                             lab[i, ..., 0], true[i])

    info = {"kind": "records", "split": split, "filter_removed": removed,
            "count": int(len(indices))}
    return samples(), info


def image_samples(paths: list[Path], max_images: int | None, max_side: int,
                  failures: list[dict]) -> Iterator[Sample]:
    """Samples of photo files; unreadable ones are appended to `failures` and skipped."""
    taken = 0
    for path in paths:
        if max_images is not None and taken >= max_images:
            return
        try:
            rgb = images.load_image_rgb(path, min_size=max_side)
            h, w = rgb.shape[:2]
            if max(h, w) > max_side:
                scale = max_side / max(h, w)
                size = (max(1, round(w * scale)), max(1, round(h * scale)))
                rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))
            if min(rgb.shape[:2]) < 11:
                raise photo_lib.InputImageError(f"{rgb.shape[1]}x{rgb.shape[0]} is below "
                                                "SSIM's 11x11 window")
            photo = photo_lib.Photo(rgb)
        except (images.ImageDecodeError, photo_lib.InputImageError) as e:
            failures.append({"path": str(path), "reason": getattr(e, "reason", str(e))})
            continue
        taken += 1
        yield Sample(str(path), photo, photo_lib.lightness(rgb), rgb)


def gray_rgb(L: np.ndarray) -> np.ndarray:
    """The zero-ab baseline: the gray sRGB image of lightness L (R = G = B exactly)."""
    gray = color.rgb01_to_uint8(np.asarray(color.gray_rgb_from_l(L)))
    return np.repeat(gray[..., None], 3, axis=-1)


# --------------------------------------------------------------------------------------
# Metrics.
# --------------------------------------------------------------------------------------


def image_metrics(pred_rgb8: np.ndarray, true_rgb8: np.ndarray) -> dict[str, float]:
    """Every metric of one uint8 [H, W, 3] prediction against its truth."""
    pred, true = pred_rgb8.astype(np.float32) / 255.0, true_rgb8.astype(np.float32) / 255.0
    pred_ab = color.rgb_to_lab_np(pred_rgb8)[..., 1:]
    true_ab = color.rgb_to_lab_np(true_rgb8)[..., 1:]
    values = {
        "psnr": metrics.psnr(pred, true), "ssim": metrics.ssim(pred, true),
        "ab_mae": metrics.ab_mae(pred_ab, true_ab), "ab_auc": metrics.ab_auc(pred_ab, true_ab),
        "cf_pred": metrics.colorfulness(pred_rgb8), "cf_true": metrics.colorfulness(true_rgb8),
    }
    return {k: float(v) for k, v in values.items()}


@dataclasses.dataclass
class Report:
    per_image: list[dict] = dataclasses.field(default_factory=list)
    sheet_rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, dict]] = dataclasses.field(
        default_factory=list)

    def summary(self, which: str) -> dict[str, float]:
        return metrics.summarize({k: [r[which][k] for r in self.per_image] for k in METRICS})


def evaluate(colorizer: Colorizer, samples: Iterable[Sample], *, sheet: int,
             progress=None) -> Report:
    """Colourise every sample in batches; per-image metrics for the model and the baseline."""
    report = Report()
    batch: list[Sample] = []

    def flush():
        for sample, pred in zip(batch, colorizer.colorize_photos([s.photo for s in batch])):
            gray = gray_rgb(sample.lightness)
            model, base = image_metrics(pred, sample.true_rgb), image_metrics(gray, sample.true_rgb)
            report.per_image.append({"name": sample.name, "height": int(pred.shape[0]),
                                     "width": int(pred.shape[1]), "model": model,
                                     "baseline": base})
            if len(report.sheet_rows) < sheet:
                report.sheet_rows.append((gray, pred, sample.true_rgb, model))
            if progress is not None:
                progress(len(report.per_image))
        batch.clear()

    for sample in samples:
        batch.append(sample)
        if len(batch) == colorizer.batch_size:
            flush()
    if batch:
        flush()
    return report


# --------------------------------------------------------------------------------------
# Outputs.
# --------------------------------------------------------------------------------------


def contact_sheet(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, dict]]) -> Image.Image:
    """gray | predicted | true per row, each tile fitted in TILE x TILE and captioned with
    its colourfulness (the gray tile's is 0 by construction)."""
    sheet = Image.new("RGB", (3 * TILE, len(rows) * (TILE + CAPTION)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for r, (gray, pred, true, m) in enumerate(rows):
        captions = ("gray  CF 0.0", f"predicted  CF {m['cf_pred']:.1f}",
                    f"true  CF {m['cf_true']:.1f}")
        for c, (tile, caption) in enumerate(zip((gray, pred, true), captions)):
            h, w = tile.shape[:2]
            scale = TILE / max(h, w)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            thumb = Image.fromarray(tile).resize(size, Image.Resampling.LANCZOS)
            top = r * (TILE + CAPTION)
            sheet.paste(thumb, (c * TILE + (TILE - size[0]) // 2, top + (TILE - size[1]) // 2))
            draw.text((c * TILE + 4, top + TILE + 2), caption, fill=(0, 0, 0), font=font)
    return sheet


def write_report(out: Path, colorizer: Colorizer, report: Report,
                 data: dict) -> tuple[dict, dict]:
    """metrics.json (+ contact_sheet.png when it has rows); returns (summary, baseline)."""
    out.mkdir(parents=True, exist_ok=True)
    summary, baseline = report.summary("model"), report.summary("baseline")
    result = {
        "checkpoint": {"directory": str(colorizer.directory), "step": colorizer.step},
        "render_size": colorizer.render_size, "upsample": colorizer.upsample, "data": data,
        "summary": summary, "baseline": baseline, "per_image": report.per_image,
        "config": colorizer.config.to_dict(),
    }
    (out / "metrics.json").write_text(json.dumps(_finite(result), indent=1, allow_nan=False))
    if report.sheet_rows:
        contact_sheet(report.sheet_rows).save(out / "contact_sheet.png")
    return summary, baseline


def _finite(x):
    """JSON has no infinity: an exact match's PSNR (+inf) is written as null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


_ROWS = (("PSNR (dB)", "psnr", "{:8.2f}"), ("SSIM", "ssim", "{:8.4f}"),
         ("|ab| error", "ab_mae", "{:8.2f}"), ("AuC", "ab_auc", "{:8.4f}"),
         ("CF", "cf_pred", "{:8.1f}"), ("delta-CF", "delta_cf", "{:8.1f}"))


def format_table(summary: dict, baseline: dict) -> str:
    lines = [f"{'':12s}{'model':>8s}{'gray':>8s}"]
    for title, key, fmt in _ROWS:
        lines.append(f"{title:12s}{fmt.format(summary[key])}{fmt.format(baseline[key])}")
    lines.append(f"{'CF (true)':12s}{summary['cf_true']:8.1f}")
    return "\n".join(lines)
