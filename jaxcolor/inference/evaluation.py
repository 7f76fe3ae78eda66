"""Measure a checkpoint: metrics beside the gray baseline, and a contact sheet to look at.

The command line is `jaxcolor evaluate` (`jaxcolor.cli.evaluate`). Each image goes through
exactly what `jaxcolor colorize` does (the same pipeline, render size, edge-aware upsampling,
the image's own L), so the numbers describe what users get. Metrics, computed on the
delivered 8-bit sRGB images against the true ones (`jaxcolor.metrics`, in numpy, in the
pipeline's worker threads):
  psnr, ssim        on RGB in [0, 1]
  ab_mae            mean |a - a'|, |b - b'| in Lab units;  ab_auc  Zhang et al.'s AuC (0..150)
  cf_pred, cf_true  Hasler & Suesstrunk colourfulness;  delta_cf = |mean cf_pred - mean cf_true|
The same metrics for the gray image (zero ab: the floor every number should beat, and the
honest reference for "dull sepia" outputs) are reported beside them.

Data: a records directory (its validation split when the manifest has one, else every
record; without the records the training config's filter drops, as in training's
validation, unless --no_filter), or photos (file, directory or glob; unreadable ones are
listed and skipped). The protocol (`Protocol`): `paper`, the published tables' (short side to
256, centre crop 256 x 256, before colourising), or `full` (the whole photo, downscaled to
--max_side first). Grayscale references have no colour to measure against and would make
the gray baseline's PSNR infinite: they are skipped and counted unless --keep_gray.

Writes REPORT_DIR/metrics.json (per-image values, summary, baseline, checkpoint step, the
protocol, the training config; infinite PSNRs of exact matches are written as null) and
REPORT_DIR/contact_sheet.png (gray | predicted | true for the first --sheet images, each
captioned with its CF); `format_table` is the short table the command prints.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from jaxcolor import color, metrics
from jaxcolor.data import images
from jaxcolor.data import records as records_lib
from jaxcolor.data import stats as stats_lib
from jaxcolor.errors import RunError
from jaxcolor.inference import photo as photo_lib
from jaxcolor.inference import pipeline
from jaxcolor.inference.colorizer import Colorizer

METRICS = ("psnr", "ssim", "ab_mae", "ab_auc", "cf_pred", "cf_true")
PROTOCOLS = ("full", "paper")
PAPER_SIZE = 256  # DDColor, CT2, BigColor: short side to 256, then the centre 256 x 256
GRAY_TRUTH_CF = 2.0
"""A truth less colourful than this is a grayscale photo: no colour to measure against."""
TILE = 192  # contact-sheet tile box, pixels
CAPTION = 16  # caption strip under each tile


class GrayTruth(RunError):
    """The reference photo has no colour (colourfulness below `GRAY_TRUTH_CF`)."""


@dataclasses.dataclass(frozen=True)
class Protocol:
    """How a reference photo becomes the image measured: `paper` (short side to 256, centre
    crop 256 x 256, before colourising) or `full` (the whole photo, at most `max_side` on
    its long side); and whether grayscale references are kept."""

    name: str = "full"
    max_side: int = 512
    keep_gray: bool = False

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        if self.name == "paper":
            return images.resize_and_crop(rgb, PAPER_SIZE)
        h, w = rgb.shape[:2]
        if max(h, w) <= self.max_side:
            return rgb
        scale = self.max_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))

    def checked(self, rgb: np.ndarray) -> np.ndarray:
        """The reference after the protocol, refused when SSIM cannot measure it or (unless
        `keep_gray`) when it has no colour."""
        rgb = self.apply(rgb)
        if min(rgb.shape[:2]) < 11:
            raise photo_lib.InputImageError(f"{rgb.shape[1]}x{rgb.shape[0]} is below SSIM's "
                                            "11x11 window")
        if not self.keep_gray:
            cf = float(metrics.colorfulness(rgb, xp=np))
            if cf < GRAY_TRUTH_CF:
                raise GrayTruth(f"grayscale reference (colourfulness {cf:.2f} < "
                                f"{GRAY_TRUTH_CF})")
        return rgb


# --------------------------------------------------------------------------------------
# Data: jobs for `pipeline.process`, each loading (photo to colourise, reference) in a worker.
# --------------------------------------------------------------------------------------


def _job(name: str, read, protocol: Protocol) -> pipeline.Job:
    def load():
        true = protocol.checked(read())
        return photo_lib.Photo(true), true

    return pipeline.Job(name, load, measure)


def record_jobs(recs: records_lib.Records, thresholds: stats_lib.FilterThresholds | None,
                protocol: Protocol) -> tuple[list[pipeline.Job], dict]:
    """Jobs of a records set's validation split (every record if it has none), filtered by
    the training config's rules (`thresholds`; None keeps all) as training validation is."""
    split = "val" if recs.manifest.val_every else "all"
    candidates = recs.split(split)
    if thresholds is None:
        indices, removed = candidates, {}
    else:
        indices, removed = stats_lib.select(recs.stats, thresholds, candidates)

    def read(index: int) -> np.ndarray:
        L8, ab8 = recs[int(index)]
        return color.rgb01_to_uint8(color.lab_to_rgb_np(color.decode_lab8(L8, ab8)))

    jobs = [_job(f"{recs.directory.name}[{i}]", functools.partial(read, i), protocol)
            for i in indices]
    return jobs, {"kind": "records", "split": split, "filter_removed": removed}


