"""The training state: one explicit pytree, plus the static model definitions beside it.

`TrainState` holds every array a step reads or writes: the step counter, G's parameters,
batch statistics and optax state, the same three for D, and an optional EMA of G (its
parameters and its batch statistics). Step functions are pure:
`state, batch -> new_state, metrics`.

The NNX graph definitions (the static structure of G and D, in train and eval mode) are not
arrays; they live in `ModelDefs`, which the step builders close over. They are taken from
abstract models (`nnx.eval_shape`) outside any trace, so nothing is captured while tracing.
Splitting a module into (graphdef, Param state, rest) and merging it back inside `jax.jit`
is Flax's functional training pattern.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainState:
    step: jax.Array  # int32 scalar: optimiser steps taken so far, over all phases
    g_params: nnx.State
    g_batch_stats: nnx.State  # BatchNorm running statistics (everything that is not a Param)
    g_opt_state: optax.OptState
    d_params: nnx.State
    d_batch_stats: nnx.State
    d_opt_state: optax.OptState
    g_ema_params: nnx.State | None  # EMA of G's parameters, or None when disabled
    # EMA of G's batch statistics, averaged with its parameters: the live statistics belong
    # to the live parameters, and pairing them with the average skews every layer's input.
    # None when the EMA is disabled, and in checkpoints written before it existed.
    g_ema_batch_stats: nnx.State | None = None

    def replace(self, **changes: Any) -> "TrainState":
        return dataclasses.replace(self, **changes)


def _modes(module: nnx.Module) -> tuple[nnx.GraphDef, nnx.GraphDef]:
    """(train-mode, eval-mode) graph definitions of a module; leaves it in eval mode."""
    module.train()
    train, _, _ = nnx.split(module, nnx.Param, ...)
    module.eval()
    evaluate, _, _ = nnx.split(module, nnx.Param, ...)
    return train, evaluate


@dataclasses.dataclass(frozen=True)
class ModelDefs:
    """Static structure of both models: graph definitions in train and eval mode."""

    g_train: nnx.GraphDef
    g_eval: nnx.GraphDef
    d_train: nnx.GraphDef
    d_eval: nnx.GraphDef

    @classmethod
    def of(cls, generator: nnx.Module, discriminator: nnx.Module) -> "ModelDefs":
        """From (typically abstract, `nnx.eval_shape`) modules."""
        g_train, g_eval = _modes(generator)
        d_train, d_eval = _modes(discriminator)
        return cls(g_train=g_train, g_eval=g_eval, d_train=d_train, d_eval=d_eval)

    def generator(self, params: nnx.State, batch_stats: nnx.State, *, train: bool) -> nnx.Module:
        return nnx.merge(self.g_train if train else self.g_eval, params, batch_stats)

    def discriminator(self, params: nnx.State, batch_stats: nnx.State, *,
                      train: bool) -> nnx.Module:
        return nnx.merge(self.d_train if train else self.d_eval, params, batch_stats)


def create(generator: nnx.Module, discriminator: nnx.Module, g_tx: optax.GradientTransformation,
           d_tx: optax.GradientTransformation, *, ema: bool) -> TrainState:
    """The initial state of freshly built models. Pure: safe to trace under `jax.jit`."""
    _, g_params, g_rest = nnx.split(generator, nnx.Param, ...)
    _, d_params, d_rest = nnx.split(discriminator, nnx.Param, ...)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        g_params=g_params, g_batch_stats=g_rest, g_opt_state=g_tx.init(g_params),
        d_params=d_params, d_batch_stats=d_rest, d_opt_state=d_tx.init(d_params),
        g_ema_params=jax.tree.map(jnp.copy, g_params) if ema else None,
        g_ema_batch_stats=jax.tree.map(jnp.copy, g_rest) if ema else None,
    )


def generator_variables(state: TrainState) -> dict[str, nnx.State]:
    """What inference needs of G: parameters and batch statistics (the EMA's when available;
    its parameters with the live statistics for a checkpoint written before the EMA had
    statistics of its own)."""
    if state.g_ema_params is None:
        return {"params": state.g_params, "batch_stats": state.g_batch_stats}
    stats = state.g_batch_stats if state.g_ema_batch_stats is None else state.g_ema_batch_stats
    return {"params": state.g_ema_params, "batch_stats": stats}
