"""`config.model` -> the generator, the discriminator and the compute dtype.

The one place that reads the model section of a run config, so that training, inference,
export and the benchmarks build exactly the same networks from a config (inference rebuilds
G from the config saved with a checkpoint). The modules themselves know nothing of configs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxcolor.errors import UsageError
from jaxcolor.models import encoders, hint_branch
from jaxcolor.models.discriminator import PatchDiscriminator
from jaxcolor.models.generator import ANNEALED_T, COLOUR_HEADS, UNetGenerator

COMPUTE_DTYPES = ("auto", "float32", "bfloat16")


def compute_dtype(name: str):
    """"auto" -> bfloat16 on GPU/TPU (tensor cores, half the activation memory), float32 on
    CPU (XLA:CPU has no fast bf16 convolutions); or an explicit "float32"/"bfloat16"."""
    if name == "auto":
        return jnp.bfloat16 if jax.default_backend() in ("gpu", "tpu") else jnp.float32
    if name in COMPUTE_DTYPES:
        return jnp.dtype(name)
    raise UsageError(f"config.model.compute_dtype: {name!r}; choose one of {COMPUTE_DTYPES}")


def init_rngs(seed: int) -> nnx.Rngs:
    """Parameter-initialisation keys. The "rbg" generator compiles and runs several times
    faster than the default threefry for the hundreds of weight tensors of a ResNet U-Net
    (bits differ between backends, which initialisation does not care about)."""
    return nnx.Rngs(jax.random.key(seed, impl="rbg"))


def backbone(model_cfg) -> str:
    """`model_cfg.backbone`, validated. A config saved with an older checkpoint has only
    `model.depth` (the encoder was always a ResNet then): it means f"resnet{depth}", so those
    checkpoints keep restoring."""
    if "backbone" in model_cfg:
        name = str(model_cfg.backbone)
    elif "depth" in model_cfg:
        name = f"resnet{int(model_cfg.depth)}"
    else:
        raise UsageError("config.model.backbone: missing; choose one of "
                         f"{', '.join(encoders.BACKBONES)}")
    if name not in encoders.BACKBONES:
        raise UsageError(f"config.model.backbone: unknown {name!r}; choose one of "
                         f"{', '.join(encoders.BACKBONES)}")
    return name


def make_generator(model_cfg, *, seed: int) -> UNetGenerator:
    return UNetGenerator(backbone=backbone(model_cfg),
                         decoder_widths=tuple(model_cfg.decoder_widths),
                         self_attention=bool(model_cfg.self_attention),
                         hints=takes_hints(model_cfg),
                         hint_scales=hint_scales(model_cfg),
                         hint_encoder=bool(model_cfg.get("hint_encoder", True)),
                         colour_head=colour_head(model_cfg),
                         temperature=float(model_cfg.get("temperature", ANNEALED_T)),
                         dtype=compute_dtype(model_cfg.compute_dtype), rngs=init_rngs(seed))


def colour_head(model_cfg) -> str:
    """`model_cfg.colour_head`, validated (configs saved before the bins head: regression)."""
    name = str(model_cfg.get("colour_head", "regression"))
    if name not in COLOUR_HEADS:
        raise UsageError(f"config.model.colour_head: unknown {name!r}; choose one of "
                         f"{', '.join(COLOUR_HEADS)}")
    temperature = model_cfg.get("temperature", ANNEALED_T)
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise UsageError(f"config.model.temperature: {temperature!r}; a number > 0")
    return name


def hint_scales(model_cfg) -> tuple[int, ...]:
    """`model_cfg.hint_scales`, validated (configs saved before it joined every scale)."""
    try:
        return hint_branch.check_scales(model_cfg.get("hint_scales", hint_branch.SCALES))
    except (TypeError, ValueError) as e:
        raise UsageError(f"config.model.hint_scales: {e}") from None


def takes_hints(model_cfg) -> bool:
    """Whether G has colour-hint inputs (`config.model.hints`; configs saved before hints
    existed have none)."""
    return bool(model_cfg.get("hints", False))


def make_discriminator(model_cfg, *, seed: int) -> PatchDiscriminator:
    return PatchDiscriminator(in_channels=3, base_width=int(model_cfg.d_width),
                              n_layers=int(model_cfg.d_layers), norm=model_cfg.d_norm,
                              spectral_norm=bool(model_cfg.d_spectral_norm),
                              dtype=compute_dtype(model_cfg.compute_dtype), rngs=init_rngs(seed))


def abstract_generator(model_cfg) -> UNetGenerator:
    """G of `model_cfg` with `jax.ShapeDtypeStruct`s for arrays: its structure (the graph
    definition to merge restored variables into) without computing or compiling anything."""
    return nnx.eval_shape(lambda: make_generator(model_cfg, seed=0))


def abstract_discriminator(model_cfg) -> PatchDiscriminator:
    return nnx.eval_shape(lambda: make_discriminator(model_cfg, seed=0))


def count_params(params) -> int:
    return int(sum(np.size(x) for x in jax.tree.leaves(params)))
