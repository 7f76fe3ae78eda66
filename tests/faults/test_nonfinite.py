"""A batch that makes the loss NaN: the run stops with one line naming the step and the
loss, exit 1; the newest checkpoint is the last good one, it restores with finite values,
and resuming from it (without the bad batch) ends where an uninterrupted run ends.

The bad batch is injected by tests/faults/trainer.py (`--fault_nan_at_step`): step N reads
an all-zero batch, which the patched normalisation turns into NaN inputs, so the NaN goes
through G, the loss and Adam as a real one would.
"""

from __future__ import annotations

import re

import pytest

from tests.faults import faultkit
from tests.support import assert_trees_equal

pytestmark = pytest.mark.slow  # trainer subprocesses


@pytest.mark.parametrize("bad_step, last_good", [(4, 2), (5, 4)])
def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
        bad_step, last_good, records, xla_cache, baseline, tmp_path):
    """Step 4 is a checkpoint step (it must not be saved); step 5 is not (its NaN is
    found when its metrics are fetched, one step late, before step 6 is saved)."""
    workdir = tmp_path / "run"
    rc, output = faultkit.run_trainer(workdir, records, xla_cache,
                                      f"--fault_nan_at_step={bad_step}")

    assert rc == 1, output[-5000:]
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output[-5000:]
    assert re.match(rf"error: step {bad_step}: .*\bg/l1 is nan\b.*; stopping\.", errors[0]), \
        errors[0]
    assert "Traceback" not in output
    complete, partial = faultkit.checkpoint_dirs(workdir)
    assert complete == list(range(2, last_good + 1, 2)) and not partial, (complete, partial)
    restored = faultkit.restore_state(workdir, last_good)
    assert faultkit.all_finite(restored)
    assert int(restored["step"]) == last_good
    assert_trees_equal(restored, faultkit.restore_state(baseline.workdir, last_good))

    if bad_step == 5:  # once is enough for the slow part: resume past the bad batch
        rc, output = faultkit.run_trainer(workdir, records, xla_cache)
        assert rc == 0, output[-5000:]
        assert faultkit.resumed_steps(output) == [last_good]
        assert_trees_equal(faultkit.restore_state(workdir, baseline.total_steps),
                                    baseline.final_state)
