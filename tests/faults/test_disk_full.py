"""Disk full while checkpointing: the run stops with one line naming the checkpoint
directory and the error, exit 1, and the checkpoints written before stay complete and
restore to exactly what they held.

The full disk is simulated in-process by tests/faults/trainer.py (`--fault_enospc_at_save`):
during the K-th save, Orbax's background writer raises OSError(ENOSPC) at its first JSON
item, as `write_text` on a full file system does, while the arrays are being written.
"""

from __future__ import annotations

import faultkit


def test_enospc_during_an_async_save_stops_the_run_and_keeps_older_checkpoints(
        records, xla_cache, baseline, tmp_path):
    workdir = tmp_path / "run"
    rc, output = faultkit.run_trainer(workdir, records, xla_cache, "--fault_enospc_at_save=2")

    assert rc == 1, output[-5000:]
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output[-5000:]
    checkpoints = workdir / "checkpoints"
    assert errors[0].startswith(f"error: {checkpoints}: "), errors[0]
    assert "checkpoint 4" in errors[0] and "No space left on device" in errors[0], errors[0]
    assert "Traceback" not in output

    complete, partial = faultkit.checkpoint_dirs(workdir)
    assert complete == [2], (complete, partial)  # the failed save of step 4 never completed
    faultkit.assert_trees_equal(faultkit.restore_state(workdir, 2),
                                faultkit.restore_state(baseline.workdir, 2))
