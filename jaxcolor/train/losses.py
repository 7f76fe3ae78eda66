"""Loss functions: small, pure, float32, averaged over every element they are given.

GAN flavours (`kind`):
  vanilla  the original minimax GAN with the non-saturating G loss (pix2pix's "vanilla"):
           D: BCE(real, 1) + BCE(fake, 0);  G: BCE(fake, 1)
  lsgan    least squares (Mao et al.):  D: (real - 1)^2 + fake^2;  G: (fake - 1)^2
  hinge    D: relu(1 - real) + relu(1 + fake);  G: -fake
D's two terms are each a mean, summed and halved as pix2pix does (it slows D relative to G).

G's reconstruction terms, on normalised ab (ab / 110):
  l1               mean |pred - true|
  rebalanced_l1    each pixel's |pred - true| weighted by the rarity of its true colour
                   (Zhang et al. 2016; the per-bin weights come from `data.prior`, with
                   mean 1 under the training prior, so the loss keeps L1's scale)
  soft_encoded_ce  the bins head's loss (`models.generator`, Zhang et al. 2016, eq. 2):
                   cross-entropy of its logits against the truth's soft encoding, optionally
                   weighted per pixel like rebalanced_l1 (their class rebalancing)
  colorfulness_gap |mean CF(pred) - mean CF(true)| over the batch, Hasler & Suesstrunk's
                   colourfulness of the sRGB images (in [0, 1]): DDColor's colourfulness
                   loss, aimed at the truth's colourfulness instead of "more"
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxcolor import color
from jaxcolor.data import prior

GAN_KINDS = ("vanilla", "lsgan", "hinge")


def l1(pred: jax.Array, target: jax.Array) -> jax.Array:
    """Mean absolute error (MAE)."""
    return jnp.mean(jnp.abs(pred.astype(jnp.float32) - target.astype(jnp.float32)))


def ab_bin_weights(ab_true: jax.Array, bin_weights: jax.Array) -> jax.Array:
    """Per-pixel weights [..., H, W] of normalised true ab [..., H, W, 2]: the weight of the
    prior's bin each pixel's colour falls in. ab is rounded to whole Lab units first, the
    records' own resolution, so float error never moves a pixel across a bin edge."""
    ab = jnp.round(ab_true.astype(jnp.float32) * color.AB_SCALE)
    return bin_weights[prior.bin_index(ab[..., 0], ab[..., 1], xp=jnp)]


def rebalanced_l1(pred: jax.Array, target: jax.Array, bin_weights: jax.Array) -> jax.Array:
    """Class-rebalanced L1: mean over pixels and channels of w(true ab) * |pred - true|."""
    weights = ab_bin_weights(target, bin_weights)[..., None]
    return jnp.mean(weights * jnp.abs(pred.astype(jnp.float32) - target.astype(jnp.float32)))


def soft_encoding(ab_true: jax.Array, centres: jax.Array,
                  sigma: float = prior.SIGMA) -> jax.Array:
    """The truth's distribution over the bins [..., Q] of normalised ab [..., 2]: a Gaussian
    of `sigma` Lab units around it, over the bin centres [Q, 2] (model units), normalised.

    Zhang et al. keep the 5 nearest bins; the dense kernel at sigma = half a bin gives the
    same weights to within 1 % (the next bins out are 2 bins away: weight e^-8) without a
    top-k."""
    x = ab_true.astype(jnp.float32) * color.AB_SCALE
    c = centres.astype(jnp.float32) * color.AB_SCALE
    dist2 = (jnp.sum(x * x, -1, keepdims=True) - 2.0 * x @ c.T + jnp.sum(c * c, -1))
    return jax.nn.softmax(-dist2 / (2.0 * sigma**2), axis=-1)


def soft_encoded_ce(logits: jax.Array, ab_true: jax.Array, centres: jax.Array,
                    weights: jax.Array | None = None) -> jax.Array:
    """Mean over pixels of w * H(soft_encoding(truth), softmax(logits)); logits [..., Q],
    per-pixel `weights` [...] (None: 1)."""
    target = soft_encoding(ab_true, centres)
    ce = -jnp.sum(target * jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1), -1)
    return jnp.mean(ce if weights is None else weights * ce)


_CF_EPS = 1e-6  # keeps sqrt differentiable for a uniform (gray) prediction


def soft_colorfulness(rgb: jax.Array) -> jax.Array:
    """`metrics.colorfulness` per image of sRGB [..., H, W, 3] in [0, 1], with square roots
    kept away from 0 so its gradient stays finite for a gray image."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg, yb = jnp.abs(r - g), jnp.abs(0.5 * (r + g) - b)
    axes = (-2, -1)
    spread = jnp.sqrt(jnp.var(rg, axis=axes) + jnp.var(yb, axis=axes) + _CF_EPS)
    level = jnp.sqrt(jnp.mean(rg, axis=axes) ** 2 + jnp.mean(yb, axis=axes) ** 2 + _CF_EPS)
    return spread + 0.3 * level


def colorfulness_gap(l_norm: jax.Array, ab_pred: jax.Array, ab_true: jax.Array) -> jax.Array:
    """|mean CF(pred) - mean CF(true)| over the batch, both composed with the true L."""
    cf = [jnp.mean(soft_colorfulness(color.lab_to_rgb(color.model_to_lab(l_norm, ab))))
          for ab in (ab_pred.astype(jnp.float32), ab_true.astype(jnp.float32))]
    return jnp.abs(cf[0] - jax.lax.stop_gradient(cf[1]))


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
