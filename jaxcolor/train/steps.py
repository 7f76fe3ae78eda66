"""Pure training and evaluation steps, compiled with `jax.jit`.

Every step is `(state, batch) -> (state, metrics)` with `batch = {"L": uint8 [B,H,W],
"ab": uint8 [B,H,W,2], "flip": bool [B] (optional)}` (global `jax.Array`s sharded over the
mesh's `data` axis). The uint8 records are flipped and normalised on the devices inside the
step (`batches.prepare_batch`), so only uint8 crosses from host to accelerator. Metrics are
returned as device arrays: the loop fetches them one step late, so dispatching step n+1
never waits for step n.

G's reconstruction loss (`reconstruction_loss`) is L1 on ab, or Zhang et al.'s class-
rebalanced L1 (`config.loss.rebalance`), or for the bins head (`config.model.colour_head`)
the cross-entropy against the truth's soft encoding (rebalanced the same way), plus
`config.loss.lambda_cf` times the batch's colourfulness gap (DDColor); every term it has is
also returned as a metric, and L1 of the delivered colours always (the L1 pick reads it).
The cross-entropy is a few nats where L1 is ~0.1: a GAN phase over the bins head needs its
own `gan.lambda_l1`.
G is measured on the colours it delivers: its output scaled by `config.model.chroma` with
exponent `config.model.chroma_gamma` (`color.scale_chroma`; 1 and 1 unless a shipped
model's calibrated scale is being trained further), in the loss and in `evaluate`.

`config.g.trainable = "hints"` trains the hint branch alone (`models/hint_branch.py`) on
a G in eval mode: every other weight and BatchNorm statistic stays as loaded, and a branch
without bias adds nothing to a map of no hints, so the automatic colours of the model it
started from (`config.model.init_from`) are kept exactly while it learns to read hints.

Steps, by phase:
  pretrain       phase 1: G alone with the reconstruction loss (given hints simulated from
                 the truth when G takes hints, `config.model.hints`: Zhang et al. 2017)
  d_pretrain     NoGAN: D learns to tell real from the output of the frozen G (G in eval mode)
  gan            phase 2, fused: G update (adversarial + lambda_L1 * reconstruction) against D,
                 then a D update on the same real batch and G's (stop-gradient) output.
                 Fusing lets both updates share one G forward pass; pix2pix updates D first,
                 which is the same alternation shifted by half a step.
  evaluate       G in eval mode (EMA parameters when enabled) -> predictions + the
                 evaluator's per-image metrics (`jaxcolor.evaluator`)

Under `jax.jit` with a batch sharded over `data`, BatchNorm statistics are reduced over the
global batch by XLA: no per-layer host work, no pmean to write by hand.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxcolor import color, evaluator
from jaxcolor.data import batches, simulated_hints
from jaxcolor.errors import UsageError
from jaxcolor.models import factory
from jaxcolor.models.generator import bin_centres, is_encoder_path, is_hint_path
from jaxcolor.train import losses
from jaxcolor.train.optim import current_learning_rate
from jaxcolor.train.state import ModelDefs, TrainState, generator_variables

StepFn = Callable[[TrainState, dict], tuple[TrainState, dict]]
TRAINABLE = ("all", "hints")  # config.g.trainable
_NOT_PARAM = nnx.Not(nnx.Param)


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """The few numbers the steps need, read once from the run config."""

    gan_loss: str = "vanilla"
    lambda_l1: float = 100.0
    encoder_freeze_steps: int = 0  # G's encoder gets no updates while state.step < this
    ema_decay: float = 0.999
    rebalance: bool = False  # class-rebalanced L1 (needs the prior's bin weights)
    lambda_cf: float = 0.0  # weight of the colourfulness gap beside the L1 term
    hints: simulated_hints.HintConfig | None = None  # G takes hints: simulate them (how)
    seed: int = 0  # of the simulated hints (with the step)
    trainable: str = "all"  # "all" | "hints": only the hint branch learns (module docstring)
    chroma: float = 1.0  # G's output scaled by this (with exponent chroma_gamma) is what
    chroma_gamma: float = 1.0  # it delivers, and what is measured (`color.scale_chroma`)

    @classmethod
    def from_config(cls, config) -> "StepConfig":
        loss = config.get("loss", {})
        hints = (simulated_hints.HintConfig.from_config(config.hints)
                 if factory.takes_hints(config.model) else None)
        trainable = str(config.g.get("trainable", "all"))
        if trainable not in TRAINABLE:
            raise UsageError(f"config.g.trainable: {trainable!r}; choose one of {TRAINABLE}")
        if trainable == "hints" and hints is None:
            raise UsageError("config.g.trainable = 'hints' needs a G with hint inputs "
                             "(config.model.hints = True)")
        return cls(gan_loss=config.gan.loss, lambda_l1=float(config.gan.lambda_l1),
                   encoder_freeze_steps=int(config.g.encoder_freeze_steps),
                   ema_decay=float(config.g.ema_decay),
                   rebalance=bool(loss.get("rebalance", False)),
                   lambda_cf=float(loss.get("lambda_cf", 0.0)), hints=hints,
                   seed=int(config.seed), trainable=trainable,
                   chroma=float(config.model.get("chroma", 1.0)),
                   chroma_gamma=float(config.model.get("chroma_gamma", 1.0)))

    @property
    def g_train_mode(self) -> bool:
        """G runs in train mode (batch statistics) unless only its hint branch learns."""
        return self.trainable == "all"


@dataclasses.dataclass(frozen=True)
class StepContext:
    """What the pure steps close over: static model definitions, optimisers and settings."""

    defs: ModelDefs
    cfg: StepConfig
    g_tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation
    g_encoder_mask: nnx.State  # True on the encoder's leaves of G's params
    g_hint_mask: nnx.State  # True on the hint branch's leaves of G's params
    ab_weights: jax.Array | None = None  # float32 [prior.BINS] rebalancing weights, or None


@dataclasses.dataclass(frozen=True)
class Steps:
    """The compiled steps of one run (state argument donated), one per phase
    (`schedule.PHASES`), and the evaluation step."""

    pretrain: StepFn
    d_pretrain: StepFn
    gan: StepFn
    evaluate: Callable[[TrainState, dict], dict]
    context: StepContext

    def for_phase(self, phase: str) -> StepFn:
        return getattr(self, phase)


def encoder_mask(g_params: nnx.State) -> nnx.State:
    """A tree of bools shaped like G's params: True for the encoder's (ResNet) leaves."""
    return jax.tree_util.tree_map_with_path(lambda path, _: is_encoder_path(path), g_params)


def hint_mask(g_params: nnx.State) -> nnx.State:
    """A tree of bools shaped like G's params: True for the hint branch's leaves."""
    return jax.tree_util.tree_map_with_path(lambda path, _: is_hint_path(path), g_params)


# NNX note: each model is merged once per step and differentiated as a module
# (`nnx.value_and_grad` over its Params); BatchNorm statistics updated during the forward pass
# are read back with `nnx.state(model, Not(Param))`. Merging inside a function that `jax.grad`
# differentiates would mutate BatchStats across trace levels.


def ema_update(ema: nnx.State, params: nnx.State, decay: float, *, updates: jax.Array):
    """The EMA after its `updates`-th update: the average of the values seen so far,
    weighted by decay ** age and normalised, without the initial parameters' share.

    A plain EMA started from the initial parameters keeps decay ** updates of them (random
    weights, for a decoder): negligible at decay 0.99 after a few hundred steps, but a
    seventh of the average after 1,000 steps at 0.998, so a long window could not be used
    on a short run. This is Adam's bias correction applied to the stored average itself, so
    what is stored is always the average inference uses: the first update copies the
    parameters, and the rate tends to `decay` as updates grow."""
    n = updates.astype(jnp.float32)
    rate = decay * (1.0 - decay ** (n - 1.0)) / (1.0 - decay ** n)

    def average(e, p):  # integer leaves (counters) are not averaged: they follow the model
        return rate * e + (1.0 - rate) * p if jnp.issubdtype(p.dtype, jnp.floating) else p

    return jax.tree.map(average, ema, params)


def update_generator(ctx: StepContext, state: TrainState, grads,
                     g: nnx.Module) -> tuple[TrainState, dict]:
    """Apply G's gradients: frozen leaves (the encoder before `encoder_freeze_steps`,
    everything but the hint branch when only it trains), optimiser, EMA; BatchNorm
    statistics from `g`."""
    encoder_frozen = state.step < ctx.cfg.encoder_freeze_steps
    hints_only = ctx.cfg.trainable == "hints"

    def freeze(tree):
        return jax.tree.map(
            lambda x, is_enc, is_hint: jnp.where((is_enc & encoder_frozen)
                                                 | (hints_only and not is_hint), 0.0, x),
            tree, ctx.g_encoder_mask, ctx.g_hint_mask)

    # Zero the frozen gradients (their Adam moments stay clean) and updates (AdamW's weight
    # decay would otherwise still move a frozen weight).
    grads = freeze(grads)
    updates, opt_state = ctx.g_tx.update(grads, state.g_opt_state, state.g_params)
    params = optax.apply_updates(state.g_params, freeze(updates))
    batch_stats = nnx.state(g, _NOT_PARAM)
    new = state.replace(g_params=params, g_batch_stats=batch_stats, g_opt_state=opt_state)
    if state.g_ema_params is not None:
        n = state.step + 1
        new = new.replace(
            g_ema_params=ema_update(state.g_ema_params, params, ctx.cfg.ema_decay, updates=n),
            g_ema_batch_stats=ema_update(state.g_ema_batch_stats, batch_stats,
                                         ctx.cfg.ema_decay, updates=n))
    return new, {"g/grad_norm": optax.tree.norm(grads), "g/lr": current_learning_rate(opt_state)}


def update_discriminator(ctx: StepContext, state: TrainState, l_norm, ab_real,
                         ab_fake) -> tuple[TrainState, dict]:
    """One D update on a real and a generated (stop-gradient) batch."""
    d = ctx.defs.discriminator(state.d_params, state.d_batch_stats, train=True)

    def loss_fn(d):
        real, fake = d(l_norm, ab_real), d(l_norm, ab_fake)
        return losses.discriminator_loss(real, fake, ctx.cfg.gan_loss), (real, fake)

    (loss, (real, fake)), grads = nnx.value_and_grad(loss_fn, has_aux=True)(d)
    updates, opt_state = ctx.d_tx.update(grads, state.d_opt_state, state.d_params)
    params = optax.apply_updates(state.d_params, updates)
    new = state.replace(d_params=params, d_batch_stats=nnx.state(d, _NOT_PARAM),
                        d_opt_state=opt_state)
    return new, {"d/loss": loss, "d/real_logit": real.mean(), "d/fake_logit": fake.mean(),
                 "d/grad_norm": optax.tree.norm(grads), "d/lr": current_learning_rate(opt_state)}


def reconstruction_loss(ctx: StepContext, l_norm, ab, ab_real,
                        logits=None) -> tuple[jax.Array, dict]:
    """G's loss against the truth, and each of its terms: plain L1 (always reported), the
    bins head's cross-entropy (given its `logits`) or rebalanced L1, and the colourfulness
    gap when configured."""
    l1 = losses.l1(ab, ab_real)
    terms = {"g/l1": l1}
    loss = l1
    if logits is not None:
        weights = losses.ab_bin_weights(ab_real, ctx.ab_weights) if ctx.cfg.rebalance else None
        loss = terms["g/ce"] = losses.soft_encoded_ce(logits, ab_real, bin_centres(), weights)
    elif ctx.cfg.rebalance:
        loss = terms["g/l1_rebal"] = losses.rebalanced_l1(ab, ab_real, ctx.ab_weights)
    if ctx.cfg.lambda_cf > 0:
        terms["g/cf_gap"] = losses.colorfulness_gap(l_norm, ab, ab_real)
        loss = loss + ctx.cfg.lambda_cf * terms["g/cf_gap"]
    return loss, terms


def delivered(ctx: StepContext, ab_norm: jax.Array) -> jax.Array:
    """G's output as the colours it delivers (float32, normalised): scaled by
    `config.model.chroma` with exponent `config.model.chroma_gamma` (`color.scale_chroma`)."""
    ab = ab_norm.astype(jnp.float32)
    if ctx.cfg.chroma_gamma == 1.0:
        return ab if ctx.cfg.chroma == 1.0 else ab * ctx.cfg.chroma
    return color.normalize_ab(color.scale_chroma(color.denormalize_ab(ab), ctx.cfg.chroma,
                                                 ctx.cfg.chroma_gamma))


def simulated_hint(ctx: StepContext, state: TrainState, ab_real) -> tuple[jax.Array | None, dict]:
    """The step's hint map drawn from the truth (`data.simulated_hints`; None when G takes
    no hints), keyed by the run's seed and the step, and its metrics."""
    if ctx.cfg.hints is None:
        return None, {}
    key = jax.random.fold_in(jax.random.key(ctx.cfg.seed), state.step)
    hint, count = simulated_hints.simulate(key, ab_real, ctx.cfg.hints)
    return hint, {"g/hint_points": count.mean(), "g/hinted_share": hint[..., 2].mean()}


