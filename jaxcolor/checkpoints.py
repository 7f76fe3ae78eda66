"""The checkpoint format both wings share: item names, steps, configs and metas, and what
"the best checkpoint" means.

Training writes checkpoints (`jaxcolor.train.checkpoint`, the Orbax writer) and inference
reads them (`jaxcolor.inference.restore`, G's variables); neither may import the other, so
the format lives here, on the ground floor, with nothing of either: no writer, no model, no
optax, no Grain. Each step directory of a run's `checkpoints/` holds:

  state      the whole TrainState (G, D, both optax states, EMA, step): training only
  generator  what inference needs: G's parameters and batch statistics (the EMA's when enabled)
  data_iter  the Grain iterator state of each process: training only
  config     the run's ConfigDict as JSON: inference rebuilds G from its `model` section
  meta       {"step", "phase", "stage", "metrics", "best_metric", "best_value"}

"Best" is the lowest validation score Orbax recorded with a checkpoint (`best_score`): the
score of the run's `config.best_metric` (`BEST_METRICS`) of the validation summary
(`jaxcolor.evaluator`), stored with each evaluated checkpoint's metrics under `SCORE_KEY`,
so choosing the best needs no config. Checkpoints written before the score existed carry
only `val/l1`, which is then the score.

A GAN's quality peaks and then degrades (DeOldify's author picks GAN checkpoints by eye):
validation ab error keeps preferring the dull early output, so `delta_cf`, `psnr` and the
`combined` score let the validation photos decide instead. `combined` is the quality target
of BENCHMARKS.md ("Quality") as a selection rule: the most faithful colourfulness among the
states that cost at most 0.5 dB of PSNR against the gray image. (A weighted sum of delta-CF
and PSNR was tried first: it can prefer an early, barely trained state, whose random
colours happen to match the truth's colourfulness on average, to every trained one.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

from jaxcolor.errors import RunError, UsageError

ITEMS = ("state", "generator", "data_iter", "config", "meta")
LEGACY_SCORE_KEY = "val/l1"
"""The metric that ranks checkpoints written before `SCORE_KEY` existed (lower is better)."""
SCORE_KEY = "val/score"
"""The ranking score (lower is better) stored with each evaluated checkpoint's metrics."""
DEFAULT_BEST_METRIC = "l1"
PSNR_TOLERANCE_DB = 0.5
"""The combined score's constraint: PSNR at most this far below the gray image's."""
INFEASIBLE = 1000.0
"""Added to the combined score of an evaluation that misses the PSNR constraint."""
RECORDED = ("ab_mae", "psnr", "psnr_gray", "delta_cf")
"""The summary numbers a checkpoint records (`val/NAME`): what every score is made of."""


def _combined(m: dict) -> float:
    shortfall = m["psnr_gray"] - PSNR_TOLERANCE_DB - m["psnr"]  # dB short of the constraint
    return m["delta_cf"] if shortfall <= 0 else INFEASIBLE + shortfall


BEST_METRICS = {
    "l1": lambda m: m["ab_mae"],  # mean |ab| error: the pretraining objective's measure
    "delta_cf": lambda m: m["delta_cf"],  # |mean CF(pred) - mean CF(true)|
    "psnr": lambda m: -m["psnr"],  # higher is better, so negated
    # The quality target as a rule: the lowest delta-CF among evaluations whose PSNR is
    # within PSNR_TOLERANCE_DB of the gray image's; when none is, the closest to it.
    "combined": _combined,
}
"""config.best_metric -> score (lower is better) of a validation summary (the names of
`jaxcolor.evaluator.summarize`: ab_mae, psnr, psnr_gray, delta_cf, ...)."""


class CheckpointError(RunError):
    """A checkpoint could not be written or read; the message names the directory."""


class CheckpointNotFoundError(UsageError):
    """No checkpoint where the command points (no directory, no step, no best one)."""


def best_metric(config) -> str:
    """The run's `config.best_metric` (default `DEFAULT_BEST_METRIC`), refused in one line
    unless it names a score: the one place the field is read."""
    name = str(config.get("best_metric", DEFAULT_BEST_METRIC))
    if name not in BEST_METRICS:
        raise UsageError(f"config.best_metric: unknown {name!r}; choose one of "
                         f"{', '.join(BEST_METRICS)}")
    return name


def score(summary: dict, metric: str) -> float:
    """The score (lower is better) of a validation summary by `metric`."""
    return float(BEST_METRICS[metric](summary))


def checkpoint_metrics(summary: dict, metric: str) -> dict[str, float]:
    """What a checkpoint records of a validation summary: the numbers the scores use
    (`val/NAME`) and the score of `metric` under `SCORE_KEY`."""
    kept = {f"val/{k}": float(summary[k]) for k in RECORDED if k in summary}
    return {**kept, SCORE_KEY: score(summary, metric)}


def recorded_summary(metrics: dict) -> dict[str, float]:
    """The summary numbers a checkpoint's metrics hold (`val/` removed): what `score` takes."""
    return {k.removeprefix("val/"): v for k, v in metrics.items() if k.startswith("val/")}


def best_score(metrics: dict) -> float:
    """The number Orbax ranks checkpoints by (lower is better)."""
    return float(metrics[SCORE_KEY] if SCORE_KEY in metrics else metrics[LEGACY_SCORE_KEY])


def checkpoint_dir(path: str | os.PathLike) -> Path:
    """A run workdir (holding checkpoints/) or a checkpoints directory -> the latter."""
    path = Path(path).expanduser()
    return path / "checkpoints" if (path / "checkpoints").is_dir() else path


def read_only(directory: str | os.PathLike, **handlers) -> ocp.CheckpointManager:
    """A manager that reads `directory` without creating or deleting anything; `handlers`
    name the items it will restore (`item=ocp.JsonCheckpointHandler()`, ...)."""
    options = ocp.CheckpointManagerOptions(read_only=True, best_fn=best_score, best_mode="min")
    return ocp.CheckpointManager(Path(directory).absolute(), options=options,
                                 item_handlers=handlers or None)


def resolve_step(directory: str | os.PathLike, *, step: int | None = None,
                 best: bool = False) -> int:
    """Which checkpoint step to read: `step`, the best one, or the latest (default)."""
    directory = Path(directory)
    if directory.is_file():  # an exported .onnx, say: other runtimes read those, not us
        raise CheckpointNotFoundError(f"{directory}: a file, not a checkpoint directory (a run "
                                      "directory, its checkpoints/, or a model file .npz)")
    if not directory.is_dir():
        raise CheckpointNotFoundError(f"{directory}: no such checkpoint directory")
    with read_only(directory) as manager:
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
    with read_only(directory, config=ocp.JsonCheckpointHandler()) as manager:
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
    with read_only(directory, meta=ocp.JsonCheckpointHandler()) as manager:
        return {step: dict(manager.restore(step, args=ocp.args.Composite(
                    meta=ocp.args.JsonRestore()))["meta"]) for step in manager.all_steps()}


def read_generator(directory: str | os.PathLike, step: int, abstract_variables: dict) -> dict:
    """The `generator` item ({"params", "batch_stats"}: what inference needs of G, the EMA's
    when the run kept one) of checkpoint `step`, onto `abstract_variables`."""
    with read_only(directory, generator=ocp.StandardCheckpointHandler()) as manager:
        restored = manager.restore(step, args=ocp.args.Composite(
            generator=ocp.args.StandardRestore(abstract_variables)))
    return restored["generator"]
