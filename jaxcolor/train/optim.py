"""Optimisers from config: one `optax.GradientTransformation` per model.

Each model's config section (`config.g`, `config.d`) carries: lr, b1, b2, weight_decay,
schedule ("constant" | "linear_decay" | "cosine"), warmup_steps and clip_grad_norm (0 disables
clipping). Schedules run over `total_updates`, the number of updates that model makes in the
run: G and D train in different phases, so the trainer passes each its own count.

The learning rate is injected as a hyperparameter so the current value lives in the optax
state and can be logged without recomputing the schedule on the host.
"""

from __future__ import annotations

import optax

SCHEDULES = ("constant", "linear_decay", "cosine")


def learning_rate_schedule(cfg, *, field: str, total_updates: int) -> optax.Schedule:
    """Warm-up then constant, linear decay to 0 (pix2pix's second half) or cosine decay."""
    lr, warmup = float(cfg.lr), int(cfg.warmup_steps)
    decay = max(int(total_updates) - max(warmup, 0), 1)
    if cfg.schedule == "constant":
        main = optax.constant_schedule(lr)
    elif cfg.schedule == "linear_decay":
        main = optax.linear_schedule(lr, 0.0, decay)
    elif cfg.schedule == "cosine":
        main = optax.cosine_decay_schedule(lr, decay)
    else:
        raise ValueError(f"config.{field}.schedule: unknown schedule {cfg.schedule!r}; "
                         f"choose one of {SCHEDULES}")
    if warmup <= 0:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])


def make_optimizer(cfg, *, field: str, total_updates: int,
                   lr_scale: optax.Schedule | None = None) -> optax.GradientTransformation:
    """Adam (or AdamW when weight_decay > 0) with optional global-norm clipping.

    `lr_scale`, a function of the update count, multiplies the schedule: progressive
    pretraining's per-stage learning rates (`schedule.Schedule.g_lr_scale`)."""
    schedule = learning_rate_schedule(cfg, field=field, total_updates=total_updates)
    if lr_scale is not None:
        base = schedule
        schedule = lambda count: base(count) * lr_scale(count)  # noqa: E731

    def build(learning_rate):
        if float(cfg.weight_decay) > 0:
            adam = optax.adamw(learning_rate, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay)
        else:
            adam = optax.adam(learning_rate, b1=cfg.b1, b2=cfg.b2)
        if float(cfg.clip_grad_norm) > 0:
            return optax.chain(optax.clip_by_global_norm(cfg.clip_grad_norm), adam)
        return adam

    return optax.inject_hyperparams(build)(learning_rate=schedule)


def current_learning_rate(opt_state) -> float:
    """The learning rate the last update used (an array; fetch it with the other metrics)."""
    return opt_state.hyperparams["learning_rate"]
