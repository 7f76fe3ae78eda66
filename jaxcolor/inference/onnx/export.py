"""Export a trained generator to ONNX, for fast CPU colourisation with ONNX Runtime.

The command line is `jaxcolor export` (`jaxcolor.cli.export`). Only G is restored
(`jaxcolor.inference.restore`), BatchNorm is folded into the convolutions with its running
statistics, and the graph is built by `jaxcolor.inference.onnx.graph`. The
model takes l_norm = L / 50 - 1 as float32 NHWC [B, R, R, 1] and returns ab / 110 as
[B, R, R, 2]; R is the render size (default: the training crop, rounded up to a multiple of
32) and B is 1, or symbolic with --dynamic_batch. The file's metadata_props carry the
checkpoint step, the render size and the run config (`jaxcolor.step`, `jaxcolor.render_size`,
`jaxcolor.config`). With hint inputs it also takes the hint map [B, R, R, 3]
(`models.hint_branch`). The file is G alone: the Colorizer's steps after G, the model's
chroma scale (`model.chroma` and `model.chroma_gamma` of `jaxcolor.config`:
`color.scale_chroma`) and spreading the hints (`jaxcolor.inference.spread`, a few array
operations), are left to its caller.

`jaxcolor.inference.onnx.runtime.OnnxGenerator("gan101.onnx")` runs the file;
`jaxcolor colorize --backend=onnx` builds the same graph in memory from the checkpoint, so it
needs no exported file. Needs `pip install 'jaxcolor[onnx]'`.
"""

from __future__ import annotations

import os
from pathlib import Path

from jaxcolor import errors
from jaxcolor.errors import UsageError
from jaxcolor.inference import starter
from jaxcolor.inference.photo import render_size as resolve_render_size


def export(checkpoint: str | os.PathLike | None, out: str | os.PathLike, *,
           step: int | None = None, best: bool = False, render_size: int | None = None,
           dynamic_batch: bool = False) -> tuple[Path, int, int]:
    """Write the ONNX model of a checkpoint's generator to `out` (atomically: a temporary
    file in the same directory, then a rename). Returns (path, step, render size)."""
    onnx = errors.require("onnx", "onnx")
    from jaxcolor.inference.onnx import graph

    out = Path(out).expanduser()
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; name the .onnx file")
    restored = starter.restore_model(checkpoint, step=step, best=best)  # None: the starter
    size = resolve_render_size(restored.config, render_size)
    model = graph.generator_to_onnx(
        restored.generator(), height=size, width=size, batch=None if dynamic_batch else 1,
        metadata={"jaxcolor.step": str(restored.step), "jaxcolor.render_size": str(size),
                  "jaxcolor.config": restored.config.to_json()})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        onnx.save_model(model, os.fspath(tmp))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out, restored.step, size
