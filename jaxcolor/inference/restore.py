"""A training checkpoint -> the generator's variables and the run's config (Orbax only).

The checkpoint format (items, steps, configs, metas, what "best" means) is
`jaxcolor.checkpoints`'; this module restores G from it. Inference reads the `generator` and
`config` items alone, so colourising needs neither the discriminator, nor optax states, nor
Grain.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import ml_collections
from flax import nnx

from jaxcolor import checkpoints
from jaxcolor.models import factory


def eval_split(generator: nnx.Module) -> tuple[nnx.GraphDef, dict]:
    """(graph definition, {"params", "batch_stats"}) of a generator in eval mode (BatchNorm
    uses the running statistics): the layout of the checkpoint's `generator` item."""
    generator.eval()
    graphdef, params, batch_stats = nnx.split(generator, nnx.Param, ...)
    return graphdef, {"params": params, "batch_stats": batch_stats}


@dataclasses.dataclass(frozen=True)
class Restored:
    """A checkpoint's generator, ready to merge (`nnx.merge(graphdef, **variables)`)."""

    config: ml_collections.ConfigDict
    graphdef: nnx.GraphDef
    variables: dict  # {"params", "batch_stats"}
    step: int
    directory: Path

    def generator(self) -> nnx.Module:
        """The restored generator as an eval-mode NNX module."""
        return nnx.merge(self.graphdef, self.variables["params"], self.variables["batch_stats"])


def restore(path: str | os.PathLike, *, step: int | None = None, best: bool = False) -> Restored:
    """G and the config of a run workdir or checkpoints directory: the latest step, `step`,
    or the best by validation score."""
    directory = checkpoints.checkpoint_dir(path)
    step = checkpoints.resolve_step(directory, step=step, best=best)
    config = ml_collections.ConfigDict(checkpoints.read_config(directory, step))
    if "model" not in config or "data" not in config:
        raise checkpoints.CheckpointError(f"{directory / str(step) / 'config'}: no model/data "
                                          "section; not a jaxcolor training checkpoint")
    graphdef, target = eval_split(factory.abstract_generator(config.model))
    variables = checkpoints.read_generator(directory, step, target)
    return Restored(config=config, graphdef=graphdef, variables=variables, step=step,
                    directory=directory.absolute())
