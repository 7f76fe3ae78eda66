"""`jaxcolor evaluate`: a checkpoint's metrics beside the gray baseline, and a contact sheet.

The library side is `jaxcolor.inference.evaluation`. Exit status: 0 all evaluated, 1 some
(or all) photos were unreadable, 2 nothing could run (bad flags, checkpoint or data).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jaxcolor import errors
from jaxcolor.cli import common

HELP = "measure a checkpoint (PSNR, SSIM, ab error, AuC, colourfulness) against the gray image"
EXAMPLES = common.examples(
    "jaxcolor evaluate --checkpoint=/runs/gan101 --data=/data/val_records --out=/runs/eval",
    "jaxcolor evaluate --checkpoint=/runs/gan101/checkpoints --best \\\n"
    "      --data='/photos/test/*.jpg' --out=report --max_images=500 --sheet=16")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_checkpoint_flags(parser)
    common.add_colorizer_flags(parser)
    parser.add_argument("--data", required=True, help="records directory, or photos "
                        "(file, directory or glob)")
    parser.add_argument("--out", required=True, help="report directory")
    parser.add_argument("--max_images", type=int, default=None, help="evaluate at most this many")
    parser.add_argument("--sheet", type=int, default=8,
                        help="images on the contact sheet (0: none)")
    parser.add_argument("--no_filter", action="store_true",
                        help="records: keep the records the training filter drops (gray, flat)")
    parser.add_argument("--max_side", type=int, default=512,
                        help="photos are downscaled to this long side first (not records)")


def run(args: argparse.Namespace) -> int:
    from jaxcolor.data import images, records as records_lib, stats as stats_lib
    from jaxcolor.inference import evaluation

    common.check_positive(max_images=args.max_images, max_side=args.max_side,
                          batch_size=args.batch_size, render_size=args.render_size)
    data = Path(args.data).expanduser()
    recs = records_lib.Records(data) if (data / records_lib.MANIFEST).is_file() else None
    paths = images.find_images(args.data) if recs is None else []
    colorizer = common.load_colorizer(args)
    failures: list[dict] = []
    if recs is not None:
        thresholds = (None if args.no_filter
                      else stats_lib.FilterThresholds.from_config(colorizer.config.data.filter))
        samples, info = evaluation.record_samples(recs, args.max_images, thresholds)
        total = info["count"]
    else:
        samples = evaluation.image_samples(paths, args.max_images, args.max_side, failures)
        info, total = {"kind": "images"}, min(len(paths), args.max_images or len(paths))
    bar = common.ProgressBar("evaluate", unit=" images/s")
    report = evaluation.evaluate(colorizer, samples, sheet=max(args.sheet, 0),
                                 progress=lambda n: bar(n, total or n))
    bar.close()
    for f in failures:
        print(f"unreadable: {f['path']}: {f['reason']}")
    if not report.per_image:
        raise errors.RunError(f"--data {args.data}: no image could be evaluated "
                              f"({len(failures)} unreadable)")
    out = Path(args.out).expanduser()
    summary, baseline = evaluation.write_report(out, colorizer, report, {
        "path": str(args.data), **info, "images": len(report.per_image), "unreadable": failures})
    print(evaluation.format_table(summary, baseline))
    print(f"{len(report.per_image)} images, checkpoint step {colorizer.step}, render size "
          f"{colorizer.render_size}, backend {colorizer.backend}; report in {out}")
    return errors.EXIT_FAILED if failures else errors.EXIT_OK
