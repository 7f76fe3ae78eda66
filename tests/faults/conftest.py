"""Fixtures of the fault tests: tiny records and one uninterrupted run that interrupted runs
must match. Every trainer subprocess uses the session's XLA cache (`xla_cache`,
tests/conftest.py)."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import filelock
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
    """The tiny run trained start to finish without interruption (it keeps every checkpoint).
    Under pytest-xdist the workers share one, in the folder their base temporary folders
    sit in: behind a file lock, the first to need it trains it and counts its readers; the
    last reader to finish deletes its checkpoints (~1 GB), and a worker that needs it after
    that trains it again."""
    shared = os.environ.get("PYTEST_XDIST_WORKER") is not None
    root = (tmp_path_factory.getbasetemp().parent if shared
            else tmp_path_factory.mktemp("baseline")) / "fault_baseline"
    workdir, readers = root / "run", root / "readers"
    total = faultkit.total_steps()
    root.mkdir(exist_ok=True)
    lock = filelock.FileLock(root.with_suffix(".lock"))
    with lock:
        if not (workdir / "checkpoints").is_dir():
            shutil.rmtree(workdir, ignore_errors=True)
            rc, output = faultkit.run_trainer(workdir, records, xla_cache)
            assert rc == 0, output[-5000:]
            steps, partial = faultkit.checkpoint_dirs(workdir)
            assert not partial and steps == list(range(2, total + 1, 2)), (steps, partial)
            (root / "output.txt").write_text(output)
        readers.write_text(str(int(readers.read_text()) + 1 if readers.is_file() else 1))
    yield Baseline(workdir, total, faultkit.restore_state(workdir, total),
                   (root / "output.txt").read_text())
    with lock:
        left = int(readers.read_text()) - 1
        readers.write_text(str(left))
        if left == 0:
            shutil.rmtree(workdir / "checkpoints", ignore_errors=True)
