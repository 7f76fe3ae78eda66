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
    "jaxcolor evaluate --checkpoint=/runs/gan101 --data=/photos --out=eval/3 --shard=3/10\n"
    "  jaxcolor evaluate --merge eval/0 eval/1 ... eval/9 --out=eval/all",
    "jaxcolor evaluate --checkpoint=/runs/gan101 --data=/data/val_records --out=/runs/eval",
    "jaxcolor evaluate --checkpoint=/runs/gan101/checkpoints --best \\\n"
    "      --data='/photos/test/*.jpg' --out=report --max_images=500 --sheet=16",
    "jaxcolor evaluate --checkpoint=/runs/gan101 --data=/imagenet/val --protocol=paper "
    "--out=imagenet_report")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from jaxcolor.inference.evaluation import PROTOCOLS

    common.add_checkpoint_flags(parser)
    common.add_colorizer_flags(parser)
    parser.add_argument("--data", help="records directory, or photos (file, directory or glob)")
    parser.add_argument("--out", required=True, help="report directory")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="full",
                        help="paper: short side to 256 and the centre 256x256, as the "
                             "published tables; full: the whole photo (see --max_side)")
    parser.add_argument("--max_images", type=int, default=None, help="evaluate at most this many")
    parser.add_argument("--sheet", type=int, default=8,
                        help="images on the contact sheet (0: none)")
    parser.add_argument("--no_filter", action="store_true",
                        help="records: keep the records the training filter drops (gray, flat)")
    parser.add_argument("--keep_gray", action="store_true",
                        help="also measure grayscale references (skipped and counted by default)")
    parser.add_argument("--max_side", type=int, default=512,
                        help="full protocol: photos are downscaled to this long side first")
    common.add_shard_flag(parser)
    parser.add_argument("--merge", nargs="+", metavar="REPORT_DIR",
                        help="combine the reports of --shard runs (shards 0..N-1) into one "
                             "metrics.json in --out, equal to an unsharded run's")


def run(args: argparse.Namespace) -> int:
    from jaxcolor import evaluator
    from jaxcolor.data import images, records as records_lib, stats as stats_lib
    from jaxcolor.inference import evaluation
    from jaxcolor.inference.shards import Shard

    if args.merge:
        summary = evaluation.merge_reports([Path(d).expanduser() for d in args.merge],
                                           Path(args.out).expanduser())
        print(evaluator.format_table(summary))
        print(f"{int(summary['images'])} images from {len(args.merge)} shards; report in "
              f"{args.out}")
        return errors.EXIT_OK
    if args.data is None:
        raise errors.UsageError("--data is required (or --merge REPORT_DIR...)")
    shard = Shard.parse(args.shard)
    if not shard.whole and args.max_images is not None:
        raise errors.UsageError("--max_images with --shard: the first N photos of a listing "
                                "are not any shard's; evaluate a folder of those photos")
    common.check_positive(max_images=args.max_images, max_side=args.max_side,
                          batch_size=args.batch_size, render_size=args.render_size,
                          workers=args.workers)
    data = Path(args.data).expanduser()
    recs = records_lib.Records(data) if (data / records_lib.MANIFEST).is_file() else None
    paths = images.find_images(args.data) if recs is None else []
    colorizer = common.load_colorizer(args)
    protocol = evaluation.Protocol(args.protocol, args.max_side, args.keep_gray)
    if recs is not None:
        thresholds = (None if args.no_filter
                      else stats_lib.FilterThresholds.from_config(colorizer.config.data.filter))
        jobs, info = evaluation.record_jobs(recs, thresholds, protocol, shard)
    else:
        root = data if data.is_dir() else None
        jobs, info = evaluation.photo_jobs(paths, protocol, root=root, shard=shard), {
            "kind": "images"}
    bar = common.ProgressBar("evaluate", unit=" images/s")
    report = evaluation.evaluate(colorizer, jobs, max_images=args.max_images,
                                 sheet=max(args.sheet, 0), workers=args.workers, progress=bar)
    bar.close()
    for f in report.unreadable:
        print(f"unreadable: {f['path']}: {f['reason']}")
    if not report.per_image:
        raise errors.RunError(f"--data {args.data}: no image could be evaluated "
                              f"({len(report.unreadable)} unreadable, {report.skipped_gray} "
                              "grayscale references skipped)")
    out = Path(args.out).expanduser()
    summary = evaluation.write_report(out, colorizer, report, {
        "path": str(args.data), **info, "protocol": args.protocol,
        "max_side": args.max_side if args.protocol == "full" else None}, shard)
    print(evaluator.format_table(summary))
    gray = f", {report.skipped_gray} grayscale references skipped" if report.skipped_gray else ""
    print(f"{len(report.per_image)} images ({args.protocol} protocol{gray}), checkpoint step "
          f"{colorizer.step}, render size {colorizer.render_size}, backend "
          f"{colorizer.backend}; report in {out}")
    return errors.EXIT_FAILED if report.unreadable else errors.EXIT_OK
