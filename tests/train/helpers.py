"""The training tests' own helpers: the run's models and steps built as the loop builds them,
steps applied by hand, the records' fixed batch, checkpoint reads and a recording loop.
What other folders share (records, the tiny config, tree comparisons) is `tests.support`;
fixtures built on both live in conftest.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxcolor.data.records import Records
from jaxcolor.train import loop, monitor
from jaxcolor.train.setup import setup
from tests.support import BATCH, CROP, RECORDS_SIZE, to_host


def build_run(config, mesh=None, initial=None):
    """(setup, state) of `jaxcolor.train.setup`, as `loop.train_and_evaluate` builds them,
    so that tests driving the steps directly share its compiled programs. `initial`, a host
    copy of a state, is placed on the mesh instead of initialising (which compiles)."""
    run = setup(config, mesh)
    return run, (run.init_state() if initial is None else run.place(initial))


def run_steps(steps, state, batch, phases):
    """Apply the named phases' steps in order to one batch -> (final state, each step's
    metrics as floats)."""
    history = []
    for phase in phases:
        state, metrics = steps.for_phase(phase)(state, batch)
        history.append({k: float(v) for k, v in metrics.items()})
    return state, history


def fixed_batch(records_dir, n: int = BATCH) -> dict[str, np.ndarray]:
    """The centre CROPxCROP windows of the first `n` training records (uint8)."""
    records = Records(records_dir)
    L8, ab8 = records.read(records.split("train")[:n])
    lo = (RECORDS_SIZE - CROP) // 2
    window = (slice(None), slice(lo, lo + CROP), slice(lo, lo + CROP))
    return {"L": np.ascontiguousarray(L8[window]), "ab": np.ascontiguousarray(ab8[window])}


def restore_saved_state(workdir, step: int) -> dict:
    """The `state` item of a run's checkpoint as a plain tree of numpy arrays."""
    path = Path(workdir).absolute() / "checkpoints" / str(step) / "state"
    with ocp.StandardCheckpointer() as checkpointer:
        return to_host(checkpointer.restore(path))


@dataclasses.dataclass
class RunRecord:
    workdir: Path
    recorded: list  # (step, phase, metrics) as the loop hands them to Monitor.record
    returned: dict  # train_and_evaluate's return value


def train_recording(config, workdir, *, after_step=None) -> RunRecord:
    """`train_and_evaluate(config, workdir)`, keeping every step's metrics.

    `after_step(n)`, if given, is called once the loop has dispatched its n-th step of this
    call (n = 1, 2, ...), before it decides whether to evaluate, save or stop.
    """
    recorded, dispatched = [], [0]
    record, step_timing = monitor.Monitor.record, monitor.Monitor.step_timing

    def recording(self, step, phase, metrics):
        recorded.append((step, phase, dict(metrics)))
        return record(self, step, phase, metrics)

    def timing(self, *args, **kwargs):
        step_timing(self, *args, **kwargs)
        dispatched[0] += 1
        if after_step is not None:
            after_step(dispatched[0])

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(monitor.Monitor, "record", recording)
        mp.setattr(monitor.Monitor, "step_timing", timing)
        returned = loop.train_and_evaluate(config, workdir)
    return RunRecord(Path(workdir), recorded, returned)
