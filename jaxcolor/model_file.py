"""The model file: one trained generator in one `.npz`, the format the starter model ships
in (`jaxcolor/inference/weights/starter.npz`).

Inference colours with a model file (`jaxcolor.inference.starter`) and training starts from
one (`config.model.init_from`: fine-tuning the starter on a user's own photos); neither may
import the other, so the format lives here, on the ground floor, beside `checkpoints`: no
model code, no Orbax, no optax. A file holds G's inference variables (a checkpoint's
`generator` item: `params` and `batch_stats`, each array under its path joined by "/",
floating ones in the precision the writer chose), the run's config as JSON (`CONFIG`) and
its provenance (`ABOUT`: the step, and what the writer adds). Reading it needs numpy only;
placing its arrays into a generator's variables needs that generator's state.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import ml_collections
import numpy as np
from flax import nnx, traverse_util

from jaxcolor.errors import RunError

STARTER = Path(__file__).resolve().parent / "inference" / "weights" / "starter.npz"
"""The starter model, package data of the wheel (`config.model.init_from = "starter"`)."""
CONFIG, ABOUT = "__config__", "__about__"
UNSHIPPED = (("data", "train"), ("data", "val"), ("model", "backbone_weights"),
             ("model", "init_from"))
"""Config fields that name paths of the machine a file was written on: cleared."""


class ModelFileError(RunError):
    """A model file is missing, damaged, or not one of ours."""


@dataclasses.dataclass(frozen=True)
class ModelFile:
    """What a model file holds: the run's config, its provenance, and G's arrays by flat
    name ("params/encoder/.../kernel")."""

    path: Path
    config: ml_collections.ConfigDict
    about: dict
    arrays: dict[str, np.ndarray]


def resolve(name: str | os.PathLike) -> Path:
    """A model file's path: "starter" is the shipped one."""
    return STARTER if str(name) == "starter" else Path(name).expanduser()


def _leaves(name: str, state: nnx.State) -> dict[str, tuple[tuple, object]]:
    """{flat name in a model file: (key in `state`'s pure dict, leaf)} for a variable
    collection (`name`: "params" or "batch_stats")."""
    pure = traverse_util.flatten_dict(nnx.to_pure_dict(state))
    return {"/".join(map(str, (name, *key))): (key, leaf) for key, leaf in pure.items()}


def write(out: str | os.PathLike, variables: dict[str, nnx.State],
          config: ml_collections.ConfigDict, about: dict, *, dtype: str = "float16") -> Path:
    """G's `variables` ({"params", "batch_stats"}) with floating arrays in `dtype`, the config
    (this machine's paths cleared: `UNSHIPPED`) and `about`, as one compressed `.npz`."""
    arrays = {}
    for name, state in variables.items():
        for flat, (_, leaf) in _leaves(name, state).items():
            value = np.asarray(leaf)
            arrays[flat] = value.astype(dtype) if np.issubdtype(value.dtype, np.floating) \
                else value
    return write_arrays(out, arrays, config, about)


def write_arrays(out: str | os.PathLike, arrays: dict[str, np.ndarray],
                 config: ml_collections.ConfigDict, about: dict) -> Path:
    """`arrays` by flat name (as `ModelFile.arrays`), the config (this machine's paths
    cleared: `UNSHIPPED`) and `about`, as one compressed `.npz`: the format itself, for
    `write` and for tools that derive a file from others (benchmarks.model_soup)."""
    config = ml_collections.ConfigDict(config.to_dict())
    for section, field in UNSHIPPED:
        if field in config.get(section, {}):
            config[section][field] = None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays, **{CONFIG: np.array(config.to_json()),
                                          ABOUT: np.array(json.dumps(about))})
    return out


def read(path: str | os.PathLike, *, remedy: str) -> ModelFile:
    """The file at `path`; a damaged file or a foreign `.npz` is a `ModelFileError` naming
    it, with `remedy` (what the caller's user can do about it)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            stored = {k: data[k] for k in data.files}
    except (OSError, ValueError) as e:
        raise ModelFileError(f"{path}: the model file cannot be read ({e}); {remedy}") from None
    if CONFIG not in stored or ABOUT not in stored:
        raise ModelFileError(f"{path}: not a jaxcolor model file (no {CONFIG} entry); {remedy}")
    config = ml_collections.ConfigDict(json.loads(str(stored.pop(CONFIG))))
    about = json.loads(str(stored.pop(ABOUT)))
    return ModelFile(path=path, config=config, about=about, arrays=stored)


def misfits(file: ModelFile, name: str, state: nnx.State) -> list[str]:
    """The file's arrays of the variable collection `name` that `state` lacks or holds in
    another shape: what a generator of another config.model would leave unread."""
    ours = {flat: tuple(leaf.shape) for flat, (_, leaf) in _leaves(name, state).items()}
    return sorted(flat for flat, value in file.arrays.items()
                  if flat.startswith(f"{name}/") and ours.get(flat) != value.shape)


def place(file: ModelFile, name: str, state: nnx.State, *, remedy: str,
          partial: bool = False) -> None:
    """Fill the variable collection `state` (`name`: "params" or "batch_stats") in place
    with the file's arrays, cast to its dtypes. Every variable of `state` must be in the
    file with its shape, unless `partial`: then those the file lacks keep their values (a
    hint branch added to a hint-free model). A variable of another shape is a
    `ModelFileError` (with `remedy`) either way. `state` may be abstract (shapes and dtypes
    only)."""
    filled = {}
    for flat, (key, leaf) in _leaves(name, state).items():
        stored = file.arrays.get(flat)
        if stored is None and partial:
            filled[key] = leaf
            continue
        if stored is None or stored.shape != tuple(leaf.shape):
            raise ModelFileError(f"{file.path}: {flat} is missing or misshapen; {remedy}")
        filled[key] = np.asarray(stored, leaf.dtype)
    nnx.replace_by_pure_dict(state, traverse_util.unflatten_dict(filled))