def pretrain_step(ctx: StepContext, state: TrainState, batch: dict):
    l_norm, ab_real = batches.prepare_batch(batch)
    g = ctx.defs.generator(state.g_params, state.g_batch_stats, train=ctx.cfg.g_train_mode)
    hint, hint_metrics = simulated_hint(ctx, state, ab_real)

    def loss_fn(g):
        ab, logits = g.predict(l_norm, hint)
        return reconstruction_loss(ctx, l_norm, delivered(ctx, ab), ab_real, logits)

    (loss, terms), grads = nnx.value_and_grad(loss_fn, has_aux=True)(g)
    state, m = update_generator(ctx, state, grads, g)
    extra = {"g/loss": loss} if len(terms) > 1 else {}
    return state.replace(step=state.step + 1), {**terms, **extra, **m, **hint_metrics}


def d_pretrain_step(ctx: StepContext, state: TrainState, batch: dict):
    l_norm, ab_real = batches.prepare_batch(batch)
    g = ctx.defs.generator(state.g_params, state.g_batch_stats, train=False)
    ab_fake = jax.lax.stop_gradient(delivered(ctx, g(l_norm)))
    state, m = update_discriminator(ctx, state, l_norm, ab_real, ab_fake)
    return state.replace(step=state.step + 1), m


