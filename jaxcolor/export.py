"""Export a trained generator to ONNX, for fast CPU colourisation with ONNX Runtime.

    python -m jaxcolor.export --checkpoint /runs/gan101 --out gan101.onnx
        [--step N | --best] [--render_size 224] [--dynamic_batch]

Only G is restored (as `Colorizer` restores it), BatchNorm is folded into the convolutions
with its running statistics, and the graph is written by `jaxcolor.models.onnx_graph`. The
model takes l_norm = L / 50 - 1 as float32 NHWC [B, R, R, 1] and returns ab / 110 as
[B, R, R, 2]; R is the render size (default: the training crop, rounded up to a multiple of
32) and B is 1, or symbolic with --dynamic_batch. The file's metadata_props carry the
checkpoint step, the render size and the run config (`jaxcolor.step`, `jaxcolor.render_size`,
`jaxcolor.config`).

`jaxcolor.onnx_backend.OnnxGenerator("gan101.onnx")` runs the file; `colorize --backend=onnx`
builds the same graph in memory from the checkpoint, so it needs no exported file.
Needs `pip install 'jaxcolor[onnx]'`. User errors print one line and exit with status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Iterable

from jaxcolor import infer, onnx_backend


class ExportUsageError(ValueError):
    """A command-line value is unusable (names the flag)."""


def export(checkpoint: str | os.PathLike, out: str | os.PathLike, *, step: int | None = None,
           best: bool = False, render_size: int | None = None,
           dynamic_batch: bool = False) -> tuple[Path, int, int]:
    """Write the ONNX model of a checkpoint's generator to `out` (atomically: a temporary
    file in the same directory, then a rename). Returns (path, step, render size)."""
    onnx = onnx_backend.require("onnx")
    from jaxcolor.models import onnx_graph

    colorizer = infer.Colorizer.from_checkpoint(checkpoint, step=step, best=best,
                                                render_size=render_size)
    size = colorizer.render_size
    model = onnx_graph.generator_to_onnx(
        colorizer.generator(), height=size, width=size, batch=None if dynamic_batch else 1,
        metadata={"jaxcolor.step": str(colorizer.step), "jaxcolor.render_size": str(size),
                  "jaxcolor.config": colorizer.config.to_json()})
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        onnx.save_model(model, os.fspath(tmp))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out, colorizer.step, size


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jaxcolor.export",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True,
                        help="a training run directory (holding checkpoints/) or a checkpoints "
                             "directory")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--step", type=int, help="checkpoint step (default: the latest)")
    which.add_argument("--best", action="store_true", help="the best step by validation L1")
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.add_argument("--render_size", type=int, default=None,
                        help="input height and width (rounded up to a multiple of 32; "
                             "default: the training crop size)")
    parser.add_argument("--dynamic_batch", action="store_true",
                        help="symbolic batch dimension (default: batch 1)")
    return parser


def main(argv: Iterable[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from absl import logging  # Orbax logs every read-only manager at WARNING

    from jaxcolor.train.checkpoint import CheckpointError

    logging.set_verbosity(logging.ERROR)
    try:
        onnx_backend.require("onnx")
    except onnx_backend.OnnxUnavailableError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    from jaxcolor.models.onnx_graph import OnnxExportError

    try:
        if args.render_size is not None and args.render_size < 1:
            raise ExportUsageError(f"--render_size must be positive, got {args.render_size}")
        if Path(args.out).expanduser().is_dir():
            raise ExportUsageError(f"--out {args.out} is a directory; name the .onnx file")
        path, step, size = export(args.checkpoint, args.out, step=args.step, best=args.best,
                                  render_size=args.render_size, dynamic_batch=args.dynamic_batch)
    except (ExportUsageError, CheckpointError, OnnxExportError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    batch = "B" if args.dynamic_batch else "1"
    print(f"wrote {path} (checkpoint step {step}; input l_norm [{batch}, {size}, {size}, 1] -> "
          f"ab_norm [{batch}, {size}, {size}, 2])")
    return 0


if __name__ == "__main__":
    sys.exit(main())
