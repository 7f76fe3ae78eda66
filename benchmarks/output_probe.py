r"""Probe: a model file with a change to what G delivers, matched and paired.

    python -m benchmarks.output_probe --change mirror \
        --photos /data/noes/photos,/data/more,/data/imagen_src \
        --sources imagen --model M.npz --gammas 1.5 \
        --reference jaxcolor/inference/weights/starter.npz --workdir /tmp/probe
    python -m benchmarks.output_probe --change ceiling:50 ...      (the same flags)

`benchmarks.chroma_gain` with one change to the Colorizers it builds for `--model` (the JAX
backend, no hints); the reference is measured as it ships:

- `mirror`: G runs on L and on its left-right mirror, the mirror's a/b are mirrored back,
  the two averaged, and only then scaled by the model's chroma and exponent;
- `ceiling:C`: the delivered a/b (after the scale and exponent) scaled by min(1, C / |ab|),
  hue kept: no pixel more colourful than C.

Both measured no different from (or worse than) the shipped file (BENCHMARKS.md, "Averaging
a photo with its mirror image", "A ceiling on the delivered chroma"), so the product has
neither; this probe is kept so those figures can be measured again. Each line records the
change (`config.change`) and goes to `--out` (default `benchmarks/results/
output_probe.jsonl`, never chroma_gain's own file). `--workdir` must not be the quality
workdir: reports there are keyed by the model file, not by the change.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path

import jax.numpy as jnp

from benchmarks import chroma_gain, common
from jaxcolor import color
from jaxcolor.inference import colorizer as colorizer_lib

AREA = "output_probe"

Predict = Callable[..., jnp.ndarray]  # Colorizer.predict_device: (L, hint) -> ab


def ceiling(ab, cap: float):
    """a/b [..., 2] with their chroma capped at `cap`, hue kept."""
    chroma = jnp.sqrt(jnp.sum(ab * ab, axis=-1, keepdims=True) + 1e-6)
    return ab * jnp.minimum(1.0, cap / chroma)


def mirror_averaged(raw: Predict, chroma: float, gamma: float) -> Predict:
    """`raw` (G's unscaled a/b) on L and on its mirror, averaged, then scaled."""
    def predict(L, hint=None):
        if hint is not None and bool(jnp.any(jnp.asarray(hint)[..., 2] > 0)):
            raise SystemExit("output_probe: photos without hints only")
        L = jnp.asarray(L, jnp.float32)
        ab = (raw(L, None) + raw(L[:, :, ::-1], None)[:, :, ::-1]) / 2
        return color.scale_chroma(ab, chroma, gamma)
    return predict


def parse_change(spec: str) -> Callable[[colorizer_lib.Colorizer], Predict]:
    """`mirror` or `ceiling:C` (C > 0) as what builds one Colorizer's new predict_device."""
    name, _, value = spec.partition(":")
    if name == "mirror" and not value:
        return _mirrored
    if name == "ceiling":
        try:
            cap = float(value)
        except ValueError:
            cap = 0.0
        if cap > 0:
            return functools.partial(_capped, cap=cap)
    raise SystemExit(f"--change: 'mirror' or 'ceiling:C' with C > 0 ab units, got {spec!r}")


def _capped(colorizer, cap: float) -> Predict:
    scaled = colorizer.predict_device
    return lambda L, hint=None: ceiling(scaled(L, hint), cap)


def _mirrored(colorizer) -> Predict:
    """The raw a/b come from the unchanged predict_device at chroma 1, exponent 1."""
    chroma, gamma, scaled = colorizer.chroma, colorizer.chroma_gamma, colorizer.predict_device

    def raw(L, hint):
        colorizer.chroma, colorizer.chroma_gamma = 1.0, 1.0
        try:
            return scaled(L, hint)
        finally:
            colorizer.chroma, colorizer.chroma_gamma = chroma, gamma

    return mirror_averaged(raw, chroma, gamma)


def main(argv=None) -> list[dict]:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--change" not in argv or "--model" not in argv:
        raise SystemExit("output_probe: --change and --model are required "
                         "(and chroma_gain's validation flags)")
    i = argv.index("--change")
    spec = argv[i + 1]
    del argv[i:i + 2]
    change = parse_change(spec)
    out = str(common.results_file(AREA))
    if "--out" in argv:
        i = argv.index("--out")
        out = argv[i + 1]
        del argv[i:i + 2]
    model = Path(argv[argv.index("--model") + 1]).resolve()
    build = colorizer_lib.Colorizer.__init__

    def init(self, *args, **kwargs):
        build(self, *args, **kwargs)
        if self.directory is not None and Path(self.directory).resolve() == model:
            if self._onnx is not None:
                raise SystemExit("output_probe: the JAX backend only (quality.measure's)")
            self.predict_device = change(self)

    colorizer_lib.Colorizer.__init__ = init
    try:
        results = chroma_gain.main(argv + ["--out", ""])  # written below, with the change
    finally:
        colorizer_lib.Colorizer.__init__ = build
    for result in results:
        result["config"]["change"] = spec
        common.emit(result, out)
    return results


if __name__ == "__main__":
    main()
