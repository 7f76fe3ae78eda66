"""Loss functions: small, pure, float32, averaged over every element they are given.

GAN flavours (`kind`):
  vanilla  the original minimax GAN with the non-saturating G loss (pix2pix's "vanilla"):
           D: BCE(real, 1) + BCE(fake, 0);  G: BCE(fake, 1)
  lsgan    least squares (Mao et al.):  D: (real - 1)^2 + fake^2;  G: (fake - 1)^2
  hinge    D: relu(1 - real) + relu(1 + fake);  G: -fake
D's two terms are each a mean, summed and halved as pix2pix does (it slows D relative to G).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

GAN_KINDS = ("vanilla", "lsgan", "hinge")


def l1(pred: jax.Array, target: jax.Array) -> jax.Array:
    """Mean absolute error (MAE)."""
    return jnp.mean(jnp.abs(pred.astype(jnp.float32) - target.astype(jnp.float32)))


def _check_kind(kind: str) -> None:
    if kind not in GAN_KINDS:
        raise ValueError(f"config.gan.loss: unknown GAN loss {kind!r}; choose one of {GAN_KINDS}")


def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array, kind: str) -> jax.Array:
    """D's loss on a real and a generated batch of patch logits."""
    _check_kind(kind)
    real = real_logits.astype(jnp.float32)
    fake = fake_logits.astype(jnp.float32)
    if kind == "vanilla":
        loss_real = optax.sigmoid_binary_cross_entropy(real, jnp.ones_like(real)).mean()
        loss_fake = optax.sigmoid_binary_cross_entropy(fake, jnp.zeros_like(fake)).mean()
    elif kind == "lsgan":
        loss_real = jnp.mean((real - 1.0) ** 2)
        loss_fake = jnp.mean(fake**2)
    else:  # hinge
        loss_real = jnp.mean(jax.nn.relu(1.0 - real))
        loss_fake = jnp.mean(jax.nn.relu(1.0 + fake))
    return 0.5 * (loss_real + loss_fake)


def generator_adversarial_loss(fake_logits: jax.Array, kind: str) -> jax.Array:
    """G's adversarial term: how far D is from calling the generated batch real."""
    _check_kind(kind)
    fake = fake_logits.astype(jnp.float32)
    if kind == "vanilla":
        return optax.sigmoid_binary_cross_entropy(fake, jnp.ones_like(fake)).mean()
    if kind == "lsgan":
        return jnp.mean((fake - 1.0) ** 2)
    return -jnp.mean(fake)
