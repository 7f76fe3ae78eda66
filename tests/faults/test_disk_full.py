"""Disk full while checkpointing: the run stops with an error line naming the checkpoint
directory, the checkpoint it could not write and why, exit 1; the checkpoints written
before stay complete and restore to exactly what they held.

A save that never finishes (a completion that is lost) stops the run the same way once
`config.checkpoint_timeout_s` has passed.

Two ways to fill the disk:
* in-process (always runs): tests/faults/trainer.py `--fault_enospc_at_save=K` makes
  Orbax's background writer raise OSError(ENOSPC) at the first JSON item of the K-th save,
  as `write_text` on a full file system does, while the arrays are being written;
* a real size-limited tmpfs as the workdir (runs where `mount` is allowed, e.g. as root):
  TensorStore then reports the full disk as ValueError("RESOURCE_EXHAUSTED ...").
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.faults import faultkit
from tests.support import assert_trees_equal

pytestmark = pytest.mark.slow  # trainer subprocesses

CHECKPOINT_ERROR = re.compile(
    r"error: (\S+): could not write checkpoint (\d+) \((.+)\); earlier checkpoints are intact")


def _checkpoint_error(output: str) -> re.Match:
    """The run's error line. Orbax's writer threads may still be logging to the same stderr,
    so the line is searched for, not expected at the start of a line."""
    errors = CHECKPOINT_ERROR.findall(output)
    assert len(errors) == 1, output[-5000:]
    return CHECKPOINT_ERROR.search(output)


def test_enospc_during_an_async_save_stops_the_run_and_keeps_older_checkpoints(
        records, xla_cache, baseline, tmp_path):
    workdir = tmp_path / "run"
    rc, output = faultkit.run_trainer(workdir, records, xla_cache, "--fault_enospc_at_save=2")

    assert rc == 1, output[-5000:]
    error = _checkpoint_error(output)
    assert error.group(1) == str(workdir / "checkpoints")
    assert error.group(2) == "4"  # the 2nd save, not the one that found out about it
    assert "No space left on device" in error.group(3)
    complete, _ = faultkit.checkpoint_dirs(workdir)
    assert complete == [2]
    assert_trees_equal(faultkit.restore_state(workdir, 2),
                                faultkit.restore_state(baseline.workdir, 2))


def test_a_save_that_never_finishes_stops_the_run_after_the_timeout(
        records, xla_cache, baseline, tmp_path):
    """A write whose completion is lost (TensorStore's, posted to an event loop Orbax had
    closed after a sibling item's ENOSPC, hung CI for 600 s) ends the run with the
    checkpoint error once `config.checkpoint_timeout_s` (20 s here) has passed."""
    workdir = tmp_path / "run"
    rc, output = faultkit.run_trainer(workdir, records, xla_cache, "--fault_hang_at_save=2",
                                      timeout=300)

    assert rc == 1, output[-5000:]
    error = _checkpoint_error(output)
    assert error.group(2) == "4"
    assert "not finished within config.checkpoint_timeout_s = 20 s" in error.group(3)
    complete, _ = faultkit.checkpoint_dirs(workdir)
    assert complete == [2]
    assert_trees_equal(faultkit.restore_state(workdir, 2),
                       faultkit.restore_state(baseline.workdir, 2))


@pytest.fixture
def small_tmpfs(baseline, tmp_path):
    """A tmpfs with room for two and a half of the tiny run's checkpoints."""
    checkpoint = baseline.workdir / "checkpoints" / "2"
    size = sum(f.stat().st_size for f in checkpoint.rglob("*") if f.is_file())
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={int(size * 2.5)}",
                              "tmpfs", str(mount_point)], capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_a_real_full_disk_stops_the_run_and_keeps_older_checkpoints(
        records, xla_cache, baseline, small_tmpfs):
    workdir = small_tmpfs / "run"
    rc, output = faultkit.run_trainer(workdir, records, xla_cache)

    assert rc == 1, output[-5000:]
    error = _checkpoint_error(output)
    complete, _ = faultkit.checkpoint_dirs(workdir)
    assert complete, output[-5000:]
    assert error.group(1) == str(workdir / "checkpoints")
    assert int(error.group(2)) == complete[-1] + 2  # the one that did not fit
    assert "RESOURCE_EXHAUSTED" in error.group(3) or "No space left" in error.group(3)
    assert_trees_equal(faultkit.restore_state(workdir, complete[-1]),
                                faultkit.restore_state(baseline.workdir, complete[-1]))
