"""Fixtures of the fault tests: tiny records and one uninterrupted run that interrupted runs
must match. Every trainer subprocess uses the session's XLA cache (`xla_cache`,
tests/conftest.py)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from tests.faults import faultkit


@pytest.fixture(scope="session")
def records(tmp_path_factory) -> Path:
    return faultkit.write_records(tmp_path_factory.mktemp("fault_records") / "records")


@dataclasses.dataclass
class Baseline:
    workdir: Path
    total_steps: int
    final_state: dict  # the `state` item of the last checkpoint, as numpy arrays
    output: str


@pytest.fixture(scope="session")
def baseline(records, xla_cache, tmp_path_factory) -> Baseline:
    """The tiny run trained start to finish without interruption (it keeps every checkpoint)."""
    workdir = tmp_path_factory.mktemp("baseline") / "run"
    rc, output = faultkit.run_trainer(workdir, records, xla_cache)
    assert rc == 0, output[-5000:]
    total = faultkit.total_steps()
    steps, partial = faultkit.checkpoint_dirs(workdir)
    assert not partial and steps == list(range(2, total + 1, 2)), (steps, partial)
    yield Baseline(workdir, total, faultkit.restore_state(workdir, total), output)
    shutil.rmtree(workdir / "checkpoints", ignore_errors=True)  # ~1 GB
