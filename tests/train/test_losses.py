"""Losses against values computed by hand."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from jaxcolor.train import losses


def test_l1_is_mean_absolute_error():
    pred = jnp.array([[0.0, 1.0], [2.0, -1.0]])
    target = jnp.array([[1.0, 1.0], [0.0, 1.0]])
    # |0-1| + |1-1| + |2-0| + |-1-1| = 1 + 0 + 2 + 2 = 5, over 4 elements
    assert float(losses.l1(pred, target)) == pytest.approx(1.25)


def _bce(logit, label):
    p = 1 / (1 + math.exp(-logit))
    return -(label * math.log(p) + (1 - label) * math.log(1 - p))


def test_vanilla_gan_losses():
    real, fake = jnp.array([2.0, 0.0]), jnp.array([-1.0, 3.0])
    d = losses.discriminator_loss(real, fake, "vanilla")
    expected_d = 0.5 * ((_bce(2, 1) + _bce(0, 1)) / 2 + (_bce(-1, 0) + _bce(3, 0)) / 2)
    assert float(d) == pytest.approx(expected_d, rel=1e-5)
    g = losses.generator_adversarial_loss(fake, "vanilla")
    assert float(g) == pytest.approx((_bce(-1, 1) + _bce(3, 1)) / 2, rel=1e-5)


def test_lsgan_losses():
    real, fake = jnp.array([1.0, 3.0]), jnp.array([0.5, -1.0])
    # D: mean((r-1)^2) = (0 + 4)/2 = 2; mean(f^2) = (0.25 + 1)/2 = 0.625; half the sum = 1.3125
    assert float(losses.discriminator_loss(real, fake, "lsgan")) == pytest.approx(1.3125)
    # G: mean((f-1)^2) = (0.25 + 4)/2 = 2.125
    assert float(losses.generator_adversarial_loss(fake, "lsgan")) == pytest.approx(2.125)


def test_hinge_losses():
    real, fake = jnp.array([0.5, 2.0]), jnp.array([-2.0, 0.0])
    # D: mean(relu(1-r)) = (0.5 + 0)/2 = 0.25; mean(relu(1+f)) = (0 + 1)/2 = 0.5 -> 0.375
    assert float(losses.discriminator_loss(real, fake, "hinge")) == pytest.approx(0.375)
    assert float(losses.generator_adversarial_loss(fake, "hinge")) == pytest.approx(1.0)


def test_a_perfect_discriminator_has_low_loss_and_fooled_generator_high():
    real, fake = jnp.full((4, 4), 20.0), jnp.full((4, 4), -20.0)
    for kind in ("vanilla", "hinge"):
        assert float(losses.discriminator_loss(real, fake, kind)) < 1e-6
    assert float(losses.generator_adversarial_loss(fake, "vanilla")) > 10


def test_bf16_logits_give_float32_losses():
    x = jnp.ones((2, 3), jnp.bfloat16)
    assert losses.discriminator_loss(x, x, "lsgan").dtype == jnp.float32
    assert losses.l1(x, x * 0).dtype == jnp.float32


def test_unknown_kind_names_the_config_field():
    with pytest.raises(ValueError, match="config.gan.loss"):
        losses.discriminator_loss(jnp.zeros(1), jnp.zeros(1), "wgan")
    np.testing.assert_equal(losses.GAN_KINDS, ("vanilla", "lsgan", "hinge"))


# ---- G's reconstruction terms ------------------------------------------------------------


def _ab_norm(a, b, shape=(1, 2, 2)):
    """Normalised ab (ab / 110) [*shape, 2] of constant Lab a, b."""
    return jnp.stack([jnp.full(shape, a / 110.0), jnp.full(shape, b / 110.0)], -1)


def test_pixel_weights_come_from_the_bin_of_the_true_colour_even_at_bin_edges():
    from jaxcolor.data import prior

    table = jnp.arange(prior.BINS, dtype=jnp.float32)  # weight = bin number
    # a = -100 and b = 9 sit on / just below bin edges; float error must not move them.
    w = losses.ab_bin_weights(_ab_norm(-100, 9), table)
    assert np.asarray(w).tolist() == [[[1 * 22 + 11] * 2] * 2]
    assert float(losses.ab_bin_weights(_ab_norm(10, -10), table)[0, 0, 0]) == 12 * 22 + 10


def test_rebalanced_l1_weights_each_pixel_by_its_true_colours_bin():
    from jaxcolor.data import prior

    target = jnp.concatenate([_ab_norm(0, 0, (1, 1, 1)), _ab_norm(50, 50, (1, 1, 1))], axis=2)
    pred = jnp.zeros_like(target)
    table = jnp.ones(prior.BINS).at[prior.bin_index(50, 50)].set(3.0)
    # |errors|: pixel 0 is 0 in both channels, pixel 1 is 50/110 in both (weight 3).
    expected = (3.0 * 2 * 50 / 110) / 4
    assert float(losses.rebalanced_l1(pred, target, table)) == pytest.approx(expected, rel=1e-6)
    uniform = jnp.ones(prior.BINS)
    assert float(losses.rebalanced_l1(pred, target, uniform)) == \
        pytest.approx(float(losses.l1(pred, target)), rel=1e-6)


def _l_norm(shape=(2, 8, 8)):
    return jnp.full(shape + (1,), 0.2)  # L = 60


def test_soft_colorfulness_is_the_metric_up_to_its_epsilon():
    from jaxcolor import color, metrics

    rng = np.random.default_rng(0)
    ab = jnp.asarray(rng.uniform(-0.5, 0.5, (2, 8, 8, 2)), jnp.float32)
    rgb = color.lab_to_rgb(color.model_to_lab(_l_norm(), ab))
    np.testing.assert_allclose(np.asarray(losses.soft_colorfulness(rgb)) * 255.0,
                               np.asarray(metrics.colorfulness(rgb * 255.0)), atol=0.5)


def test_colorfulness_gap_is_zero_for_the_truth_and_pulls_dull_output_towards_it():
    import jax

    rng = np.random.default_rng(1)
    true = jnp.asarray(rng.uniform(-0.6, 0.6, (2, 8, 8, 2)), jnp.float32)
    l_norm = _l_norm()
    assert float(losses.colorfulness_gap(l_norm, true, true)) == pytest.approx(0.0, abs=1e-6)
    dull = 0.3 * true
    gap = float(losses.colorfulness_gap(l_norm, dull, true))
    assert gap > 0.05
    grad = jax.grad(lambda ab: losses.colorfulness_gap(l_norm, ab, true))(dull)
    assert float(losses.colorfulness_gap(l_norm, dull - 0.5 * grad, true)) < gap


def test_colorfulness_gap_has_a_finite_gradient_for_a_gray_prediction():
    import jax

    true = _ab_norm(30, -20, (2, 8, 8))
    gray = jnp.zeros_like(true)
    grad = jax.grad(lambda ab: losses.colorfulness_gap(_l_norm(), ab, true))(gray)
    assert np.isfinite(np.asarray(grad)).all()


def _centres():
    from jaxcolor.models.generator import bin_centres

    return bin_centres()


def test_soft_encoding_is_a_distribution_peaked_on_the_truths_bin():
    from jaxcolor import ab_grid

    q = np.asarray(losses.soft_encoding(_ab_norm(25, -35, (1,)), _centres()))[0]
    assert q.shape == (265,) and q.sum() == pytest.approx(1.0, abs=1e-5)
    centres = ab_grid.in_gamut_centres()
    assert tuple(centres[q.argmax()]) == (25.0, -35.0)
    # Half a bin from four centres: (20, -30), (30, -30), (20, -40), (30, -40) share the mass.
    q = np.asarray(losses.soft_encoding(_ab_norm(30, -40, (1,)), _centres()))[0]
    top = sorted(map(tuple, centres[np.argsort(q)[-4:]].tolist()))
    assert top == [(25.0, -45.0), (25.0, -35.0), (35.0, -45.0), (35.0, -35.0)]
    np.testing.assert_allclose(np.sort(q)[-4:], np.sort(q)[-1], rtol=1e-4)


def test_soft_encoded_ce_is_the_targets_entropy_at_its_minimum_and_weighs_pixels():
    target = _ab_norm(25, -35, (1, 2))
    q = losses.soft_encoding(target, _centres())
    entropy = float(-jnp.sum(q * jnp.log(q + 1e-30), -1).mean())
    best = float(losses.soft_encoded_ce(jnp.log(q + 1e-30), target, _centres()))
    assert best == pytest.approx(entropy, abs=1e-4)
    flat = float(losses.soft_encoded_ce(jnp.zeros((1, 2, 265)), target, _centres()))
    assert flat == pytest.approx(math.log(265), rel=1e-5) and flat > best
    weights = jnp.asarray([[1.0, 3.0]])
    assert float(losses.soft_encoded_ce(jnp.zeros((1, 2, 265)), target, _centres(), weights)) \
        == pytest.approx(2.0 * flat, rel=1e-5)
