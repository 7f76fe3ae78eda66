r"""Average model files of one generator: a weight-space ensemble (WiSE-FT, model soups).

    python -m benchmarks.model_soup OUT.npz A.npz B.npz [C.npz ...] [--weights 0.5,0.5]

Wortsman et al. average a fine-tune with the weights it started from (WiSE-FT), or several
fine-tunes of one start with each other (a uniform soup), and find the average more robust
to photos unlike the fine-tuning set than any one of them. Averaging is meaningful only for
networks one short walk apart in weight space (a model file and its fine-tunes), so the
inputs must hold the same variables in the same shapes. Every floating array (batch
statistics included) becomes the weighted mean in float32, written back in the first file's
dtype; the first file's config (calibration included) and the inputs' provenance go with
it. Measured in BENCHMARKS.md, "Averaged weights and a colder annealed mean".
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from jaxcolor import model_file

REMEDY = "pass model files that python -m jaxcolor.inference.starter wrote"


def average(paths: list[str | os.PathLike], weights: list[float] | None = None
            ) -> tuple[model_file.ModelFile, dict[str, np.ndarray]]:
    """The first file and the weighted mean of every file's arrays (`weights`: one per file,
    normalised; None: uniform). Files of other variables or shapes are a ModelFileError
    naming the first array that differs."""
    files = [model_file.read(p, remedy=REMEDY) for p in paths]
    weights = np.full(len(files), 1.0) if weights is None else np.asarray(weights, float)
    if len(weights) != len(files) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(f"--weights: {len(files)} non-negative numbers, not all 0, "
                         f"are needed (got {list(weights)})")
    weights = weights / weights.sum()
    first = files[0]
    for other in files[1:]:
        differ = sorted(k for k in first.arrays.keys() | other.arrays.keys()
                        if k not in first.arrays or k not in other.arrays
                        or first.arrays[k].shape != other.arrays[k].shape)
        if differ:
            raise model_file.ModelFileError(
                f"{other.path}: another generator than {first.path}'s ({differ[0]} and "
                f"{len(differ) - 1} more differ); {REMEDY} for one model and its fine-tunes")
    mean = {}
    for key, value in first.arrays.items():
        if not np.issubdtype(value.dtype, np.floating):
            mean[key] = value
            continue
        total = sum(w * f.arrays[key].astype(np.float32) for w, f in zip(weights, files))
        mean[key] = total.astype(value.dtype)
    return first, mean


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the averaged model file (.npz) to write")
    parser.add_argument("inputs", nargs="+", help="model files of one generator (2 or more)")
    parser.add_argument("--weights", default=None,
                        help="comma list, one per input (default: uniform)")
    args = parser.parse_args(argv)
    if len(args.inputs) < 2:
        parser.error("inputs: two or more model files are averaged")
    weights = None if args.weights is None else [float(w) for w in args.weights.split(",")]
    try:
        first, mean = average(args.inputs, weights)
    except (model_file.ModelFileError, ValueError) as e:
        parser.exit(2, f"error: {e}\n")
    about = {**first.about, "soup": {"inputs": [str(Path(p)) for p in args.inputs],
                                     "weights": weights}}
    out = model_file.write_arrays(args.out, mean, first.config, about)
    print(f"wrote {out}: the mean of {len(args.inputs)} model files")


if __name__ == "__main__":
    main()