def gan_generator_update(ctx: StepContext, state: TrainState, l_norm,
                         ab_real) -> tuple[TrainState, dict, jax.Array]:
    """G's half of the GAN step: adversarial + lambda_L1 * reconstruction against the
    current D. Returns the new state, G's metrics and G's output (for D's half)."""
    g = ctx.defs.generator(state.g_params, state.g_batch_stats, train=ctx.cfg.g_train_mode)
    # D judges in train mode (batch statistics), as in pix2pix; its running-stat updates
    # from this pass are dropped: only D's own update moves them.
    d = ctx.defs.discriminator(state.d_params, state.d_batch_stats, train=True)
    hint, hint_metrics = simulated_hint(ctx, state, ab_real)

    def loss_fn(g, d):
        ab, logits = g.predict(l_norm, hint)
        ab = delivered(ctx, ab)
        adv = losses.generator_adversarial_loss(d(l_norm, ab), ctx.cfg.gan_loss)
        rec, terms = reconstruction_loss(ctx, l_norm, ab, ab_real, logits)
        return adv + ctx.cfg.lambda_l1 * rec, (ab, adv, terms)

    (total, (ab_fake, adv, terms)), grads = nnx.value_and_grad(
        loss_fn, argnums=0, has_aux=True)(g, d)
    state, m = update_generator(ctx, state, grads, g)
    return state, {"g/loss": total, "g/adv": adv, **terms, **m, **hint_metrics}, ab_fake


