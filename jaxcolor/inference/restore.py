"""A training checkpoint -> the generator's variables and the run's config (Orbax only).

This module owns the checkpoint format's reading side, and with it the names the writer
(`jaxcolor.train.checkpoint`) uses. Each step directory of a run's `checkpoints/` holds:

  state      the whole TrainState (G, D, both optax states, EMA, step): training only
  generator  what inference needs: G's parameters and batch statistics (the EMA's when enabled)
  data_iter  the Grain iterator state of each process: training only
  config     the run's ConfigDict as JSON: inference rebuilds G from its `model` section
  meta       {"step", "phase", "stage", "metrics", "best_metric", "best_value"}

Inference restores `generator` and `config` alone, so colourising needs neither the
discriminator, nor optax states, nor Grain. The "best" checkpoint is the one with the lowest
validation score Orbax recorded with it (`best_score`): the score of the run's
`config.best_metric` (`BEST_METRICS`), stored with each evaluated checkpoint's metrics under
`SCORE_KEY`, so choosing the best needs no config. Checkpoints written before the score
existed carry only `val/l1`, which is then the score.

A GAN's quality peaks and then degrades (DeOldify's author picks GAN checkpoints by eye):
validation L1 keeps preferring the dull early output, so `delta_cf`, `psnr` and the
`combined` score let the validation photos decide instead. `combined` is the quality target
of BENCHMARKS.md ("Quality") as a selection rule: the most faithful colourfulness among the
states that cost at most 0.5 dB of PSNR against the gray image. (A weighted sum of delta-CF
and PSNR was tried first: it can prefer an early, barely trained state, whose random
colours happen to match the truth's colourfulness on average, to every trained one.)
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import ml_collections
import orbax.checkpoint as ocp
from flax import nnx

from jaxcolor.errors import RunError, UsageError
from jaxcolor.models import factory

ITEMS = ("state", "generator", "data_iter", "config", "meta")
BEST_METRIC = "val/l1"
"""The metric that ranks checkpoints written before `SCORE_KEY` existed (lower is better)."""
SCORE_KEY = "val/score"
"""The ranking score (lower is better) stored with each evaluated checkpoint's metrics."""
DEFAULT_BEST_METRIC = "l1"
PSNR_TOLERANCE_DB = 0.5
"""The combined score's constraint: PSNR at most this far below the gray image's."""
INFEASIBLE = 1000.0
"""Added to the combined score of an evaluation that misses the PSNR constraint."""


def _combined(m: dict) -> float:
    shortfall = m["psnr_gray"] - PSNR_TOLERANCE_DB - m["psnr"]  # dB short of the constraint
    return m["delta_cf"] if shortfall <= 0 else INFEASIBLE + shortfall


BEST_METRICS = {
    "l1": lambda m: m["l1"],  # validation L1 on ab: the pretraining objective
    "delta_cf": lambda m: m["delta_cf"],  # |mean CF(pred) - mean CF(true)|
    "psnr": lambda m: -m["psnr"],  # higher is better, so negated
    # The quality target as a rule: the lowest delta-CF among evaluations whose PSNR is
    # within PSNR_TOLERANCE_DB of the gray image's; when none is, the closest to it.
    "combined": _combined,
}
"""config.best_metric -> score (lower is better) of a validation summary (`val/*` names
without the prefix: l1, psnr, psnr_gray, delta_cf, ...)."""


def checkpoint_metrics(summary: dict, best_metric: str) -> dict[str, float]:
    """What a checkpoint records of a validation summary: the numbers the scores use and
    the score of `best_metric` under `SCORE_KEY`."""
    kept = {f"val/{k}": float(summary[k])
            for k in ("l1", "psnr", "psnr_gray", "delta_cf") if k in summary}
    return {**kept, SCORE_KEY: float(BEST_METRICS[best_metric](summary))}


class CheckpointError(RunError):
    """A checkpoint could not be written or read; the message names the directory."""


class CheckpointNotFoundError(UsageError):
    """No checkpoint where the command points (no directory, no step, no best one)."""


def best_score(metrics: dict) -> float:
    """The number Orbax ranks checkpoints by (lower is better)."""
    return float(metrics[SCORE_KEY] if SCORE_KEY in metrics else metrics[BEST_METRIC])


def checkpoint_dir(path: str | os.PathLike) -> Path:
    """A run workdir (holding checkpoints/) or a checkpoints directory -> the latter."""
    path = Path(path).expanduser()
    return path / "checkpoints" if (path / "checkpoints").is_dir() else path