def photo_jobs(paths: list[Path], protocol: Protocol) -> list[pipeline.Job]:
    """Jobs of photo files (decoded in the workers; unreadable ones fail alone)."""
    min_size = PAPER_SIZE if protocol.name == "paper" else protocol.max_side
    return [_job(str(path), functools.partial(images.load_image_rgb, path, min_size=min_size),
                 protocol) for path in paths]


def gray_rgb(L: np.ndarray) -> np.ndarray:
    """The zero-ab baseline: the gray sRGB image of lightness L (R = G = B exactly)."""
    gray = color.rgb01_to_uint8(color.gray_rgb_from_l(L, xp=np))
    return np.repeat(gray[..., None], 3, axis=-1)


# --------------------------------------------------------------------------------------
# Metrics (numpy, in the pipeline's workers: any image size, nothing to compile).
# --------------------------------------------------------------------------------------


def image_metrics(pred_rgb8: np.ndarray, true_rgb8: np.ndarray,
                  true_ab: np.ndarray | None = None) -> dict[str, float]:
    """Every metric of one uint8 [H, W, 3] prediction against its truth."""
    pred, true = pred_rgb8.astype(np.float32) / 255.0, true_rgb8.astype(np.float32) / 255.0
    pred_ab = color.rgb_to_lab_np(pred_rgb8)[..., 1:]
    true_ab = color.rgb_to_lab_np(true_rgb8)[..., 1:] if true_ab is None else true_ab
    values = {
        "psnr": metrics.psnr(pred, true, xp=np), "ssim": metrics.ssim(pred, true, xp=np),
        "ab_mae": metrics.ab_mae(pred_ab, true_ab, xp=np),
        "ab_auc": metrics.ab_auc(pred_ab, true_ab, xp=np),
        "cf_pred": metrics.colorfulness(pred_rgb8, xp=np),
        "cf_true": metrics.colorfulness(true_rgb8, xp=np),
    }
    return {k: float(v) for k, v in values.items()}


@dataclasses.dataclass(frozen=True)
class Measured:
    model: dict[str, float]
    baseline: dict[str, float]
    pred: np.ndarray  # uint8 RGB, for the contact sheet
    gray: np.ndarray
    true: np.ndarray


def measure(pred: np.ndarray, true: np.ndarray) -> Measured:
    """The model's colour photo and the gray image, each against the reference."""
    pred = pred[..., :3]
    gray = gray_rgb(photo_lib.lightness(true))
    true_ab = color.rgb_to_lab_np(true)[..., 1:]
    return Measured(image_metrics(pred, true, true_ab), image_metrics(gray, true, true_ab),
                    pred, gray, true)


@dataclasses.dataclass
class Report:
    per_image: list[dict] = dataclasses.field(default_factory=list)
    sheet_rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, dict]] = dataclasses.field(
        default_factory=list)
    unreadable: list[dict] = dataclasses.field(default_factory=list)
    skipped_gray: int = 0

    def summary(self, which: str) -> dict[str, float]:
        return metrics.summarize({k: [r[which][k] for r in self.per_image] for k in METRICS})


def evaluate(colorizer: Colorizer, jobs: list[pipeline.Job], *, max_images: int | None,
             sheet: int, workers: int | None = None, progress=None) -> Report:
    """Colourise and measure jobs until `max_images` are measured (all by default); per-image
    metrics for the model and the gray baseline, unreadable and grayscale references counted."""
    report = Report()
    wanted = len(jobs) if max_images is None else min(max_images, len(jobs))
    outcomes = pipeline.process(colorizer, jobs, workers=workers,
                                read_errors=(images.ImageDecodeError, photo_lib.InputImageError,
                                             GrayTruth, records_lib.RecordsError))
    for outcome in outcomes:
        if isinstance(outcome.exception, GrayTruth):
            report.skipped_gray += 1
        elif not outcome.ok:
            report.unreadable.append({"path": outcome.job.label, "reason": outcome.error})
        else:
            m = outcome.value
            report.per_image.append({"name": outcome.job.label, "height": int(m.pred.shape[0]),
                                     "width": int(m.pred.shape[1]), "model": m.model,
                                     "baseline": m.baseline})
            if len(report.sheet_rows) < sheet:
                report.sheet_rows.append((m.gray, m.pred, m.true, m.model))
        if progress is not None:
            progress(len(report.per_image), wanted)
        if len(report.per_image) >= wanted:
            outcomes.close()  # stops decoding what is no longer needed
            break
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
        "render_size": colorizer.render_size, "upsample": colorizer.upsample,
        "data": {**data, "images": len(report.per_image), "unreadable": report.unreadable,
                 "skipped_gray": report.skipped_gray},
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
