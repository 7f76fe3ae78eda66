"""Fixtures of the training tests: tiny records, a session-wide persistent compilation cache,
and one finished tiny run that several modules inspect."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import pytest
from jax.experimental.compilation_cache import compilation_cache

from tests.train.helpers import RunRecord, train_recording
from tests.support import tiny_config, write_records


@pytest.fixture(scope="session")
def records_dir(tmp_path_factory) -> Path:
    return write_records(tmp_path_factory.mktemp("train_records") / "records")


@pytest.fixture(scope="session")
def compile_cache(tmp_path_factory) -> Path:
    """A persistent XLA cache for the training tests. Every run jits fresh closures, which
    the in-memory cache cannot match; this one is keyed on the program, so each step of the
    tiny run compiles once per session, here and in the subprocesses handed its path."""
    # JAXCOLOR_TEST_XLA_CACHE keeps the cache between sessions while working on the tests.
    directory = Path(os.environ.get("JAXCOLOR_TEST_XLA_CACHE")
                     or tmp_path_factory.mktemp("xla_cache"))
    previous = jax.config.jax_compilation_cache_dir
    compilation_cache.set_cache_dir(str(directory))
    compilation_cache.reset_cache()  # the cache is otherwise fixed at the first compile
    yield directory
    jax.config.update("jax_compilation_cache_dir", previous)
    compilation_cache.reset_cache()


@pytest.fixture(scope="session")
def finished_run(records_dir, compile_cache, tmp_path_factory) -> RunRecord:
    """The tiny config trained start to finish in one call: 4 pretrain, 2 D-pretrain and
    4 GAN steps, evaluated and checkpointed at steps 5 and 10."""
    return train_recording(tiny_config(records_dir), tmp_path_factory.mktemp("finished"))
