"""Orbax checkpoints of a run: train state, Grain iterator, config, phase, and G alone.

Each checkpoint step directory holds these items:
  state      the whole TrainState (G, D, both optax states, EMA, step, RNG)
  generator  what inference needs: G's parameters (EMA when enabled) and batch statistics,
             so `colorize` restores G without building D or any optimiser
  data_iter  the Grain iterator state of this process (one small JSON per process)
  config     the run's ConfigDict as JSON (inference rebuilds G from it)
  meta       {"step", "phase", "metrics"}

Saves are asynchronous; Orbax writes into a temporary directory and renames it when complete
(and commits a marker on file systems without atomic rename), so a run killed mid-save
never leaves a checkpoint that restores half-written: `latest_step()` only sees finished
ones. Retention: the latest `keep` checkpoints plus the best `keep_best` by a validation
metric (lower is better).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp

from jaxcolor.train.state import TrainState, generator_variables

ITEMS = ("state", "generator", "data_iter", "config", "meta")


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or read; the message names the directory."""


def _best_metric(metrics: dict) -> float:
    return float(metrics["val/l1"])


class Checkpointer:
    """Thin wiring of `ocp.CheckpointManager` for one run's `checkpoints/` directory."""

    def __init__(self, directory: str | os.PathLike, *, keep: int = 3, keep_best: int = 1,
                 async_save: bool = True):
        self.directory = Path(directory).absolute()
        policies = [ocp.checkpoint_managers.LatestN(n=max(int(keep), 1))]
        if keep_best > 0:
            policies.append(ocp.checkpoint_managers.BestN(
                get_metric_fn=_best_metric, reverse=True, n=int(keep_best),
                keep_checkpoints_without_metrics=False))
        options = ocp.CheckpointManagerOptions(
            enable_async_checkpointing=async_save,
            preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies),
            best_fn=_best_metric, best_mode="min",
            create=True,
            # Saves cut short by a kill leave `N.orbax-checkpoint-tmp` directories behind; they
            # are never restored, and without this they would pile up (a full checkpoint each).
            cleanup_tmp_directories=True,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=ITEMS)
        self._writing: int | None = None  # step of the asynchronous save in flight, if any

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def best_step(self) -> int | None:
        return self._manager.best_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, state: TrainState, *, data_iter, config_json: str, phase: str,
             metrics: dict[str, float] | None = None) -> None:
        """Start an asynchronous save of `state` at its own step (returns once the device
        arrays are copied to the host, so the caller may donate them right away).

        The previous save is waited for first (Orbax's `save` would wait for it anyway), so
        that its failure is reported with its own step, not this one's.
        """
        self.wait()
        step = int(jax.device_get(state.step))
        meta = {"step": step, "phase": phase, "metrics": metrics or {}}
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            generator=ocp.args.StandardSave(generator_variables(state)),
            data_iter=grain.checkpoint.CheckpointSave(data_iter),
            config=ocp.args.JsonSave(json.loads(config_json)),
            meta=ocp.args.JsonSave(meta),
        )
        try:
            self._manager.save(step, args=args, metrics=metrics or None, force=True)
        except OSError as e:
            raise CheckpointError(f"{self.directory}: could not write checkpoint {step} "
                                  f"({e}); earlier checkpoints are intact") from e
        self._writing = step

    def restore(self, step: int, abstract_state: TrainState, *, data_iter) -> tuple[TrainState, dict]:
        """Restore state (onto the shardings in `abstract_state`) and the data iterator."""
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            data_iter=grain.checkpoint.CheckpointRestore(data_iter),
            meta=ocp.args.JsonRestore(),
        ))
        return restored["state"], dict(restored["meta"])

    def wait(self) -> None:
        """Block until the last asynchronous save is committed; surface its error if any.

        Background writes fail with OSError (JSON items), ValueError (TensorStore's arrays:
        "RESOURCE_EXHAUSTED: ... No space left on device") or RuntimeError (Orbax's futures);
        whichever it is, the checkpoint is incomplete and is reported as such.
        """
        step, self._writing = self._writing, None
        try:
            self._manager.wait_until_finished()
        except (OSError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{self.directory}: could not write checkpoint {step} "
                                  f"({_first_line(e)}); earlier checkpoints are intact") from e

    def close(self) -> None:
        self._manager.close()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def resolve_step(directory: str | os.PathLike, *, step: int | None = None,
                 best: bool = False) -> int:
    """Which checkpoint step to read: `step`, the best one, or the latest (default)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: no such checkpoint directory")
    options = ocp.CheckpointManagerOptions(read_only=True, best_fn=_best_metric,
                                           best_mode="min")
    with ocp.CheckpointManager(directory.absolute(), options=options) as manager:
        steps = list(manager.all_steps())
        if not steps:
            raise CheckpointError(f"{directory}: holds no complete checkpoint")
        if step is not None:
            if step not in steps:
                raise CheckpointError(f"{directory}: no checkpoint for step {step} "
                                      f"(available: {sorted(steps)})")
            return step
        if best:
            chosen = manager.best_step()
            if chosen is None:
                raise CheckpointError(f"{directory}: no checkpoint carries validation "
                                      "metrics, so there is no best one; use --step")
            return chosen
        return manager.latest_step()


def read_config(directory: str | os.PathLike, step: int) -> dict[str, Any]:
    """The run config saved with a checkpoint, as a plain dict."""
    path = Path(directory) / str(step) / "config"
    with ocp.CheckpointManager(Path(directory).absolute(),
                               options=ocp.CheckpointManagerOptions(read_only=True),
                               item_handlers={"config": ocp.JsonCheckpointHandler()}) as m:
        try:
            return dict(m.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
                        ["config"])
        except Exception as e:  # orbax raises several types for a missing/damaged item
            raise CheckpointError(f"{path}: cannot read the saved config ({e})") from e


def restore_generator(directory: str | os.PathLike, step: int, abstract_variables: dict) -> dict:
    """G's inference variables only ({"params", "batch_stats"}), onto `abstract_variables`."""
    with ocp.CheckpointManager(Path(directory).absolute(),
                               options=ocp.CheckpointManagerOptions(read_only=True),
                               item_handlers={"generator": ocp.StandardCheckpointHandler()}) as m:
        restored = m.restore(step, args=ocp.args.Composite(
            generator=ocp.args.StandardRestore(abstract_variables)))
    return restored["generator"]
