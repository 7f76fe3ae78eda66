"""`jaxcolor.checkpoints`: the format both wings share: which step is read, what a checkpoint
records of a validation summary, and what "best" means."""

from __future__ import annotations

import pytest

from jaxcolor import checkpoints
from jaxcolor.errors import UsageError
from tests.support import TINY_RUN_STEPS, trained_workdir


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return trained_workdir(tmp_path_factory)


def test_best_is_the_lowest_validation_score(workdir):
    assert checkpoints.resolve_step(workdir / "checkpoints", best=True) == TINY_RUN_STEPS


def test_the_saved_meta_names_the_best_metric_and_its_value(workdir):
    metas = checkpoints.read_metas(workdir / "checkpoints")
    assert sorted(metas) == [2, TINY_RUN_STEPS]
    evaluated = metas[TINY_RUN_STEPS]
    assert evaluated["best_metric"] == "l1"
    assert evaluated["best_value"] == evaluated["metrics"]["val/ab_mae"]
    assert {"val/psnr", "val/psnr_gray", "val/delta_cf", checkpoints.SCORE_KEY} <= \
        set(evaluated["metrics"])
    assert metas[2]["best_value"] is None and metas[2]["metrics"] == {}


SUMMARY = {"ab_mae": 8.8, "psnr": 21.5, "psnr_gray": 22.5, "delta_cf": 6.0, "cf": 30.0}


@pytest.mark.parametrize("metric, summary, score", [
    ("l1", SUMMARY, 8.8), ("psnr", SUMMARY, -21.5), ("delta_cf", SUMMARY, 6.0),
    # 1 dB below the gray image: 0.5 dB short of the constraint, ranked after every state
    # that meets it, by the shortfall.
    ("combined", SUMMARY, checkpoints.INFEASIBLE + 0.5),
    ("combined", {**SUMMARY, "psnr": 22.1}, 6.0),  # within 0.5 dB: ranked by delta-CF
])
def test_each_best_metric_scores_lower_is_better(metric, summary, score):
    recorded = checkpoints.checkpoint_metrics(summary, metric)
    assert recorded[checkpoints.SCORE_KEY] == pytest.approx(score)
    assert checkpoints.best_score(recorded) == pytest.approx(score)
    assert recorded["val/ab_mae"] == 8.8 and "val/cf" not in recorded
    assert checkpoints.recorded_summary(recorded) == {
        **{k: v for k, v in summary.items() if k != "cf"}, "score": pytest.approx(score)}


def test_checkpoints_from_before_the_score_rank_by_validation_l1():
    assert checkpoints.best_score({"val/l1": 0.25}) == 0.25


@pytest.mark.parametrize("name", ["l1", "psnr", "delta_cf", "combined"])
def test_best_metric_reads_the_config_once_and_checks_it(name):
    import ml_collections

    assert checkpoints.best_metric(ml_collections.ConfigDict({"best_metric": name})) == name
    assert checkpoints.best_metric(ml_collections.ConfigDict()) == checkpoints.DEFAULT_BEST_METRIC
    with pytest.raises(UsageError, match="config.best_metric: unknown 'fid'; choose one of"):
        checkpoints.best_metric(ml_collections.ConfigDict({"best_metric": "fid"}))
