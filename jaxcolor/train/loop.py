"""The training loop: phases, evaluation, logging, checkpoint/resume and signals.

`train_and_evaluate(config, workdir)` is the whole job. Its sections, in order:
  input pipeline   records opened and validated, filtered, sharded per process
  mesh & models    one `data` mesh; G and D defined, the state's shapes traced (nothing run)
  checkpoints      resume from the newest complete checkpoint in workdir/checkpoints, or
                   initialise the state replicated (jitted init)
  steps            the jit-compiled pure steps of `steps.py`
  loop             dispatch step n, then fetch step n-1's metrics (never waits on the device);
                   log, evaluate, checkpoint; SIGTERM/SIGINT save and exit cleanly

Everything that can be wrong with the input (missing data, corrupt records, an impossible
batch size) is checked before anything is compiled.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import time
from pathlib import Path

import jax
import ml_collections
from absl import logging
from jax.experimental import multihost_utils

from jaxcolor.train import checkpoint as checkpoint_lib
from jaxcolor.train import mesh as mesh_lib
from jaxcolor.train import optim, steps as steps_lib
from jaxcolor.train import build, inputs, monitor

PHASES = ("pretrain", "d_pretrain", "gan")


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or Inf; the message names the step and the loss."""


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Global step ranges of the three phases."""

    pretrain_steps: int
    d_pretrain_steps: int
    gan_steps: int

    @classmethod
    def from_config(cls, config) -> "Schedule":
        s = cls(int(config.phases.pretrain_steps), int(config.phases.d_pretrain_steps),
                int(config.phases.gan_steps))
        if min(s.pretrain_steps, s.d_pretrain_steps, s.gan_steps) < 0 or s.total == 0:
            raise ValueError("config.phases: step counts must be >= 0 and not all 0")
        return s

    @property
    def total(self) -> int:
        return self.pretrain_steps + self.d_pretrain_steps + self.gan_steps

    def phase(self, step: int) -> str:
        if step < self.pretrain_steps:
            return "pretrain"
        if step < self.pretrain_steps + self.d_pretrain_steps:
            return "d_pretrain"
        return "gan"

    @property
    def g_updates(self) -> int:
        return self.pretrain_steps + self.gan_steps

    @property
    def d_updates(self) -> int:
        return self.d_pretrain_steps + self.gan_steps


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


def _fetch(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in jax.device_get(metrics).items()}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
    """Train (or resume) the run in `workdir`. Returns the last logged metrics."""
    workdir = Path(workdir)
    schedule = Schedule.from_config(config)

    # ---- input pipeline (all validation before any compilation) -------------------------
    mesh = mesh_lib.make_mesh()
    data = inputs.make_inputs(config, mesh)

    # ---- models and optimisers; the state's shapes (a restore target) --------------------
    g_tx = optim.make_optimizer(config.g, field="g", total_updates=schedule.g_updates)
    d_tx = optim.make_optimizer(config.d, field="d", total_updates=schedule.d_updates)
    replicated = mesh_lib.replicated(mesh)
    defs, abstract = build.abstract_state(config, g_tx, d_tx, sharding=replicated)
    logging.info("G: %s parameters; D: %s parameters",
                 f"{build.count_params(abstract.g_params):,}",
                 f"{build.count_params(abstract.d_params):,}")

    # ---- checkpoints: resume from the newest complete one, else initialise ---------------
    workdir.mkdir(parents=True, exist_ok=True)
    checkpointer = checkpoint_lib.Checkpointer(
        workdir / "checkpoints", keep=config.keep_checkpoints, keep_best=config.keep_best)
    latest = checkpointer.latest_step()
    if latest is not None:  # restored straight onto the shardings: no initialisation to run
        state, meta = checkpointer.restore(latest, abstract, data_iter=data.train_iter)
        logging.info("Resumed from %s/%d (phase %s)", checkpointer.directory, latest,
                     meta.get("phase"))
    else:
        _, state = build.create_state(config, g_tx, d_tx, sharding=replicated)
        state = build.maybe_load_backbone(config, state, sharding=replicated)
    start = int(jax.device_get(state.step))

    # ---- steps ---------------------------------------------------------------------------
    compiled = steps_lib.build_steps(
        defs, steps_lib.StepConfig.from_config(config), g_tx, d_tx,
        g_encoder_mask=steps_lib.encoder_mask(state.g_params), state_sharding=replicated)
    step_fns = {"pretrain": compiled.pretrain, "d_pretrain": compiled.d_only, "gan": compiled.gan}

    # ---- loop -----------------------------------------------------------------------------
    config_json = config.to_json_best_effort()
    mon = monitor.Monitor(workdir, config, total_steps=schedule.total, start_step=start)
    last_metrics: dict[str, float] = {}
    pending = None  # (step, phase, device metrics) of the previous step, fetched one late
    stopped = False  # by SIGTERM/SIGINT: save and leave at once (a preemption's grace is short)

    def save(step_state, phase, metrics=None):
        checkpointer.save(step_state, data_iter=data.train_iter, config_json=config_json,
                          phase=phase, metrics=metrics)

    def evaluate(step_state, step):
        results = monitor.evaluate(compiled.evaluate, step_state, data, mesh, config)
        mon.write_eval(step, results)
        return {"val/l1": results["metrics"]["l1"]}

    try:
        with _StopRequest(multi_process=jax.process_count() > 1) as stop:
            for step in range(start, schedule.total):
                phase = schedule.phase(step)
                t0 = time.perf_counter()
                batch = data.next_train_batch()
                waited = time.perf_counter() - t0
                state, metrics = step_fns[phase](state, batch)
                if pending is not None:  # the previous step's numbers, while this one runs
                    fetched = _fetch(pending[2])
                    _check_finite(pending[0], fetched)
                    mon.record(pending[0], pending[1], fetched)
                pending = (step, phase, metrics)
                mon.step_timing(time.perf_counter() - t0, waited)
                done = step + 1
                at_end = done == schedule.total
                eval_due = done % config.eval_every == 0 or at_end
                save_due = done % config.checkpoint_every == 0 or at_end
                stop_due = stop.reached(step)
                if eval_due or save_due or stop_due:
                    fetched = _fetch(pending[2])  # never save a state whose loss is bad
                    _check_finite(step, fetched)
                    mon.record(step, phase, fetched)
                    last_metrics = fetched
                    pending = None
                    val = evaluate(state, done) if eval_due and data.has_val else None
                    save(state, phase, val)
                    if stop_due and not at_end:
                        checkpointer.wait()
                        name = signal.Signals(stop.signal).name
                        logging.info("%s received: saved step %d to %s; exiting. Run the same "
                                     "command to resume.", name, done, checkpointer.directory)
                        print(f"{name}: checkpoint of step {done} saved in "
                              f"{checkpointer.directory}", flush=True)
                        stopped = True
                        break
            if pending is not None:
                fetched = _fetch(pending[2])
                _check_finite(pending[0], fetched)
                mon.record(pending[0], pending[1], fetched)
        checkpointer.wait()
        if not stopped:
            mon.write_final_grid(compiled.evaluate, state, data, mesh)
    finally:
        checkpointer.close()
        mon.close()
        data.close()
    return last_metrics
