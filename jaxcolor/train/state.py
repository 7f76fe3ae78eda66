"""The training state: one explicit pytree, plus the static model definitions beside it.

`TrainState` holds every array a step reads or writes: the step counter, G's parameters,
batch statistics and optax state, the same three for D, an optional EMA copy of G's
parameters, and the RNG key. Step functions are pure: `state, batch -> new_state, metrics`.

The NNX graph definitions (the static structure of G and D, in train and eval mode) are not
arrays; they live in `ModelDefs`, which the step builders close over. Splitting a module into
(graphdef, Param state, rest) and merging it back inside `jax.jit` is Flax's functional
training pattern; here it happens once, at creation.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

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
    rng: jax.Array  # raw uint32 PRNG key (jax.random.PRNGKey): checkpoints as a plain array

    def replace(self, **changes: Any) -> "TrainState":
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class ModelDefs:
    """Static structure of both models: graph definitions in train and eval mode."""

    g_train: nnx.GraphDef
    g_eval: nnx.GraphDef
    d_train: nnx.GraphDef
    d_eval: nnx.GraphDef

    def generator(self, params: nnx.State, batch_stats: nnx.State, *, train: bool) -> nnx.Module:
        return nnx.merge(self.g_train if train else self.g_eval, params, batch_stats)

    def discriminator(self, params: nnx.State, batch_stats: nnx.State, *,
                      train: bool) -> nnx.Module:
        return nnx.merge(self.d_train if train else self.d_eval, params, batch_stats)


def split_modes(module: nnx.Module) -> tuple[nnx.GraphDef, nnx.GraphDef, nnx.State, nnx.State]:
    """(train graphdef, eval graphdef, params, rest) of a module. Leaves it in eval mode."""
    module.train()
    g_train, params, rest = nnx.split(module, nnx.Param, ...)
    module.eval()
    g_eval, _, _ = nnx.split(module, nnx.Param, ...)
    return g_train, g_eval, params, rest


def create(make_generator: Callable[[], nnx.Module], make_discriminator: Callable[[], nnx.Module],
           g_tx: optax.GradientTransformation, d_tx: optax.GradientTransformation, *,
           seed: int, ema: bool) -> tuple[ModelDefs, TrainState]:
    """Build both models and the initial state. Pure given `seed`: safe under `jax.jit`."""
    g_train, g_eval, g_params, g_rest = split_modes(make_generator())
    d_train, d_eval, d_params, d_rest = split_modes(make_discriminator())
    defs = ModelDefs(g_train=g_train, g_eval=g_eval, d_train=d_train, d_eval=d_eval)
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        g_params=g_params, g_batch_stats=g_rest, g_opt_state=g_tx.init(g_params),
        d_params=d_params, d_batch_stats=d_rest, d_opt_state=d_tx.init(d_params),
        g_ema_params=jax.tree.map(jnp.copy, g_params) if ema else None,
        rng=jax.random.PRNGKey(seed),
    )
    return defs, state


def generator_variables(state: TrainState, *, use_ema: bool = True) -> dict[str, nnx.State]:
    """What inference needs of G: parameters (EMA when available) and batch statistics."""
    params = state.g_ema_params if (use_ema and state.g_ema_params is not None) else state.g_params
    return {"params": params, "batch_stats": state.g_batch_stats}
