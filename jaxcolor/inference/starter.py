"""The starter model: a trained generator shipped inside the wheel, so a new user colours a
photo before training anything (every command's default when no --checkpoint is given).

One file of package data, `weights/starter.npz`: G's inference variables (the checkpoint's
`generator` item, stored in half precision where `save` measured it equal) and the run's
config as JSON, with its provenance (run, step, the validation and test figures are in
docs/model-card.md). Loading it needs numpy and the model code only: no Orbax manager, no
training code. `python -m jaxcolor.inference.starter RUN OUT` writes one from a run.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import ml_collections
import numpy as np
from flax import nnx, traverse_util

from jaxcolor.errors import RunError, UsageError
from jaxcolor.inference import restore as restore_lib
from jaxcolor.models import factory

PATH = Path(__file__).resolve().parent / "weights" / "starter.npz"
_CONFIG, _ABOUT = "__config__", "__about__"


class StarterError(RunError):
    """The starter model file is missing or damaged (a broken install)."""


def _flat(variables: dict) -> dict[str, np.ndarray]:
    pure = {k: nnx.to_pure_dict(v) for k, v in variables.items()}
    return {"/".join(map(str, path)): np.asarray(value)
            for path, value in traverse_util.flatten_dict(pure).items()}


def save(restored: restore_lib.Restored, out: str | os.PathLike, *, dtype: str = "float16",
         about: dict | None = None) -> Path:
    """Write `restored`'s G as a starter file: floating variables in `dtype`, the config and
    `about` (provenance) as JSON."""
    arrays = {k: v.astype(dtype) if np.issubdtype(v.dtype, np.floating) else v
              for k, v in _flat(restored.variables).items()}
    about = {"step": restored.step, **(about or {})}
    config = ml_collections.ConfigDict(restored.config.to_dict())
    for section, field in (("data", "train"), ("data", "val"), ("model", "backbone_weights"),
                           ("model", "init_from")):  # this machine's paths: not shipped
        if field in config.get(section, {}):
            config[section][field] = None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays, **{_CONFIG: np.array(config.to_json()),
                                          _ABOUT: np.array(json.dumps(about))})
    return out


def load(path: str | os.PathLike = PATH) -> restore_lib.Restored:
    """The starter model, or any model file `save` wrote, as a `Restored` (what `Colorizer`
    is built from), in float32."""
    path = Path(path)
    remedy = "reinstall jaxcolor, or pass --checkpoint" if path == PATH else \
        "write it with `python -m jaxcolor.inference.starter RUN OUT`"
    try:
        with np.load(path, allow_pickle=False) as data:
            stored = {k: data[k] for k in data.files}
    except (OSError, ValueError) as e:
        raise StarterError(f"{path}: the model file cannot be read ({e}); {remedy}") from None
    if _CONFIG not in stored or _ABOUT not in stored:
        raise StarterError(f"{path}: not a jaxcolor model file (no {_CONFIG} entry); {remedy}")
    config = ml_collections.ConfigDict(json.loads(str(stored.pop(_CONFIG))))
    about = json.loads(str(stored.pop(_ABOUT)))
    graphdef, target = restore_lib.eval_split(factory.abstract_generator(config.model))
    values = {}
    for name, state in target.items():
        pure = traverse_util.flatten_dict(nnx.to_pure_dict(state))
        filled = {}
        for key, spec in pure.items():
            flat = "/".join(map(str, (name, *key)))
            if flat not in stored or stored[flat].shape != tuple(spec.shape):
                raise StarterError(f"{path}: {flat} is missing or misshapen; {remedy}")
            filled[key] = np.asarray(stored[flat], spec.dtype)
        nnx.replace_by_pure_dict(state, traverse_util.unflatten_dict(filled))
        values[name] = state
    return restore_lib.Restored(config=config, graphdef=graphdef, variables=values,
                                step=int(about.get("step", 0)), directory=path)


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