def _read_only(directory: Path, **handlers) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(read_only=True, best_fn=best_score, best_mode="min")
    return ocp.CheckpointManager(directory.absolute(), options=options,
                                 item_handlers=handlers or None)


def resolve_step(directory: str | os.PathLike, *, step: int | None = None,
                 best: bool = False) -> int:
    """Which checkpoint step to read: `step`, the best one, or the latest (default)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointNotFoundError(f"{directory}: no such checkpoint directory")
    with _read_only(directory) as manager:
        steps = list(manager.all_steps())
        if not steps:
            raise CheckpointNotFoundError(f"{directory}: holds no complete checkpoint")
        if step is not None:
            if step not in steps:
                raise CheckpointNotFoundError(f"{directory}: no checkpoint for step {step} "
                                              f"(available: {sorted(steps)})")
            return step
        if best:
            chosen = manager.best_step()
            if chosen is None:
                raise CheckpointNotFoundError(f"{directory}: no checkpoint carries validation "
                                              "metrics, so there is no best one; use --step")
            return chosen
        return manager.latest_step()


def read_config(directory: str | os.PathLike, step: int) -> dict[str, Any]:
    """The run config saved with a checkpoint, as a plain dict."""
    directory = Path(directory)
    with _read_only(directory, config=ocp.JsonCheckpointHandler()) as manager:
        try:
            restored = manager.restore(step, args=ocp.args.Composite(
                config=ocp.args.JsonRestore()))
        except Exception as e:  # orbax raises several types for a missing/damaged item
            raise CheckpointError(f"{directory / str(step) / 'config'}: cannot read the saved "
                                  f"config ({e})") from e
    return dict(restored["config"])


def read_metas(directory: str | os.PathLike) -> dict[int, dict[str, Any]]:
    """Every complete checkpoint's `meta` item (step, phase, validation metrics, the best
    metric and its value), by step."""
    directory = Path(directory)
    with _read_only(directory, meta=ocp.JsonCheckpointHandler()) as manager:
        return {step: dict(manager.restore(step, args=ocp.args.Composite(
                    meta=ocp.args.JsonRestore()))["meta"]) for step in manager.all_steps()}


def restore_generator(directory: str | os.PathLike, step: int, abstract_variables: dict) -> dict:
    """G's inference variables only ({"params", "batch_stats"}), onto `abstract_variables`."""
    with _read_only(Path(directory), generator=ocp.StandardCheckpointHandler()) as manager:
        restored = manager.restore(step, args=ocp.args.Composite(
            generator=ocp.args.StandardRestore(abstract_variables)))
    return restored["generator"]


def eval_split(generator: nnx.Module) -> tuple[nnx.GraphDef, dict]:
    """(graph definition, {"params", "batch_stats"}) of a generator in eval mode (BatchNorm
    uses the running statistics): the layout of the checkpoint's `generator` item."""
    generator.eval()
    graphdef, params, batch_stats = nnx.split(generator, nnx.Param, ...)
    return graphdef, {"params": params, "batch_stats": batch_stats}


@dataclasses.dataclass(frozen=True)
class Restored:
    """A checkpoint's generator, ready to merge (`nnx.merge(graphdef, **variables)`)."""

    config: ml_collections.ConfigDict
    graphdef: nnx.GraphDef
    variables: dict  # {"params", "batch_stats"}
    step: int
    directory: Path

    def generator(self) -> nnx.Module:
        """The restored generator as an eval-mode NNX module."""
        return nnx.merge(self.graphdef, self.variables["params"], self.variables["batch_stats"])


def restore(path: str | os.PathLike, *, step: int | None = None, best: bool = False) -> Restored:
    """G and the config of a run workdir or checkpoints directory: the latest step, `step`,
    or the best by validation score."""
    directory = checkpoint_dir(path)
    step = resolve_step(directory, step=step, best=best)
    config = ml_collections.ConfigDict(read_config(directory, step))
    if "model" not in config or "data" not in config:
        raise CheckpointError(f"{directory / str(step) / 'config'}: no model/data section; not "
                              "a jaxcolor training checkpoint")
    graphdef, target = eval_split(factory.abstract_generator(config.model))
    variables = restore_generator(directory, step, target)
    return Restored(config=config, graphdef=graphdef, variables=variables, step=step,
                    directory=directory.absolute())
