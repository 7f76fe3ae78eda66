"""Fixtures of the training tests: tiny records, a session-wide persistent compilation cache,
and one finished tiny run that several modules inspect."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.train.helpers import RunRecord, train_recording
from tests.support import tiny_config, write_records


@pytest.fixture(scope="session")
def records_dir(tmp_path_factory) -> Path:
    return write_records(tmp_path_factory.mktemp("train_records") / "records")


@pytest.fixture(scope="session")
def compile_cache(xla_cache) -> Path:
    """The session's persistent XLA cache (tests/conftest.py): every run jits fresh closures,
    which the in-memory cache cannot match; this one is keyed on the program, so each step
    of the tiny run compiles once per session, here and in the subprocesses."""
    return xla_cache


@pytest.fixture(scope="session")
def finished_run(records_dir, compile_cache, tmp_path_factory) -> RunRecord:
    """The tiny config trained start to finish in one call: 4 pretrain, 2 D-pretrain and
    4 GAN steps, evaluated and checkpointed at steps 5 and 10."""
    return train_recording(tiny_config(records_dir), tmp_path_factory.mktemp("finished"))
