r"""Probe: a model file's a/b averaged with its mirror image's, matched and paired.

    python -m benchmarks.mirror_probe --photos /data/noes/photos,/data/more,/data/imagen_src \
        --sources imagen --model M.npz --gammas 1.5 \
        --reference jaxcolor/inference/weights/starter.npz --workdir /tmp/mirror \
        --out benchmarks/results/mirror_probe.jsonl

`benchmarks.chroma_gain` with one change to the Colorizers it builds for `--model` (the JAX
backend, no hints): G runs on L and on its left-right mirror, the mirror's a/b are mirrored
back, the two averaged, and only then scaled by the model's chroma and exponent. The
reference is measured as it ships. Measured no different from the shipped file (BENCHMARKS.md,
"Averaging a photo with its mirror image"), so the product has no such mode; this probe is
kept so that figure can be measured again. `--workdir` must not be the quality workdir:
reports there are keyed by the model file, not by this change.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax.numpy as jnp

from benchmarks import chroma_gain
from jaxcolor import color
from jaxcolor.inference import colorizer as colorizer_lib


def mirror_averaged(colorizer: colorizer_lib.Colorizer) -> None:
    """Make `colorizer.predict_device` average G's a/b over L and its mirror before the
    chroma scale."""
    if colorizer._onnx is not None:
        raise SystemExit("mirror_probe: the JAX backend only (quality.measure's)")
    chroma, gamma, raw = colorizer.chroma, colorizer.chroma_gamma, colorizer.predict_device

    def averaged(L, hint=None):
        if hint is not None and bool(jnp.any(jnp.asarray(hint)[..., 2] > 0)):
            raise SystemExit("mirror_probe: photos without hints only")
        colorizer.chroma, colorizer.chroma_gamma = 1.0, 1.0  # the raw a/b, scaled below
        try:
            L = jnp.asarray(L, jnp.float32)
            ab = (raw(L, hint) + raw(L[:, :, ::-1], None if hint is None
                                     else jnp.asarray(hint)[:, :, ::-1])[:, :, ::-1]) / 2
        finally:
            colorizer.chroma, colorizer.chroma_gamma = chroma, gamma
        return color.scale_chroma(ab, chroma, gamma)

    colorizer.predict_device = averaged


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    model = Path(argv[argv.index("--model") + 1]).resolve()
    build = colorizer_lib.Colorizer.__init__

    def init(self, *args, **kwargs):
        build(self, *args, **kwargs)
        if self.directory is not None and Path(self.directory).resolve() == model:
            mirror_averaged(self)

    colorizer_lib.Colorizer.__init__ = init
    try:
        chroma_gain.main(argv)
    finally:
        colorizer_lib.Colorizer.__init__ = build


if __name__ == "__main__":
    main()
