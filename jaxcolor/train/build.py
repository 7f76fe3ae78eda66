"""Models and the initial train state, built from the run config.

Model construction from `config.model` lives here (not in `jaxcolor.models`, which knows
nothing of configs) so that training, inference and evaluation build G the same way.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import nnx

from jaxcolor.models.discriminator import PatchDiscriminator
from jaxcolor.models.generator import UNetGenerator
from jaxcolor.train import state as state_lib


def compute_dtype(name: str):
    """"auto" -> bfloat16 on GPU/TPU (tensor cores, half the activation memory), float32 on
    CPU (XLA:CPU has no fast bf16 convolutions); or an explicit "float32"/"bfloat16"."""
    if name == "auto":
        return jnp.bfloat16 if jax.default_backend() in ("gpu", "tpu") else jnp.float32
    if name in ("float32", "bfloat16"):
        return jnp.dtype(name)
    raise ValueError(f"config.model.compute_dtype: {name!r}; choose auto, float32 or bfloat16")


def init_rngs(seed: int) -> nnx.Rngs:
    """Parameter-initialisation keys. The "rbg" generator compiles and runs several times
    faster than the default threefry for the hundreds of weight tensors of a ResNet U-Net
    (bits differ between backends, which initialisation does not care about)."""
    return nnx.Rngs(jax.random.key(seed, impl="rbg"))


def make_generator(model_cfg, *, seed: int) -> UNetGenerator:
    return UNetGenerator(depth=int(model_cfg.depth),
                         decoder_widths=tuple(model_cfg.decoder_widths),
                         self_attention=bool(model_cfg.self_attention),
                         dtype=compute_dtype(model_cfg.compute_dtype), rngs=init_rngs(seed))


def make_discriminator(model_cfg, *, seed: int) -> PatchDiscriminator:
    return PatchDiscriminator(in_channels=3, base_width=int(model_cfg.d_width),
                              n_layers=int(model_cfg.d_layers), norm=model_cfg.d_norm,
                              spectral_norm=bool(model_cfg.d_spectral_norm),
                              dtype=compute_dtype(model_cfg.compute_dtype), rngs=init_rngs(seed))


def count_params(params) -> int:
    return int(sum(np.size(x) for x in jax.tree.leaves(params)))


def _state_initializer(config, g_tx, d_tx, captured: dict):
    """A function of no arguments that builds the initial state; records the models' static
    graph definitions in `captured["defs"]` while it is traced."""

    def init():
        defs, state = state_lib.create(
            lambda: make_generator(config.model, seed=config.seed),
            lambda: make_discriminator(config.model, seed=config.seed + 1),
            g_tx, d_tx, seed=config.seed, ema=float(config.g.ema_decay) > 0)
        captured["defs"] = defs
        return state

    return init


def create_state(config, g_tx: optax.GradientTransformation, d_tx: optax.GradientTransformation,
                 *, sharding) -> tuple[state_lib.ModelDefs, state_lib.TrainState]:
    """Initialise both models inside `jax.jit`, placing the state straight onto `sharding`
    (no host round trip of a ResNet-101's weights)."""
    captured = {}
    state = jax.jit(_state_initializer(config, g_tx, d_tx, captured), out_shardings=sharding)()
    return captured["defs"], state


def abstract_state(config, g_tx: optax.GradientTransformation,
                   d_tx: optax.GradientTransformation, *,
                   sharding) -> tuple[state_lib.ModelDefs, state_lib.TrainState]:
    """The models' definitions and the state's shapes, dtypes and shardings, computing and
    compiling nothing: the target of a restore (`jax.ShapeDtypeStruct` leaves)."""
    captured = {}
    state = jax.eval_shape(
        jax.jit(_state_initializer(config, g_tx, d_tx, captured), out_shardings=sharding))
    return captured["defs"], state


def maybe_load_backbone(config, state: state_lib.TrainState, *, sharding) -> state_lib.TrainState:
    """Load ported ImageNet weights into G's encoder when `config.model.backbone_weights` is
    set; otherwise say plainly that the encoder starts from random initialisation."""
    path = config.model.backbone_weights
    if not path:
        logging.warning("config.model.backbone_weights is not set: the ResNet encoder starts "
                        "from random initialisation (port ImageNet weights with "
                        "`python -m jaxcolor.models.port`)")
        return state
    from jaxcolor.models import port  # orbax restore of the encoder; only needed here

    generator = make_generator(config.model, seed=config.seed)
    nnx.update(generator, jax.device_get(state.g_params), jax.device_get(state.g_batch_stats))
    port.load_encoder_checkpoint(path, generator.encoder)
    _, params, rest = nnx.split(generator, nnx.Param, ...)
    params, rest = jax.device_put((params, rest), sharding)
    ema = jax.tree.map(jnp.copy, params) if state.g_ema_params is not None else None
    logging.info("Loaded encoder weights from %s", path)
    return state.replace(g_params=params, g_batch_stats=rest, g_ema_params=ema)
