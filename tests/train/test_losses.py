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
