"""The one evaluator: per-image metrics on device and host agree, and the set's summary."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcolor import color, evaluator, metrics
from tests.support import colourful_images


def test_host_and_device_measure_the_same_numbers():
    true = colourful_images(3, 40, seed=1)
    pred = np.clip(true.astype(np.int32) + np.array([20, -10, 5]), 0, 255).astype(np.uint8)
    host = evaluator.image_metrics(pred, true, xp=np)
    device = jax.jit(evaluator.image_metrics)(jnp.asarray(pred, jnp.float32),
                                             jnp.asarray(true, jnp.float32))
    assert set(host) == set(device) == {*evaluator.PER_IMAGE, "cf_true", "psnr_gray",
                                        "ssim_gray", "ab_mae_gray", "ab_auc_gray"}
    for name in host:
        assert np.shape(host[name]) == (3,), name
        np.testing.assert_allclose(np.asarray(device[name]), host[name], rtol=2e-4,
                                   err_msg=name)


def test_the_gray_image_keeps_the_truth_lightness_and_has_no_colour():
    true = colourful_images(2, 32, seed=2)
    gray = evaluator.gray_image(true, xp=np)
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    L_true = color.rgb_to_lab_np(true)[..., 0]
    L_gray = color.rgb_to_lab_np(gray.astype(np.uint8))[..., 0]
    assert np.abs(L_true - L_gray).max() < 0.5
    scores = evaluator.image_metrics(gray, true, xp=np)  # the gray image as the prediction
    for name in ("psnr", "ssim", "ab_mae", "ab_auc"):
        np.testing.assert_array_equal(scores[name], scores[f"{name}_gray"], err_msg=name)
    np.testing.assert_array_equal(scores["cf"], 0.0)


def test_a_perfect_prediction_beats_the_gray_image():
    true = colourful_images(2, 32, seed=3)
    scores = evaluator.image_metrics(true, true, xp=np)
    assert np.isinf(scores["psnr"]).all() and (scores["ab_mae"] == 0).all()
    assert (scores["ab_mae_gray"] > 5).all() and (scores["ssim"] > scores["ssim_gray"]).all()


def test_summarize_means_delta_cf_and_count():
    per_image = {"psnr": np.array([20.0, 30.0]), "cf": jnp.array([10.0, 20.0]),
                 "cf_true": np.array([30.0, 40.0])}
    assert evaluator.summarize(per_image) == {
        "psnr": 25.0, "cf": 15.0, "cf_true": 35.0, "delta_cf": 20.0, "delta_cf_gray": 35.0,
        "images": 2}
    assert "delta_cf" not in evaluator.summarize({"psnr": [1.0]})
    with pytest.raises(metrics.MetricInputError, match="'ab_pred'"):
        evaluator.summarize({"ab_pred": np.zeros((2, 4, 4, 2))})


def test_the_table_puts_each_number_beside_the_gray_image():
    true = colourful_images(4, 32, seed=4)
    summary = evaluator.summarize(evaluator.image_metrics(true // 2 + 60, true, xp=np))
    model, gray = evaluator.model_and_gray(summary)
    assert gray["cf"] == 0.0 and gray["delta_cf"] == summary["cf_true"]
    assert model["psnr"] == summary["psnr"] and gray["psnr"] == summary["psnr_gray"]
    table = evaluator.format_table(summary)
    assert f"{summary['psnr']:8.2f}{summary['psnr_gray']:8.2f}" in table


def _per_image(n, seed, psnr_shift=0.0, cf_scale=1.0):
    rng = np.random.default_rng(seed)
    truth_cf = rng.uniform(20, 60, n)
    return {"psnr": rng.normal(22 + psnr_shift, 2, n), "psnr_gray": rng.normal(22, 2, n),
            "cf": truth_cf * cf_scale + rng.normal(0, 5, n), "cf_true": truth_cf}


def test_bootstrap_intervals_hold_the_estimate_and_shrink_with_more_photos():
    small, large = _per_image(50, 0), _per_image(2000, 0)
    ci_small, ci_large = evaluator.bootstrap(small), evaluator.bootstrap(large)
    for name in ("psnr", "psnr_gain", "delta_cf"):
        estimate, low, high = ci_small[name]
        assert low <= estimate <= high, name
        assert ci_large[name][2] - ci_large[name][1] < 0.5 * (high - low), name
    summary = evaluator.summarize(large)
    assert ci_large["psnr"][0] == pytest.approx(summary["psnr"])
    assert ci_large["delta_cf"][0] == pytest.approx(summary["delta_cf"])
    assert ci_large["psnr_gain"][0] == pytest.approx(summary["psnr"] - summary["psnr_gray"])


def test_a_paired_difference_is_found_only_where_there_is_one():
    base = _per_image(400, 1)
    better = {**base, "psnr": base["psnr"] + 0.5}  # the same photos, 0.5 dB better each
    ci = evaluator.bootstrap(better, base)
    assert ci["psnr_diff"][1] > 0.4 and ci["psnr_diff"][2] < 0.6  # paired: tight around 0.5
    same = {**base, "psnr": base["psnr"] + np.random.default_rng(2).normal(0, 0.5, 400)}
    low, high = evaluator.bootstrap(same, base)["psnr_diff"][1:]
    assert low < 0 < high  # no difference
    duller = {**base, "cf": base["cf"] * 0.6}
    assert evaluator.bootstrap(duller, base)["delta_cf_diff"][1] > 0  # worse colourfulness
    with pytest.raises(metrics.MetricInputError, match="same photos"):
        evaluator.bootstrap(base, _per_image(10, 3))