def gan_step(ctx: StepContext, state: TrainState, batch: dict):
    """The fused GAN step: G's update, then D's on the same real batch and G's output."""
    l_norm, ab_real = batches.prepare_batch(batch)
    state, g_metrics, ab_fake = gan_generator_update(ctx, state, l_norm, ab_real)
    state, d_metrics = update_discriminator(ctx, state, l_norm, ab_real,
                                            jax.lax.stop_gradient(ab_fake))
    return state.replace(step=state.step + 1), {**g_metrics, **d_metrics}


def eval_step(ctx: StepContext, state: TrainState, batch: dict) -> dict:
    """G's prediction (`ab_pred`, model units) and the evaluator's per-image metrics ([B]
    arrays) of G in eval mode, measured as `jaxcolor evaluate` measures: on the 8-bit sRGB
    images of the prediction and the truth (`jaxcolor.evaluator`)."""
    l_norm, ab_true = batches.prepare_batch(batch)
    variables = generator_variables(state)
    g = ctx.defs.generator(variables["params"], variables["batch_stats"], train=False)
    ab_pred = delivered(ctx, g(l_norm))
    rgb8 = [evaluator.to_rgb8(color.lab_to_rgb(color.model_to_lab(l_norm, ab)))
            for ab in (ab_pred, ab_true)]
    return {**evaluator.image_metrics(*rgb8, xp=jnp), "ab_pred": ab_pred}


