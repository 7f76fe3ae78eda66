"""kill -9 at seeded random moments, some of them while an asynchronous checkpoint is being
written: every restart resumes from the newest complete checkpoint, never from a partially
written one (those are cleaned up), and the run that finishes after the last restart ends
with exactly the state of a run that was never interrupted.

The run has 16 steps, checkpoints every 2; each kill is placed so that the next restart
resumes further on, which fits KILLS = 5 into 16 steps (more kills need longer phases).
Its pretraining is staged (tests/tiny_config.py:faults: 4 steps of batch 8 at their own
learning rate, then 4 of batch 4): the first restart resumes inside the first stage (from
step 2), later ones at or after its end, and the state, the learning rate and the data
position of a staged run must come back exactly for the final state to match.

Cost: each kill is one trainer start-up (imports, state creation, compiled steps loaded
from the session's XLA cache) plus the steps it redoes. On this project's idle 2-core
machine the test takes ~1 min after the shared uninterrupted run (`baseline`); 3-5 min when
the machine is shared with other jobs.
"""

from __future__ import annotations

import random
import time

import pytest

from tests.faults import faultkit
from tests.support import assert_trees_equal

pytestmark = pytest.mark.slow  # trainer subprocesses

KILLS = 5
SEED = 20_251_123
STARTUP_TIMEOUT = 600  # a cold XLA cache compiles every step on first use


def _wait_for_partial_checkpoint(workdir, known: set, at_least: int, timeout: float) -> None:
    """Until a new partially written checkpoint of step >= `at_least` appears."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(int(name.split(".")[0]) >= at_least
               for name, _ in faultkit.partial_checkpoints(workdir) - known):
            return
        time.sleep(0.002)
    raise AssertionError(f"no checkpoint write of step >= {at_least} within {timeout} s")


def test_kill9_at_random_moments_loses_nothing(records, xla_cache, baseline, tmp_path):
    rng = random.Random(SEED)
    total = baseline.total_steps
    workdir = tmp_path / "run"
    history = []  # (checkpoints before the start, resumed from, partial ones left by the kill)
    for attempt in range(KILLS):
        complete, _ = faultkit.checkpoint_dirs(workdir)
        newest = max(complete, default=0)
        trainer = faultkit.Trainer(workdir, records, xla_cache)
        trainer.wait_for(r"\] step \d+/", STARTUP_TIMEOUT)  # training, past any restore
        resumed = faultkit.resumed_steps(trainer.output)
        assert resumed == ([newest] if complete else []), (history, complete, trainer.tail())
        known = faultkit.partial_checkpoints(workdir)
        # Every kill leaves one more complete checkpoint than the restart found: a save
        # starts only once the previous one is complete (Orbax waits for it), and the step-N
        # line is logged after the save of step N - 2 began.
        if (KILLS - 1 - attempt) % 2 == 0:  # while a checkpoint is being written (also last)
            _wait_for_partial_checkpoint(workdir, known, min(newest + 4, total), timeout=300)
            time.sleep(rng.uniform(0.0, 0.05))
        else:  # at a random moment of a random step
            step = rng.randint(min(newest + 5, total - 2), min(newest + 7, total - 2))
            trainer.wait_for(rf"\] step {step}/", timeout=300)
            time.sleep(rng.uniform(0.0, 1.0))
        trainer.kill()
        left = faultkit.partial_checkpoints(workdir) - known
        history.append((complete, resumed, sorted(name for name, _ in left)))
        after, _ = faultkit.checkpoint_dirs(workdir)
        assert after[: len(complete)] == complete, ("a kill removed a checkpoint", history)
    assert any(left for _, _, left in history), ("no kill hit a checkpoint write", history)

    complete, _ = faultkit.checkpoint_dirs(workdir)
    assert complete, history
    rc, output = faultkit.run_trainer(workdir, records, xla_cache)
    assert rc == 0, output[-5000:]
    assert faultkit.resumed_steps(output) == [max(complete)], history
    final, partial = faultkit.checkpoint_dirs(workdir)
    assert final[-1] == total and not partial, (final, partial)
    assert_trees_equal(faultkit.restore_state(workdir, total), baseline.final_state)
