"""Measure a checkpoint on photos: the evaluator's numbers, and a contact sheet to look at.

The command line is `jaxcolor evaluate` (`jaxcolor.cli.evaluate`). Each image goes through
exactly what `jaxcolor colorize` does (the same pipeline, render size, edge-aware upsampling,
the image's own L), so the numbers describe what users get. What is measured, and how a set
is summarised, is the one evaluator's (`jaxcolor.evaluator`: PSNR, SSIM, |ab| error, AuC and
colourfulness of the delivered 8-bit image and of the gray image, each against the truth),
computed in numpy in the pipeline's worker threads: the numbers training's validation
scores checkpoints by.

Data: a records directory (its validation split when the manifest has one, else every
record; without the records the training config's filter drops, as in training's
validation, unless --no_filter), or photos (file, directory or glob; unreadable ones are
listed and skipped). The protocol (`Protocol`): `paper`, the published tables' (short side to
256, centre crop 256 x 256, before colourising), or `full` (the whole photo, downscaled to
--max_side first). Grayscale references have no colour to measure against and would make
the gray baseline's PSNR infinite: they are skipped and counted unless --keep_gray.

Writes REPORT_DIR/metrics.json (per-image values, the summary, checkpoint step, the
protocol, the training config; infinite PSNRs of exact matches are written as null) and
REPORT_DIR/contact_sheet.png (gray | predicted | true for the first --sheet images, each
captioned with its CF).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from jaxcolor import color, evaluator, metrics
from jaxcolor.data import images
from jaxcolor.data import records as records_lib
from jaxcolor.data import stats as stats_lib
from jaxcolor.errors import RunError, UsageError
from jaxcolor.inference import photo as photo_lib
from jaxcolor.inference import pipeline
from jaxcolor.inference.colorizer import Colorizer
from jaxcolor.inference.shards import Shard

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


Listing = list[tuple[int, pipeline.Job]]
"""Jobs with their place in the whole (unsharded) listing, which orders every report."""


def record_jobs(recs: records_lib.Records, thresholds: stats_lib.FilterThresholds | None,
                protocol: Protocol, shard: Shard = Shard()) -> tuple[Listing, dict]:
    """Jobs of a records set's validation split (every record if it has none), filtered by
    the training config's rules (`thresholds`; None keeps all) as training validation is;
    `shard`'s share (by record index), each placed by its record index."""
    split = "val" if recs.manifest.val_every else "all"
    candidates = recs.split(split)
    if thresholds is None:
        indices, removed = candidates, {}
    else:
        indices, removed = stats_lib.select(recs.stats, thresholds, candidates)

    def read(index: int) -> np.ndarray:
        L8, ab8 = recs[int(index)]
        return color.rgb01_to_uint8(color.lab_to_rgb_np(color.decode_lab8(L8, ab8)))

    jobs = [(int(i), _job(f"{recs.directory.name}[{i}]", functools.partial(read, i), protocol))
            for i in indices if shard.owns(str(i))]
    return jobs, {"kind": "records", "split": split, "filter_removed": removed}


def photo_jobs(paths: list[Path], protocol: Protocol, *, root: Path | None = None,
               shard: Shard = Shard()) -> Listing:
    """Jobs of photo files (decoded in the workers; unreadable ones fail alone): `shard`'s
    share, by path relative to `root` (default: their common folder), each placed by its
    position in `paths`."""
    min_size = PAPER_SIZE if protocol.name == "paper" else protocol.max_side
    root = Path(os.path.commonpath([str(p.parent) for p in paths])) if root is None else root
    return [(i, _job(str(path), functools.partial(images.load_image_rgb, path,
                                                  min_size=min_size), protocol))
            for i, path in enumerate(paths) if shard.owns(path.relative_to(root).as_posix())]


# --------------------------------------------------------------------------------------
# Measuring (numpy, in the pipeline's workers: any image size, nothing to compile).
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Measured:
    metrics: dict[str, float]  # `evaluator.image_metrics` of the photo
    pred: np.ndarray  # uint8 RGB, for the contact sheet
    true: np.ndarray


def measure(pred: np.ndarray, true: np.ndarray) -> Measured:
    """The evaluator's numbers of the model's colour photo (and of the gray image)."""
    pred = pred[..., :3]
    values = evaluator.image_metrics(pred, true, xp=np)
    return Measured({k: float(v) for k, v in values.items()}, pred, true)


@dataclasses.dataclass
class Report:
    per_image: list[dict] = dataclasses.field(default_factory=list)
    sheet_rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, dict]] = dataclasses.field(
        default_factory=list)
    unreadable: list[dict] = dataclasses.field(default_factory=list)
    skipped_gray: int = 0

    def summary(self) -> dict[str, float]:
        """The evaluator's summary of every measured photo."""
        names = [k for k in self.per_image[0] if k not in _DESCRIPTION]
        return evaluator.summarize({k: [r[k] for r in self.per_image] for k in names})


_DESCRIPTION = ("index", "name", "height", "width")  # per-image fields that are not metrics


