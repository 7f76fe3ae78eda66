"""Two JAX processes on localhost (`jax.distributed.initialize`, gloo CPU collectives, one
CPU device each) training data-parallel:

* each process reads only its own shard of the filtered records: the two index sets are
  disjoint and together cover the filtered training set (every step, every epoch);
* both are killed (-9) after a checkpoint, restarted, and both resume from the shared
  checkpoint;
* a SIGTERM to one process only (a preemption notice) stops both at the same step, agreed
  through JAX's preemption service: one checkpoint of that step, both exit 0, and a restart
  of both resumes from it;
* the finished run's state equals, bitwise, that of one process with 2 fake CPU devices fed
  the same global batches (tests/faults/trainer.py `--fault_emulate_processes=2`
  concatenates the two processes' shards as the two processes do). Exact equality is
  expected: every cross-device reduction sums two per-device partial results, and adding
  two floats gives the same result in either order, over gloo or in-process;
* evaluation reports the same numbers on both processes (the whole validation split), and
  the same as the single process.

Cost: the 2-device and the 2-process programs are compiled in every session (their own
XLA cache entries): ~2 min in all on this project's idle 2-core machine, ~9 min when it is
shared with other jobs.
"""

from __future__ import annotations

import collections
import json
import re
import signal
import socket
import time

import pytest

from jaxcolor.data import stats
from jaxcolor.data.records import Records
from tests.faults import faultkit
from tests.support import assert_trees_equal

STEPS = 8  # 28 filtered records: 14 per process, 2 per step, so 7 steps are one epoch
EPOCH = 7
PHASES = (f"--config.phases.pretrain_steps={STEPS}", "--config.phases.d_pretrain_steps=0",
          "--config.phases.gan_steps=0", "--config.phases.pretrain_stages=()")  # one batch size
STARTUP_TIMEOUT = 900  # cold cache: both processes compile every program
STEP_DELAY = "--fault_step_delay=0.7"  # ~0.7 s a step: time to signal a run of 8 steps
SIGTERM_SAVED = re.compile(r"SIGTERM: checkpoint of step (\d+) saved")
EVAL_LINE = re.compile(r"\[eval\] step \d+ +(\|ab\| err .*)")

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_both(workdir, records, cache, indices_dir) -> list[faultkit.Trainer]:
    port = _free_port()
    return [faultkit.Trainer(
        workdir, records, cache, *PHASES, "--config.distributed.enabled=true",
        f"--config.distributed.coordinator_address=127.0.0.1:{port}",
        "--config.distributed.num_processes=2", f"--config.distributed.process_id={i}",
        f"--fault_record_indices={indices_dir}/process{i}.jsonl", STEP_DELAY) for i in (0, 1)]


def _wait_for_checkpoint(workdir, step: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while step not in faultkit.checkpoint_dirs(workdir)[0]:
        assert time.monotonic() < deadline, f"checkpoint {step} not written in {timeout} s"
        time.sleep(0.05)


def _indices(path) -> dict[tuple[int, int], tuple[int, ...]]:
    """(shard, step) -> record indices read, for steps the run took (read-ahead dropped);
    a step read again after a restart must read the same records."""
    read = {}
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if entry["step"] < STEPS:
            key, value = (entry["shard"], entry["step"]), tuple(entry["index"])
            assert read.setdefault(key, value) == value, (key, read[key], value)
    return read


@pytest.fixture(scope="module")
def one_process_two_devices(records, xla_cache, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("two_devices") / "run"
    indices = workdir.parent / "indices.jsonl"
    rc, output = faultkit.run_trainer(
        workdir, records, xla_cache, *PHASES, "--fault_emulate_processes=2",
        f"--fault_record_indices={indices}", timeout=STARTUP_TIMEOUT,
        env=faultkit.trainer_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"))
    assert rc == 0, output[-5000:]
    assert "on 2 cpu device(s), 1 process(es)" in output
    return workdir, output, _indices(indices)


def test_two_processes_match_one_process_and_resume_together(
        records, xla_cache, one_process_two_devices, tmp_path):
    workdir, indices_dir = tmp_path / "run", tmp_path
    both = _start_both(workdir, records, xla_cache, indices_dir)
    for trainer in both:
        trainer.wait_for(r"\] step 3/", STARTUP_TIMEOUT)
    _wait_for_checkpoint(workdir, 2, timeout=300)
    for trainer in both:
        trainer.kill()
    complete, _ = faultkit.checkpoint_dirs(workdir)
    assert complete, [t.tail() for t in both]

    both = _start_both(workdir, records, xla_cache, indices_dir)
    for trainer in both:
        trainer.wait_for(rf"\] step {complete[-1] + 1}/", STARTUP_TIMEOUT)
    both[1].send(signal.SIGTERM)  # one process is preempted; both must stop together
    saved = []
    for i, trainer in enumerate(both):
        assert trainer.wait(timeout=300) == 0, trainer.tail()
        assert f"process {i} of 2, 1 local / 2 global devices" in trainer.output
        assert faultkit.resumed_steps(trainer.output) == [complete[-1]], trainer.tail()
        saved += [int(step) for step in SIGTERM_SAVED.findall(trainer.output)]
    assert len(saved) == 2 and saved[0] == saved[1] < STEPS, [t.tail() for t in both]
    assert faultkit.checkpoint_dirs(workdir)[0][-1] == saved[0]

    both = _start_both(workdir, records, xla_cache, indices_dir)
    for trainer in both:
        assert trainer.wait(timeout=STARTUP_TIMEOUT) == 0, trainer.tail()
        assert faultkit.resumed_steps(trainer.output) == [saved[0]], trainer.tail()

    reference_dir, reference_output, reference_indices = one_process_two_devices
    assert_trees_equal(faultkit.restore_state(workdir, STEPS),
                                faultkit.restore_state(reference_dir, STEPS))

    evals = [EVAL_LINE.findall(t.output)[-1] for t in both]
    assert evals[0] == evals[1] == EVAL_LINE.findall(reference_output)[-1], evals
    assert "on 7 images" in evals[0]  # 8 validation records, 1 gray one filtered out

    read = {**_indices(indices_dir / "process0.jsonl"), **_indices(indices_dir / "process1.jsonl")}
    assert read == reference_indices  # the same global batches, step by step
    per_process = collections.defaultdict(list)
    for (shard, step), idx in read.items():
        per_process[shard].append((step, idx))
    assert sorted(per_process) == [0, 1]
    epoch = [{i for step, idx in per_process[p] if step < EPOCH for i in idx} for p in (0, 1)]
    every_step = [{i for _, idx in per_process[p] for i in idx} for p in (0, 1)]
    assert not every_step[0] & every_step[1]  # disjoint, over all steps
    assert epoch[0] == every_step[0] and epoch[1] == every_step[1]  # nothing outside a shard
    assert len(epoch[0]) == len(epoch[1]) == 14  # one epoch reads every record of a shard once
    assert sorted(epoch[0] | epoch[1]) == _filtered_training_records(records)


def _filtered_training_records(records) -> list[int]:
    data = Records(records)
    thresholds = stats.FilterThresholds.from_config(faultkit.tiny_config().data.filter)
    kept, removed = stats.select(data.stats, thresholds, data.split("train"))
    assert removed["min_colorfulness"] == 4  # the gray records
    return sorted(int(i) for i in kept)
