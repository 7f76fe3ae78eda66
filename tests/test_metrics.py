"""Metrics against scikit-image and against values worked out by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import data as skdata
from skimage import metrics as skmetrics

from jaxcolor import metrics


def _sk_ssim(pred, true):
    return skmetrics.structural_similarity(
        pred, true, channel_axis=-1, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=1.0)


def _sk_psnr(pred, true):
    with np.errstate(divide="ignore"):
        return skmetrics.peak_signal_noise_ratio(true, pred, data_range=1.0)


def _astronaut_pairs():
    """Real 64x48 crops with targets and predictions at several noise levels, incl. exact."""
    rng = np.random.default_rng(0)
    img = skdata.astronaut().astype(np.float64) / 255.0
    crops = [img[y:y + 64, x:x + 48] for y, x in [(30, 200), (250, 100), (400, 380)]]
    true, pred = [], []
    for crop, noise in zip(crops * 2, [0.0, 0.003, 0.02, 0.05, 0.1, 0.3]):
        true.append(crop)
        pred.append(np.clip(crop + noise * rng.standard_normal(crop.shape), 0.0, 1.0))
    return np.stack(pred), np.stack(true)


def _random_pairs():
    rng = np.random.default_rng(1)
    true = rng.random((4, 23, 31, 3))
    pred = np.clip(true + rng.normal(0, 0.2, true.shape), 0, 1)
    return pred, true


XPS = pytest.mark.parametrize("xp", [jnp, np], ids=["jnp", "np"])


@XPS
@pytest.mark.parametrize("make", [_astronaut_pairs, _random_pairs], ids=["astronaut", "random"])
def test_psnr_and_ssim_match_skimage(make, xp):
    pred, true = make()
    psnr = np.asarray(metrics.psnr(pred, true, xp=xp))
    ssim = np.asarray(metrics.ssim(pred, true, xp=xp))
    assert psnr.shape == ssim.shape == (len(pred),)
    np.testing.assert_allclose(psnr, [_sk_psnr(p, t) for p, t in zip(pred, true)], rtol=1e-5)
    np.testing.assert_allclose(ssim, [_sk_ssim(p, t) for p, t in zip(pred, true)], atol=1e-4)


@XPS
def test_identical_images_give_infinite_psnr_and_unit_ssim(xp):
    img = skdata.astronaut()[:32, :32].astype(np.float32) / 255.0
    assert np.isposinf(float(metrics.psnr(img, img, xp=xp)))
    assert float(metrics.ssim(img, img, xp=xp)) == pytest.approx(1.0, abs=1e-6)


def test_numpy_and_jax_give_the_same_numbers():
    """Evaluation measures on the host (numpy, any image size, no compiling), the eval step
    on the device: one implementation, one answer."""
    rng = np.random.default_rng(7)
    pred, true = (rng.integers(0, 256, (2, 37, 53, 3), np.uint8) for _ in range(2))
    pred_ab, true_ab = (rng.normal(0, 30, (2, 37, 53, 2)).astype(np.float32) for _ in range(2))
    for name, args in (("psnr", (pred / 255.0, true / 255.0)), ("ssim", (pred / 255, true / 255)),
                       ("ab_mae", (pred_ab, true_ab)), ("ab_auc", (pred_ab, true_ab)),
                       ("colorfulness", (pred,))):
        fn = getattr(metrics, name)
        np.testing.assert_allclose(np.asarray(fn(*args, xp=np)), np.asarray(fn(*args)),
                                   rtol=2e-5, atol=1e-5, err_msg=name)


def test_ssim_border_handling_matches_skimage_and_unrelated_images_score_low():
    # Only the top two rows differ: they reach the result solely through windows near the
    # border, where reflect-padding-then-crop (skimage) and VALID filtering must agree.
    rng = np.random.default_rng(2)
    true = rng.random((20, 20, 3))
    pred = true.copy()
    pred[:2] = 1.0 - pred[:2]
    assert float(metrics.ssim(pred, true)) == pytest.approx(_sk_ssim(pred, true), abs=1e-4)
    assert float(metrics.ssim(pred, true)) < 1.0
    assert float(metrics.ssim(rng.random((20, 20, 3)), true)) < 0.1


def test_ssim_rejects_images_smaller_than_the_window():
    with pytest.raises(metrics.MetricInputError, match="smaller than the 11x11"):
        metrics.ssim(np.zeros((10, 40, 3)), np.zeros((10, 40, 3)))


def test_mismatched_shapes_are_rejected():
    with pytest.raises(metrics.MetricInputError, match="psnr"):
        metrics.psnr(np.zeros((2, 8, 8, 3)), np.zeros((2, 8, 9, 3)))
    with pytest.raises(metrics.MetricInputError, match=r"\[\.\.\., H, W, 2\]"):
        metrics.ab_mae(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))


def test_ab_mae_by_hand():
    # Image 0: errors |a| = 2, 0 and |b| = 4, 2 -> (2 + 4 + 0 + 2) / 4 = 2.
    # Image 1: exact -> 0.
    true = np.zeros((2, 1, 2, 2))
    pred = np.zeros((2, 1, 2, 2))
    pred[0, 0, 0] = [2.0, -4.0]
    pred[0, 0, 1] = [0.0, 2.0]
    np.testing.assert_allclose(metrics.ab_mae(pred, true), [2.0, 0.0])


def test_colorfulness_by_hand():
    # 2x1 image, pixels (100, 0, 0) and (0, 0, 0):
    #   rg = |R - G| = 100, 0;   yb = |(R + G)/2 - B| = 50, 0
    #   var rg = 50^2 = 2500, var yb = 25^2 = 625  -> sqrt(3125)
    #   mean rg = 50, mean yb = 25                 -> 0.3 * sqrt(2500 + 625) = 0.3 * sqrt(3125)
    #   CF = 1.3 * sqrt(3125) = 72.6722...
    two_pixels = np.array([[[100.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]]])
    # Flat (30, 0, 55): no spread; rg = 30, yb = |15 - 55| = 40 -> CF = 0.3 * 50 = 15.
    flat = np.broadcast_to(np.array([30.0, 0.0, 55.0]), (2, 1, 3))
    cf = np.asarray(metrics.colorfulness(np.stack([two_pixels, flat])))
    np.testing.assert_allclose(cf, [1.3 * np.sqrt(3125.0), 15.0], rtol=1e-6)


def test_colorfulness_of_gray_is_zero_and_of_photo_is_plausible():
    gray = np.repeat(np.random.default_rng(3).uniform(0, 255, (16, 16, 1)), 3, axis=-1)
    assert float(metrics.colorfulness(gray)) == pytest.approx(0.0, abs=1e-4)
    photo = skdata.astronaut().astype(np.float32)
    assert 20.0 < float(metrics.colorfulness(photo)) < 150.0


def test_delta_colorfulness_uses_set_means():
    # Means 20 and 25: the set is 5 short, although image by image it is off by 10 and 20.
    assert float(metrics.delta_colorfulness([10.0, 30.0], [20.0, 30.0])) == pytest.approx(5.0)
    assert float(metrics.delta_colorfulness([30.0, 10.0], [10.0, 30.0])) == 0.0


def _ab_pair(errors):
    """One-row image whose per-pixel ab error (Euclidean) is `errors`: (0.6 e, 0.8 e)."""
    e = np.asarray(errors, np.float64)
    pred = np.stack([0.6 * e, -0.8 * e], -1)[None]
    return pred + 5.0, np.zeros_like(pred) + 5.0


def test_ab_auc_by_hand():
    assert float(metrics.ab_auc(*_ab_pair([0.0, 0.0]))) == 1.0
    assert float(metrics.ab_auc(*_ab_pair([200.0, 200.0]))) == 0.0
    # Half exact, half off by 200: each threshold has half the pixels -> 0.5.
    assert float(metrics.ab_auc(*_ab_pair([0.0, 200.0]))) == pytest.approx(0.5)
    # Error exactly 10 (a 6-8-10 triangle): within t for t = 10..150, i.e. 141 of the 151
    # thresholds -> 141/151 (a trapezoid would give 140.5/150; this pins the definition).
    pred, true = np.array([[[6.0, 8.0]]]), np.zeros((1, 1, 2))
    assert float(metrics.ab_auc(pred, true)) == pytest.approx(141 / 151, abs=1e-7)


def test_ab_auc_matches_the_threshold_table_definition():
    rng = np.random.default_rng(4)
    pred, true = rng.normal(0, 60, (3, 9, 7, 2)), rng.normal(0, 60, (3, 9, 7, 2))
    for max_threshold, steps in [(150.0, 151), (150.0, 31), (80.0, 17)]:
        thresholds = np.linspace(0, max_threshold, steps)
        error = np.linalg.norm(pred - true, axis=-1)
        table = (error[..., None] <= thresholds).mean(axis=(1, 2))  # [B, steps]
        np.testing.assert_allclose(metrics.ab_auc(pred, true, max_threshold, steps),
                                   table.mean(-1), atol=1e-6)


def test_metrics_jit_on_batches_with_leading_axes():
    rng = np.random.default_rng(5)
    rgb_pred, rgb_true = rng.random((2, 3, 16, 12, 3)), rng.random((2, 3, 16, 12, 3))
    ab_pred, ab_true = rng.normal(0, 30, (2, 3, 16, 12, 2)), rng.normal(0, 30, (2, 3, 16, 12, 2))

    @jax.jit
    def eval_metrics(rgb_pred, rgb_true, ab_pred, ab_true):
        return {
            "psnr": metrics.psnr(rgb_pred, rgb_true),
            "ssim": metrics.ssim(rgb_pred, rgb_true),
            "ab_mae": metrics.ab_mae(ab_pred, ab_true),
            "ab_auc": metrics.ab_auc(ab_pred, ab_true),
            "cf_pred": metrics.colorfulness(rgb_pred * 255.0),
        }

    args = [jnp.asarray(a, jnp.float32) for a in (rgb_pred, rgb_true, ab_pred, ab_true)]
    jitted = eval_metrics(*args)
    for name, value in jitted.items():
        assert value.shape == (2, 3), name
        # Batched and jitted results agree with one image at a time, unjitted, on host input.
        single = eval_metrics.__wrapped__(*(a[1, 2] for a in (rgb_pred, rgb_true,
                                                              ab_pred, ab_true)))[name]
        np.testing.assert_allclose(value[1, 2], single, rtol=1e-4, err_msg=name)
