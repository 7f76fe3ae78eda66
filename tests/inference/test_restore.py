"""`jaxcolor.inference.restore`: a checkpoint -> G and the run's config, with the one rule for
where a checkpoint is (a run workdir or its checkpoints/ directory) and which step is read."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcolor.errors import UsageError
from jaxcolor.inference import restore
from inference.tiny_run import TINY_RUN_STEPS, trained_workdir


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return trained_workdir(tmp_path_factory)


def test_a_workdir_and_its_checkpoints_directory_are_the_same_checkpoint(workdir):
    from_workdir = restore.restore(workdir)
    from_checkpoints = restore.restore(workdir / "checkpoints", step=TINY_RUN_STEPS)
    assert from_workdir.step == from_checkpoints.step == TINY_RUN_STEPS
    assert from_workdir.directory == (workdir / "checkpoints").absolute()
    assert from_workdir.config.model.backbone == "resnet18" and "data" in from_workdir.config
    for a, b in zip(jax.tree.leaves(from_workdir.variables),
                    jax.tree.leaves(from_checkpoints.variables)):
        np.testing.assert_array_equal(a, b)


def test_the_restored_generator_runs_in_eval_mode(workdir):
    restored = restore.restore(workdir, step=2)
    generator = restored.generator()
    l_norm = jnp.zeros((2, 32, 32, 1))
    first, second = generator(l_norm), generator(l_norm[:1])
    # Eval mode: BatchNorm uses running statistics, so an image's colours do not depend on
    # the rest of its batch.
    np.testing.assert_allclose(first[:1], second, atol=1e-5)
    assert first.shape == (2, 32, 32, 2)


@pytest.mark.parametrize("kwargs, message", [
    ({"step": 99}, r"no checkpoint for step 99 \(available: \[2, 3\]\)"),
])
def test_a_missing_step_is_a_usage_error(workdir, kwargs, message):
    with pytest.raises(restore.CheckpointNotFoundError, match=message) as info:
        restore.restore(workdir, **kwargs)
    assert isinstance(info.value, UsageError)


def test_a_directory_without_checkpoints_is_a_usage_error(tmp_path):
    with pytest.raises(restore.CheckpointNotFoundError, match="no such checkpoint directory"):
        restore.restore(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(restore.CheckpointNotFoundError, match="holds no complete checkpoint"):
        restore.restore(tmp_path / "empty")


def test_best_is_the_lowest_validation_score(workdir):
    assert restore.resolve_step(workdir / "checkpoints", best=True) == TINY_RUN_STEPS


def test_the_saved_meta_names_the_best_metric_and_its_value(workdir):
    metas = restore.read_metas(workdir / "checkpoints")
    assert sorted(metas) == [2, TINY_RUN_STEPS]
    evaluated = metas[TINY_RUN_STEPS]
    assert evaluated["best_metric"] == "l1"
    assert evaluated["best_value"] == evaluated["metrics"]["val/l1"]
    assert {"val/psnr", "val/psnr_gray", "val/delta_cf", restore.SCORE_KEY} <= \
        set(evaluated["metrics"])
    assert metas[2]["best_value"] is None and metas[2]["metrics"] == {}


SUMMARY = {"l1": 0.08, "psnr": 21.5, "psnr_gray": 22.5, "delta_cf": 6.0, "cf_pred": 30.0}


@pytest.mark.parametrize("metric, summary, score", [
    ("l1", SUMMARY, 0.08), ("psnr", SUMMARY, -21.5), ("delta_cf", SUMMARY, 6.0),
    # 1 dB below the gray image: 0.5 dB short of the constraint, ranked after every state
    # that meets it, by the shortfall.
    ("combined", SUMMARY, restore.INFEASIBLE + 0.5),
    ("combined", {**SUMMARY, "psnr": 22.1}, 6.0),  # within 0.5 dB: ranked by delta-CF
])
def test_each_best_metric_scores_lower_is_better(metric, summary, score):
    recorded = restore.checkpoint_metrics(summary, metric)
    assert recorded[restore.SCORE_KEY] == pytest.approx(score)
    assert restore.best_score(recorded) == pytest.approx(score)
    assert recorded["val/l1"] == 0.08 and "val/cf_pred" not in recorded


def test_checkpoints_from_before_the_score_rank_by_validation_l1():
    assert restore.best_score({"val/l1": 0.25}) == 0.25
