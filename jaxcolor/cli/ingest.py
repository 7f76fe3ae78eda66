"""`jaxcolor ingest kaggle|images`: make a records directory for training and evaluation.

`kaggle` reads the "Image Colorization" .npy files as published; `images` any directory
(recursive), glob or file of photos, resized (short side) and centre-cropped to --size.
Unreadable photos are skipped and listed. Library side: `jaxcolor.data.ingest`.
Exit status: 0 written, 1 the inputs could not be ingested, 2 bad flags.
"""

from __future__ import annotations

import argparse
import os
import sys

from jaxcolor import errors
from jaxcolor.cli import common

HELP = "make a records directory from the Kaggle .npy files or a folder of photos"
EXAMPLES = common.examples(
    "jaxcolor ingest images --src=photos/ --out=data/photos --size=256",
    "jaxcolor ingest images --src='/archive/**/*.jpg' --out=data/archive --val_every=50",
    "jaxcolor ingest kaggle --gray=gray_scale.npy --ab=ab1.npy,ab2.npy,ab3.npy \\\n"
    "      --out=data/kaggle")


def _csv(text: str) -> list[str]:
    return [part for part in text.split(",") if part]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")
    kaggle = sub.add_parser("kaggle", help="the Kaggle 'Image Colorization' .npy files",
                            epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    kaggle.add_argument("--gray", required=True, help="uint8 [N, H, W] L file (gray_scale.npy)")
    kaggle.add_argument("--ab", required=True, type=_csv,
                        help="comma-separated uint8 [n, H, W, 2] files, in order")
    kaggle.add_argument("--chunk", type=int, default=256, help="records read at a time")
    photos = sub.add_parser("images", help="a directory or glob of photos (any format)",
                            epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    photos.add_argument("--src", required=True, help="directory (recursive), glob or file")
    photos.add_argument("--size", type=int, default=256, help="output side length in pixels")
    photos.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="decoding processes (1: decode in this process)")
    photos.add_argument("--max_pixels", type=int, default=None,
                        help="skip larger images (default: Pillow's decompression-bomb limit)")
    for p in (kaggle, photos):
        p.add_argument("--out", required=True, help="records directory to create")
        p.add_argument("--val_every", type=int, default=20,
                       help="every k-th record is held out for validation (0: none)")
        p.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def run(args: argparse.Namespace) -> int:
    from jaxcolor.data import ingest

    bar = common.ProgressBar(args.source, unit=" files/s")
    try:
        if args.source == "kaggle":
            summary = ingest.ingest_kaggle(args.gray, args.ab, args.out, chunk=args.chunk,
                                           val_every=args.val_every, overwrite=args.overwrite,
                                           progress=bar)
        else:
            summary = ingest.ingest_images(args.src, args.out, size=args.size,
                                           workers=args.workers, val_every=args.val_every,
                                           max_pixels=args.max_pixels,
                                           overwrite=args.overwrite, progress=bar)
    except KeyboardInterrupt:
        bar.close()
        print(f"interrupted: {args.out} was not written", file=sys.stderr)
        return errors.EXIT_INTERRUPTED
    finally:
        bar.close()
    print(summary.format())
    return errors.EXIT_OK
