"""Fixtures of the training tests: tiny records and a per-module persistent compile cache."""

from __future__ import annotations

from pathlib import Path

import jax
import pytest
from jax.experimental.compilation_cache import compilation_cache

from helpers import write_records


@pytest.fixture(scope="session")
def records_dir(tmp_path_factory) -> Path:
    return write_records(tmp_path_factory.mktemp("train_records") / "records")


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory):
    """A persistent XLA cache for one test module: a step compiled by one run is loaded by
    the next (each run jits fresh closures, which the in-memory cache cannot match)."""
    previous = jax.config.jax_compilation_cache_dir
    compilation_cache.set_cache_dir(str(tmp_path_factory.mktemp("xla_cache")))
    compilation_cache.reset_cache()
    yield
    jax.config.update("jax_compilation_cache_dir", previous)
    compilation_cache.reset_cache()

