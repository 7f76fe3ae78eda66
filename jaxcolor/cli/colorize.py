"""`jaxcolor colorize`: colourise photos, folders, globs, records or .npy arrays.

Outputs mirror the inputs' paths under --output at the input's exact size, with the input's
own lightness (`jaxcolor.inference.files` says what is read and how it is written); one
photo may also go to an image file of its own name (`--output=photo-colour.png`). The same
command resumes an interrupted run: existing outputs are skipped unless --overwrite.
Exit status: 0 all done (or skipped), 1 some inputs failed, 2 nothing ran (bad flags,
checkpoint or input), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jaxcolor import errors
from jaxcolor.cli import common

HELP = "colourise photos (files, folders, globs, records, .npy) with a trained checkpoint"
EXAMPLES = common.examples(
    "jaxcolor colorize --checkpoint=/runs/gan101 --input=/scans --output=/scans-colour",
    "jaxcolor colorize --checkpoint=/runs/gan101/checkpoints --best \\\n"
    "      --input='/scans/**/*.tif' --output=out --format=same",
    "jaxcolor colorize --checkpoint=/runs/gan101 --backend=jax --input=photo.jpg --output=.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from jaxcolor.inference.files import DEFAULT_MAX_PIXELS

    common.add_checkpoint_flags(parser)
    common.add_colorizer_flags(parser)
    parser.add_argument("--input", required=True, help="file, directory (recursive) or glob")
    parser.add_argument("--output", required=True,
                        help="directory for the coloured images; for one input photo also an "
                             "image file name (.png, .jpg, ...), whose suffix sets the format")
    parser.add_argument("--format", choices=("png", "jpg", "same"), default="png",
                        help="output format (same: the input's; png for arrays and records)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--max_pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="refuse larger images (decompression-bomb guard)")
    common.add_shard_flag(parser)
    parser.add_argument("--hints", metavar="FILE.json",
                        help="colour hints: {photo (path relative to --input, or its name): "
                             "[{\"x\", \"y\", \"color\": \"#rrggbb\", \"radius\"}, ...]} in "
                             "the photo's pixels; photos without an entry are automatic")


def run(args: argparse.Namespace) -> int:
    from PIL import Image

    from jaxcolor.inference import files
    from jaxcolor.inference.shards import Shard

    common.check_positive(batch_size=args.batch_size, render_size=args.render_size,
                          workers=args.workers, max_pixels=args.max_pixels)
    output = Path(args.output).expanduser()
    summary = files.Summary()
    Image.MAX_IMAGE_PIXELS = args.max_pixels  # Pillow's own bomb guard, per process
    shard = Shard.parse(args.shard)
    items, summary.failures, inputs = files.discover(args.input, output, args.max_pixels, shard)
    if args.hints:
        from jaxcolor.inference import hints

        items = files.with_hints(items, hints.load_file(args.hints), args.hints, shard)
    planned = files.plan(items, inputs, output, args.format,
                         to_file=files.names_one_image(args.input, output))
    colorizer = common.load_colorizer(args)
    print(f"checkpoint step {colorizer.step}, render size {colorizer.render_size}, "
          f"backend {colorizer.backend}, {len(planned)} images", file=sys.stderr, flush=True)
    bar = common.ProgressBar("colorize", unit=" images/s")
    try:
        files.colorize_files(colorizer, planned, overwrite=args.overwrite,
                             workers=args.workers, progress=bar, summary=summary)
    except KeyboardInterrupt:
        bar.close()
        print(f"interrupted\n{summary.format(output)}", file=sys.stderr)
        return errors.EXIT_INTERRUPTED
    bar.close()
    print(summary.format(output))
    return errors.EXIT_FAILED if summary.failures else errors.EXIT_OK