def compile_step(ctx: StepContext, step, state_sharding=None) -> StepFn:
    """`step(ctx, state, batch)` as a jitted `(state, batch) -> (state, metrics)` that
    donates the state and keeps it on `state_sharding` (replicated over the mesh)."""

    def constrained(state, batch):
        state, metrics_ = step(ctx, state, batch)
        if state_sharding is not None:
            state = jax.lax.with_sharding_constraint(state, state_sharding)
        return state, metrics_

    return jax.jit(constrained, donate_argnums=(0,))


def build_steps(defs: ModelDefs, cfg: StepConfig, g_tx: optax.GradientTransformation,
                d_tx: optax.GradientTransformation, *, g_params: nnx.State,
                state_sharding=None, ab_weights=None) -> Steps:
    """The jitted steps of a run, closed over its static models, optimisers and settings
    (and, for the rebalanced L1, the colour prior's per-bin weights); `g_params` (abstract
    is enough) says which leaves are the encoder's and the hint branch's."""
    if cfg.rebalance and ab_weights is None:
        raise ValueError("config.loss.rebalance is on but no rebalancing weights were given "
                         "(train.inputs computes them from the training records' prior)")
    weights = None if ab_weights is None else jnp.asarray(ab_weights, jnp.float32)
    ctx = StepContext(defs=defs, cfg=cfg, g_tx=g_tx, d_tx=d_tx,
                      g_encoder_mask=encoder_mask(g_params), g_hint_mask=hint_mask(g_params),
                      ab_weights=weights)
    return Steps(pretrain=compile_step(ctx, pretrain_step, state_sharding),
                 d_pretrain=compile_step(ctx, d_pretrain_step, state_sharding),
                 gan=compile_step(ctx, gan_step, state_sharding),
                 evaluate=jax.jit(functools.partial(eval_step, ctx)), context=ctx)
