"""The training loop: phases, evaluation, logging, checkpoint/resume and signals.

`train_and_evaluate(config, workdir)` is the whole job. Its sections, in order:
  input pipeline   records opened and validated, filtered, sharded per process
  setup            one `data` mesh; models, optimisers, the state's shapes and the steps of
                   `train.setup` (traced abstractly: nothing runs or compiles yet)
  checkpoints      resume from the newest complete checkpoint in workdir/checkpoints, or
                   initialise the state replicated (jitted init)
  loop             dispatch step n, then fetch step n-1's metrics (never waits on the device);
                   log, evaluate, checkpoint; SIGTERM/SIGINT save and exit cleanly

Everything that can be wrong with the input (missing data, corrupt records, an impossible
batch size) is checked before anything is compiled.
"""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path

import jax
import ml_collections
from absl import logging
from jax.experimental import multihost_utils

from jaxcolor import checkpoints, sharding
from jaxcolor.errors import RunError
from jaxcolor.models import factory
from jaxcolor.train import checkpoint as checkpoint_lib
from jaxcolor.train import inputs, monitor, validation
from jaxcolor.train.schedule import Schedule
from jaxcolor.train.setup import setup


class NonFiniteLossError(RunError, FloatingPointError):
    """A loss became NaN or Inf; the message names the step and the loss."""


class _StopRequest:
    """Turns SIGTERM/SIGINT into a flag the loop reads between steps (never mid-step).

    With several processes a signal is not handled here: each process would see it at a
    different step and save alone, waiting forever for the others inside the collective
    checkpoint. There JAX's preemption service (started by `jax.distributed.initialize`)
    catches SIGTERM on any process, and every process stops at the step it agrees on
    (`reached`); SIGINT keeps its default (stop at once; resume from the last checkpoint).
    """

    def __init__(self, multi_process: bool):
        self.multi_process = multi_process
        self.signal: int | None = None
        self._previous = {}

    def reached(self, step: int) -> bool:
        """Whether to save and stop after `step` (0-based); called once every step."""
        if self.multi_process and multihost_utils.reached_preemption_sync_point(step):
            self.signal = signal.SIGTERM
        return self.signal is not None

    def __enter__(self):
        for sig in () if self.multi_process else (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. some test runners): no handler
                pass
        return self

    def _handle(self, signum, frame):
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.signal = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _check_finite(step: int, metrics: dict[str, float]) -> None:
    """`step` is 0-based, as the loop counts; messages number steps from 1, as the console
    and the checkpoints do (checkpoint N holds the state after N steps)."""
    bad = [f"{name} is {value}" for name, value in metrics.items() if not math.isfinite(value)]
    if bad:
        raise NonFiniteLossError(
            f"step {step + 1}: {', '.join(bad)}; stopping. The newest checkpoint holds the "
            "last good state (lower the learning rate or enable config.g.clip_grad_norm)")