def evaluate(colorizer: Colorizer, jobs: Listing, *, max_images: int | None,
             sheet: int, workers: int | None = None, progress=None) -> Report:
    """Colourise and measure jobs until `max_images` are measured (all by default); per-image
    metrics for the model and the gray baseline, unreadable and grayscale references counted."""
    report = Report()
    wanted = len(jobs) if max_images is None else min(max_images, len(jobs))
    outcomes = pipeline.process(colorizer, [job for _, job in jobs], workers=workers,
                                read_errors=(images.ImageDecodeError, photo_lib.InputImageError,
                                             GrayTruth, records_lib.RecordsError))
    place = {id(job): index for index, job in jobs}
    for outcome in outcomes:
        index = place[id(outcome.job)]
        if isinstance(outcome.exception, GrayTruth):
            report.skipped_gray += 1
        elif not outcome.ok:
            report.unreadable.append({"index": index, "path": outcome.job.label,
                                      "reason": outcome.error})
        else:
            m = outcome.value
            report.per_image.append({"index": index, "name": outcome.job.label,
                                     "height": int(m.pred.shape[0]),
                                     "width": int(m.pred.shape[1]), **m.metrics})
            if len(report.sheet_rows) < sheet:
                report.sheet_rows.append((evaluator.gray_image(m.true, xp=np).astype(np.uint8),
                                          m.pred, m.true, m.metrics))
        if progress is not None:
            progress(len(report.per_image), wanted)
        if len(report.per_image) >= wanted:
            outcomes.close()  # stops decoding what is no longer needed
            break
    report.per_image.sort(key=lambda r: r["index"])  # failures may come out first
    report.unreadable.sort(key=lambda r: r["index"])
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
        captions = ("gray  CF 0.0", f"predicted  CF {m['cf']:.1f}",
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


def write_report(out: Path, colorizer: Colorizer, report: Report, data: dict,
                 shard: Shard = Shard()) -> dict:
    """metrics.json (+ contact_sheet.png when it has rows); returns the summary. A shard's
    report says which shard it is (`merge_reports` combines them)."""
    result = {
        "checkpoint": {"directory": str(colorizer.directory), "step": colorizer.step},
        "render_size": colorizer.render_size, "upsample": colorizer.upsample,
        "data": data, "config": colorizer.config.to_dict(),
    }
    if not shard.whole:
        result["shard"] = {"index": shard.index, "count": shard.count}
    summary = _write_metrics(out, result, report)
    if report.sheet_rows:
        contact_sheet(report.sheet_rows).save(out / "contact_sheet.png")
    return summary


def _write_metrics(out: Path, result: dict, report: Report) -> dict:
    """metrics.json of `result` (what was evaluated) with `report`'s numbers and summary."""
    out.mkdir(parents=True, exist_ok=True)
    summary = report.summary()
    result = {**result, "data": {**result["data"], "images": len(report.per_image),
                                 "unreadable": report.unreadable,
                                 "skipped_gray": report.skipped_gray},
              "summary": summary, "per_image": report.per_image}
    (out / "metrics.json").write_text(json.dumps(_finite(result), indent=1, allow_nan=False))
    return summary


class MergeError(UsageError):
    """Partial reports that do not make one evaluation (names the report and the problem)."""


def merge_reports(directories: list[Path], out: Path) -> dict:
    """The metrics.json of `--shard` runs' report directories -> one metrics.json in `out`,
    equal to an unsharded run's (images in listing order; the summary recomputed from every
    photo). Every shard 0..N-1 must be there once, of the same evaluation. Returns the
    summary. Contact sheets stay with their shards."""
    parts = []
    for directory in directories:
        path = Path(directory) / "metrics.json"
        try:
            parts.append((path, json.loads(path.read_text())))
        except (OSError, ValueError) as e:
            raise MergeError(f"{path}: not a readable evaluate report ({e})") from None
    first_path, first = parts[0]
    count = first.get("shard", {}).get("count")
    indices = sorted(part.get("shard", {}).get("index", -1) for _, part in parts)
    if count is None or indices != list(range(count)):
        raise MergeError(f"{', '.join(str(p) for p, _ in parts)}: need the reports of shards "
                         f"0..N-1 of one run, each once (got shards {indices} of {count})")
    same = ("checkpoint", "render_size", "upsample", "config")
    for path, part in parts:
        data = {k: v for k, v in part["data"].items() if k not in _COUNTED}
        if any(part[k] != first[k] for k in same) or data != _without_counts(first["data"]):
            raise MergeError(f"{path}: not the same evaluation as {first_path} (checkpoint, "
                             "data or settings differ)")
    report = Report(
        per_image=sorted((_infinite(r) for _, part in parts for r in part["per_image"]),
                         key=lambda r: r["index"]),
        unreadable=sorted((r for _, part in parts for r in part["data"]["unreadable"]),
                          key=lambda r: r["index"]),
        skipped_gray=sum(part["data"]["skipped_gray"] for _, part in parts))
    if not report.per_image:
        raise MergeError("the shards' reports hold no evaluated image")
    result = {k: v for k, v in first.items() if k in (*same, "data")}
    result["data"] = _without_counts(first["data"])
    return _write_metrics(Path(out), result, report)


_COUNTED = ("images", "unreadable", "skipped_gray")  # data fields each shard counts alone


def _without_counts(data: dict) -> dict:
    return {k: v for k, v in data.items() if k not in _COUNTED}


def _infinite(row: dict) -> dict:
    """A per-image row read back from JSON: null (an exact match's PSNR) is +inf again."""
    return {k: float("inf") if v is None else v for k, v in row.items()}


def _finite(x):
    """JSON has no infinity: an exact match's PSNR (+inf) is written as null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x
