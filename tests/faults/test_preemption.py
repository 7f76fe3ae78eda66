"""SIGTERM (a preemption notice): the trainer writes a checkpoint of the step it is at and
exits 0; the same command then resumes from that step and finishes exactly where an
uninterrupted run does. Periodic checkpoints are off here, so the only checkpoint before the
end is the one SIGTERM asked for."""

from __future__ import annotations

import re
import signal

import pytest

from tests.faults import faultkit
from tests.support import assert_trees_equal

pytestmark = pytest.mark.slow  # trainer subprocesses

NO_PERIODIC_CHECKPOINTS = "--config.checkpoint_every=1000000"


def test_sigterm_saves_the_current_step_and_exits_0_then_resumes(records, xla_cache,
                                                                 baseline, tmp_path):
    workdir = tmp_path / "run"
    trainer = faultkit.Trainer(workdir, records, xla_cache, NO_PERIODIC_CHECKPOINTS)
    trainer.wait_for(r"\] step 5/", timeout=600)
    trainer.send(signal.SIGTERM)
    rc = trainer.wait(timeout=300)

    assert rc == 0, trainer.tail()
    saved = re.search(r"SIGTERM: checkpoint of step (\d+) saved in (\S+)", trainer.output)
    assert saved, trainer.tail()
    step = int(saved.group(1))
    assert 5 <= step < baseline.total_steps
    assert saved.group(2) == str(workdir / "checkpoints")
    complete, partial = faultkit.checkpoint_dirs(workdir)
    assert complete == [step] and not partial, (complete, partial)
    assert not (workdir / "samples.png").exists()  # it left at once, no final evaluation

    rc, output = faultkit.run_trainer(workdir, records, xla_cache, NO_PERIODIC_CHECKPOINTS)
    assert rc == 0, output[-5000:]
    assert faultkit.resumed_steps(output) == [step]
    assert re.search(rf"\] step {step + 1}/", output)  # the next step is the first one run
    assert not re.search(rf"\] step {step}/", output)
    assert_trees_equal(faultkit.restore_state(workdir, baseline.total_steps),
                                baseline.final_state)
