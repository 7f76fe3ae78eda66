"""Load a config file by path: `path/to/config.py[:variant]` -> its `get_config(variant)`.

Config files (`experiments/configs/*.py`) are scripts, as ml_collections' `config_flags`
treats them, not modules of a package: `experiments/run.py` reads them through absl flags,
and everything else (configs built on a sibling config, benchmarks, tests) through `load`,
so a file means the same wherever it is read from.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import ml_collections

from jaxcolor.errors import MissingPathError, UsageError


def load_module(path: str | os.PathLike):
    """The config file at `path`, executed as a fresh module."""
    path = Path(path)
    if not path.is_file():
        raise MissingPathError(f"{path}: no such config file")
    spec = importlib.util.spec_from_file_location(f"_jaxcolor_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "get_config", None)):
        raise UsageError(f"{path}: defines no get_config()")
    return module


def load(spec: str | os.PathLike) -> ml_collections.ConfigDict:
    """`path/to/config.py[:variant]` -> the ConfigDict its `get_config(variant)` returns."""
    path, _, variant = str(spec).partition(":")
    module = load_module(path)
    try:
        return module.get_config(variant) if variant else module.get_config()
    except ValueError as e:  # configs reject unknown variants with a ValueError
        raise UsageError(f"{spec}: {e}") from None


def sibling(config_file: str | os.PathLike, name: str):
    """The config module `name` beside `config_file` (e.g. demo.py builds on gan.py)."""
    return load_module(Path(config_file).with_name(name))
