"""`jaxcolor export`: a checkpoint's generator as an ONNX file, for ONNX Runtime on CPUs.

The model takes l_norm = L / 50 - 1 as float32 NHWC [B, R, R, 1] and returns ab / 110 as
[B, R, R, 2]; R is the render size (default: the training crop, rounded up to a multiple of
32) and B is 1, or symbolic with --dynamic_batch. The file's metadata_props carry the
checkpoint step, the render size and the run config. Library side:
`jaxcolor.inference.onnx.export`.
"""

from __future__ import annotations

import argparse

from jaxcolor import errors
from jaxcolor.cli import common

HELP = "write a checkpoint's generator as an ONNX model (needs jaxcolor[onnx])"
EXAMPLES = common.examples(
    "jaxcolor export --checkpoint=/runs/gan101 --out=gan101.onnx",
    "jaxcolor export --checkpoint=/runs/gan101 --best --render_size=512 --dynamic_batch \\\n"
    "      --out=gan101_512.onnx")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_checkpoint_flags(parser)
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.add_argument("--render_size", type=int, default=None,
                        help="input height and width (rounded up to a multiple of 32; "
                             "default: the training crop size)")
    parser.add_argument("--dynamic_batch", action="store_true",
                        help="symbolic batch dimension (default: batch 1)")


def run(args: argparse.Namespace) -> int:
    from absl import logging  # Orbax logs every read-only manager at WARNING

    from jaxcolor.inference.onnx import export

    common.check_positive(render_size=args.render_size)
    logging.set_verbosity(logging.ERROR)
    if args.checkpoint is None:
        common.check_no_step(args)
    path, step, size = export.export(args.checkpoint, args.out, step=args.step, best=args.best,
                                     render_size=args.render_size,
                                     dynamic_batch=args.dynamic_batch)
    batch = "B" if args.dynamic_batch else "1"
    print(f"wrote {path} (checkpoint step {step}; input l_norm [{batch}, {size}, {size}, 1] -> "
          f"ab_norm [{batch}, {size}, {size}, 2])")
    return errors.EXIT_OK