class _Pending:
    """One dispatched step whose metrics are still on the device."""

    def __init__(self, step: int, phase: str, metrics: dict):
        self.step, self.phase, self.metrics = step, phase, metrics
        self._fetched: dict[str, float] | None = None

    def fetch(self) -> None:
        """Bring the metrics to the host: waits for the device to finish the step."""
        if self._fetched is None:
            self._fetched = {k: float(v) for k, v in jax.device_get(self.metrics).items()}

    def settle(self, mon: monitor.Monitor) -> dict[str, float]:
        """Fetch the metrics, refuse non-finite losses, record them."""
        self.fetch()
        _check_finite(self.step, self._fetched)
        mon.record(self.step, self.phase, self._fetched)
        return self._fetched


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
    """Train (or resume) the run in `workdir`. Returns the last logged metrics."""
    workdir = Path(workdir)

    # ---- input pipeline (all validation before any compilation) -------------------------
    mesh = sharding.make_mesh()
    schedule = Schedule.from_config(config)
    data = inputs.make_inputs(config, mesh, schedule)

    # ---- models, optimisers, the state's shapes (a restore target) and the steps ----------
    run = setup(config, mesh, schedule=schedule, ab_weights=data.ab_weights)
    steps = run.steps
    logging.info("G: %s parameters; D: %s parameters",
                 f"{factory.count_params(run.abstract_state.g_params):,}",
                 f"{factory.count_params(run.abstract_state.d_params):,}")

    # ---- checkpoints: resume from the newest complete one, else initialise ---------------
    workdir.mkdir(parents=True, exist_ok=True)
    checkpointer = checkpoint_lib.Checkpointer(
        workdir / "checkpoints", keep=config.keep_checkpoints, keep_best=config.keep_best,
        timeout_s=config.checkpoint_timeout_s)
    latest = checkpointer.latest_step()
    if latest is not None:  # restored straight onto the shardings: no initialisation to run
        state, meta = checkpointer.restore(latest, run.abstract_state, data_iter=data.train_iter)
        logging.info("Resumed from %s/%d (phase %s)", checkpointer.directory, latest,
                     meta.get("phase"))
    else:
        state = run.init_state()
    start = int(jax.device_get(state.step))

    # ---- loop -----------------------------------------------------------------------------
    config_json = config.to_json_best_effort()
    mon = monitor.Monitor(workdir, config, total_steps=schedule.total, start_step=start)
    last_metrics: dict[str, float] = {}
    pending: _Pending | None = None  # the previous step, its metrics fetched one step late
    stopped = False  # by SIGTERM/SIGINT: save and leave at once (a preemption's grace is short)

    try:
        with _StopRequest(multi_process=jax.process_count() > 1) as stop:
            for step in range(start, schedule.total):
                phase = schedule.phase(step)
                state, pending = _train_step(steps.for_phase(phase), state, data, pending,
                                             mon, step, phase)
                done = step + 1
                at_end = done == schedule.total
                eval_due = done % config.eval_every == 0 or at_end
                save_due = done % config.checkpoint_every == 0 or at_end
                stop_due = stop.reached(step)
                if eval_due or save_due or stop_due:
                    last_metrics = pending.settle(mon)  # never save a state whose loss is bad
                    pending = None
                    val = None
                    if eval_due and data.has_val:
                        val = _validate(run, state, data, mon, done)
                    checkpointer.save(state, data_iter=data.train_iter, config_json=config_json,
                                      phase=phase, stage=schedule.stage(step), metrics=val,
                                      best_metric=run.best_metric)
                    if stop_due and not at_end:
                        _report_stop(checkpointer, stop.signal, done)
                        stopped = True
                        break
            if pending is not None:
                pending.settle(mon)
        checkpointer.wait()
        if not stopped and data.has_val:  # one batch is enough for the grid
            mon.write_samples(validation.validate(
                steps.evaluate, state, data, max_images=1,
                probe_images=int(config.probe_images)).probe)
    finally:
        checkpointer.close()
        mon.close()
        data.close()
    return last_metrics


def _train_step(step_fn, state, data: inputs.Inputs, pending: _Pending | None,
                mon: monitor.Monitor, step: int, phase: str):
    """Dispatch `step`, then settle the previous step's metrics while it runs; time the
    waits for data and for the device. Returns (state, this step as pending)."""
    t0 = time.perf_counter()
    batch = data.next_train_batch()
    data_wait = time.perf_counter() - t0
    state, metrics = step_fn(state, batch)
    t1 = time.perf_counter()
    if pending is not None:
        pending.fetch()
    device_wait = time.perf_counter() - t1
    if pending is not None:
        pending.settle(mon)
    mon.step_timing(time.perf_counter() - t0, data_wait, device_wait,
                    images=batch["L"].shape[0])
    return state, _Pending(step, phase, metrics)


def _validate(run, state, data, mon: monitor.Monitor, done: int) -> dict[str, float]:
    """Evaluate on the validation split, log it, and return what the checkpoint records:
    the numbers the best-checkpoint scores use and the score of `config.best_metric`."""
    config = run.config
    result = validation.validate(run.steps.evaluate, state, data,
                                 max_images=int(config.eval_max_images),
                                 probe_images=int(config.probe_images))
    recorded = checkpoints.checkpoint_metrics(result.summary, run.best_metric)
    mon.write_eval(done, {**result.summary, "score": recorded[checkpoints.SCORE_KEY]},
                   result.probe)
    return recorded


def _report_stop(checkpointer: checkpoint_lib.Checkpointer, signum: int, done: int) -> None:
    checkpointer.wait()
    name = signal.Signals(signum).name
    logging.info("%s received: saved step %d to %s; exiting. Run the same command to resume.",
                 name, done, checkpointer.directory)
    print(f"{name}: checkpoint of step {done} saved in {checkpointer.directory}", flush=True)
