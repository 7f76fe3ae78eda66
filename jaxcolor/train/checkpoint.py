"""Orbax checkpoints of a run: the writer, and the resume of training.

The format (items, the best-checkpoint score, the errors) is `jaxcolor.checkpoints`', which
colourising reads without anything of training; this writer follows it. Saves are
asynchronous; Orbax writes into a temporary directory and renames it when complete (and
commits a marker on file systems without atomic rename), so a run killed mid-save never
leaves a checkpoint that restores half-written: `latest_step()` only sees finished ones.
Retention: the latest `keep` checkpoints plus the best `keep_best` by the validation score
(lower is better).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import grain
import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from jaxcolor.checkpoints import (DEFAULT_BEST_METRIC, ITEMS, SCORE_KEY, CheckpointError,
                                  best_score)
from jaxcolor.train.state import TrainState, generator_variables


class Checkpointer:
    """Thin wiring of `ocp.CheckpointManager` for one run's `checkpoints/` directory."""

    def __init__(self, directory: str | os.PathLike, *, keep: int = 3, keep_best: int = 1,
                 async_save: bool = True, timeout_s: int = 1_200):
        """`timeout_s`: how long an asynchronous save may take before it counts as failed.
        A write can stall for good, not only fail: TensorStore's completion of an array
        write posted to Orbax's event loop after that loop was closed by a sibling item's
        ENOSPC never arrives, and a stuck network mount never answers. Bounded, the run
        stops with the checkpoint error (earlier checkpoints intact) instead of hanging."""
        self.directory = Path(directory).absolute()
        self.timeout_s = int(timeout_s)
        policies = [ocp.checkpoint_managers.LatestN(n=max(int(keep), 1))]
        if keep_best > 0:
            policies.append(ocp.checkpoint_managers.BestN(
                get_metric_fn=best_score, reverse=True, n=int(keep_best),
                keep_checkpoints_without_metrics=False))
        options = ocp.CheckpointManagerOptions(
            enable_async_checkpointing=async_save,
            async_options=ocp.AsyncOptions(timeout_secs=self.timeout_s),
            preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies),
            best_fn=best_score, best_mode="min",
            create=True,
            # Saves cut short by a kill leave `N.orbax-checkpoint-tmp` directories behind; they
            # are never restored, and without this they would pile up (a full checkpoint each).
            cleanup_tmp_directories=True,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=ITEMS)
        self._writing: int | None = None  # step of the asynchronous save in flight, if any

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, state: TrainState, *, data_iter, config_json: str, phase: str,
             stage: int | None = None, metrics: dict[str, float] | None = None,
             best_metric: str = DEFAULT_BEST_METRIC) -> None:
        """Start an asynchronous save of `state` at its own step (returns once the device
        arrays are copied to the host, so the caller may donate them right away).

        The previous save is waited for first (Orbax's `save` would wait for it anyway), so
        that its failure is reported with its own step, not this one's.
        """
        self.wait()
        step = int(jax.device_get(state.step))
        meta = {"step": step, "phase": phase, "stage": stage, "metrics": metrics or {},
                "best_metric": best_metric,
                "best_value": (metrics or {}).get(SCORE_KEY)}  # None: not evaluated
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

    def restore(self, step: int, abstract_state: TrainState, *,
                data_iter) -> tuple[TrainState, dict]:
        """Restore state (onto the shardings in `abstract_state`) and the data iterator.

        A run checkpointed before the EMA of G had batch statistics of its own resumes with
        the live statistics as their starting average."""
        legacy = (abstract_state.g_ema_batch_stats is not None
                  and "g_ema_batch_stats" not in self._state_fields(step))
        target = abstract_state
        if legacy:  # the fields as a dict: orbax matches a dataclass's None field to nothing
            target = {f.name: getattr(abstract_state, f.name)
                      for f in dataclasses.fields(abstract_state) if f.name != "g_ema_batch_stats"}
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target),
            data_iter=grain.checkpoint.CheckpointRestore(data_iter),
            meta=ocp.args.JsonRestore(),
        ))
        state = restored["state"]
        if legacy:
            state = TrainState(**state, g_ema_batch_stats=jax.tree.map(jnp.copy,
                                                                       state["g_batch_stats"]))
        return state, dict(restored["meta"])

    def _state_fields(self, step: int) -> set[str]:
        """The TrainState fields checkpoint `step` holds (from its metadata, no arrays read)."""
        metadata = ocp.StandardCheckpointHandler().metadata(self.directory / str(step) / "state")
        return set(metadata.tree)

    def wait(self) -> None:
        """Block until the last asynchronous save is committed; surface its error if any.

        Background writes fail with OSError (JSON items), ValueError (TensorStore's arrays:
        "RESOURCE_EXHAUSTED: ... No space left on device") or RuntimeError (Orbax's futures),
        or never finish (TimeoutError after `timeout_s`); whichever it is, the checkpoint is
        incomplete and is reported as such.
        """
        step, self._writing = self._writing, None
        try:
            self._manager.wait_until_finished()
        except TimeoutError as e:  # an OSError: caught first, for its own message
            raise CheckpointError(f"{self.directory}: could not write checkpoint {step} "
                                  f"(not finished within config.checkpoint_timeout_s = "
                                  f"{self.timeout_s} s); earlier checkpoints are intact") from e
        except (OSError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{self.directory}: could not write checkpoint {step} "
                                  f"({_first_line(e)}); earlier checkpoints are intact") from e

    def close(self) -> None:
        self._manager.close()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

