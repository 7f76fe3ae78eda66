"""The starter model: a trained generator shipped inside the wheel, so a new user colours a
photo before training anything (every command's default when no --checkpoint is given).

One file of package data, `weights/starter.npz`, in the model-file format
(`jaxcolor.model_file`, which training also reads to fine-tune it): G's inference variables
(the checkpoint's `generator` item, stored in half precision where `save` measured it equal)
and the run's config as JSON, with its provenance (run, step; the validation and test
figures are in docs/model-card.md). Loading it needs numpy and the model code only: no
Orbax manager, no training code. `python -m jaxcolor.inference.starter RUN OUT` writes one
from a run.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from jaxcolor import model_file
from jaxcolor.errors import UsageError
from jaxcolor.inference import restore as restore_lib
from jaxcolor.models import factory

PATH = model_file.STARTER


def save(restored: restore_lib.Restored, out: str | os.PathLike, *, dtype: str = "float16",
         about: dict | None = None) -> Path:
    """Write `restored`'s G as a model file (`jaxcolor.model_file`): floating variables in
    `dtype`, the config and `about` (provenance) as JSON."""
    return model_file.write(out, restored.variables, restored.config,
                            {"step": restored.step, **(about or {})}, dtype=dtype)


def load(path: str | os.PathLike = PATH) -> restore_lib.Restored:
    """The starter model, or any model file `save` wrote, as a `Restored` (what `Colorizer`
    is built from), in float32."""
    path = Path(path)
    remedy = "reinstall jaxcolor, or pass --checkpoint" if path == PATH else \
        "write it with `python -m jaxcolor.inference.starter RUN OUT`"
    file = model_file.read(path, remedy=remedy)
    graphdef, variables = restore_lib.eval_split(factory.abstract_generator(file.config.model))
    for name, state in variables.items():
        model_file.place(file, name, state, remedy=remedy)
    return restore_lib.Restored(config=file.config, graphdef=graphdef, variables=variables,
                                step=int(file.about.get("step", 0)), directory=path)


def restore_model(path: str | os.PathLike | None, *, step: int | None = None,
                  best: bool = False) -> restore_lib.Restored:
    """What `--checkpoint` names: a run (its workdir or checkpoints directory: the latest
    step, `step`, or the best by validation score), a model file `save` wrote (`.npz`, the
    format the starter ships in), or, for None, the starter model itself."""
    if path is not None and Path(path).suffix != ".npz":
        return restore_lib.restore(path, step=step, best=best)
    if step is not None or best:
        raise UsageError("--step and --best choose among a run's checkpoints; a model file "
                         "(.npz) holds one")
    if path is None:
        return load(PATH)
    path = Path(path).expanduser()
    if not path.is_file():
        raise UsageError(f"{path}: no such model file")
    return load(path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Write a starter model file from a run.")
    parser.add_argument("run", help="a run workdir or its checkpoints directory, or a model "
                        "file (.npz) to write again with a new calibration")
    parser.add_argument("out", help="the .npz to write (jaxcolor/inference/weights/starter.npz)")
    parser.add_argument("--step", type=int, default=None)
    parser.add_argument("--best", action="store_true")
    parser.add_argument("--dtype", default="float16", choices=("float16", "float32"))
    parser.add_argument("--chroma", type=float, default=None,
                        help="the calibrated chroma scale to ship (config.model.chroma)")
    parser.add_argument("--chroma_gamma", type=float, default=None,
                        help="the scale's exponent on the predicted chroma to ship "
                             "(config.model.chroma_gamma)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="a bins head's annealed-mean temperature to ship "
                             "(config.model.temperature)")
    parser.add_argument("--about", default="{}", help="JSON provenance to store beside it")
    args = parser.parse_args(argv)
    restored = restore_model(args.run, step=args.step, best=args.best)
    if args.chroma is not None:
        restored.config.model.chroma = args.chroma
    if args.chroma_gamma is not None:
        restored.config.model.chroma_gamma = args.chroma_gamma
    if args.temperature is not None:
        if restored.config.model.get("colour_head", "regression") != "bins":
            raise UsageError(f"--temperature: {args.run} has no bins head "
                             "(config.model.colour_head); only its annealed mean has one")
        if not args.temperature > 0:
            raise UsageError(f"--temperature: {args.temperature:g}; a number > 0")
        restored.config.model.temperature = args.temperature
    out = save(restored, args.out, dtype=args.dtype, about=json.loads(args.about))
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB) from step {restored.step}")


if __name__ == "__main__":
    main()
