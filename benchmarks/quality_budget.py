"""Equal training FLOPs for every quality variant: a FLOP budget -> each phase's step count.

A fair ablation gives every variant the same compute, not the same number of steps: a
progressive variant that pretrains on smaller crops sees more images for the same FLOPs,
and a loss that costs more per step gets fewer steps. The FLOPs of one step of each kind at
each crop size come from XLA's cost analysis of the step *lowered* for that shape (not
compiled: lowering is quick and its count does not depend on the backend's fusion choices),
divided by the batch, so the count includes everything a step does (G, D, losses, the
optimiser).

`config.quality` holds the split: `tflop` in all, `gan_share` and `d_pretrain_share` of it
in those phases, the rest in L1 pretraining, which `stage_shares` ((crop, share), ...)
divides between resolution stages (one stage at `data.crop_size` when empty).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np


@dataclasses.dataclass(frozen=True)
class Plan:
    """The phase lengths a budget buys, and what they cost."""

    pretrain_stages: tuple[tuple[int, int], ...]  # (crop, steps), in order
    d_pretrain_steps: int
    gan_steps: int
    gflop_per_image: dict[str, float]  # "<kind>@<crop>" -> GFLOP per image of one step
    tflop: float  # what the plan actually spends (step counts are rounded)

    @property
    def pretrain_steps(self) -> int:
        return sum(steps for _, steps in self.pretrain_stages)

    def apply(self, config) -> None:
        """Write the plan into `config.phases` (a stage list only when there are several)."""
        config.phases.pretrain_steps = self.pretrain_steps
        config.phases.pretrain_stages = (self.pretrain_stages if len(self.pretrain_stages) > 1
                                         else ())
        config.phases.d_pretrain_steps = self.d_pretrain_steps
        config.phases.gan_steps = self.gan_steps


def lowered_flops_per_image(setup, kind: str, crop: int, batch: int) -> float:
    """FLOPs per image of one `kind` step over a (batch, crop, crop) batch, from the lowered
    program's cost analysis (nothing is compiled or allocated)."""
    import jax

    shapes = {"L": ((batch, crop, crop), np.uint8), "ab": ((batch, crop, crop, 2), np.uint8),
              "flip": ((batch,), np.bool_)}
    abstract = {k: jax.ShapeDtypeStruct(s, d, sharding=setup.batch_sharding)
                for k, (s, d) in shapes.items()}
    lowered = setup.steps.for_phase(kind).lower(setup.abstract_state, abstract)
    analysis = lowered.cost_analysis()
    if isinstance(analysis, (list, tuple)):  # older jax: one dict per computation
        analysis = analysis[0]
    return float(analysis["flops"]) / batch


def plan(config, flops_per_image=None) -> Plan:
    """The step counts `config.quality` buys. `flops_per_image(kind, crop)` defaults to the
    cost analysis of this config's own steps (tests pass a table)."""
    q = config.quality
    batch, crop = int(config.batch_size), int(config.data.crop_size)
    if flops_per_image is None:
        flops_per_image = _cost_analysis_of(config)
    budget = float(q.tflop) * 1e12
    gan_share, d_share = float(q.gan_share), float(q.d_pretrain_share)
    pre_share = 1.0 - gan_share - d_share
    if min(gan_share, d_share) < 0 or pre_share <= 0:
        raise ValueError(f"config.quality: shares gan={gan_share}, d_pretrain={d_share} must "
                         "be >= 0 and leave some FLOPs for pretraining")
    stages = tuple(q.stage_shares) or ((crop, 1.0),)
    if abs(sum(share for _, share in stages) - 1.0) > 1e-6 or stages[-1][0] != crop:
        raise ValueError(f"config.quality.stage_shares={stages}: shares must add up to 1 and "
                         f"the last stage be data.crop_size={crop}")
    table, spent = {}, 0.0

    def steps_for(kind: str, size: int, share: float) -> int:
        nonlocal spent
        per_image = flops_per_image(kind, size)
        table[f"{kind}@{size}"] = round(per_image / 1e9, 4)
        steps = int(round(budget * share / (batch * per_image))) if share > 0 else 0
        spent += steps * batch * per_image
        return steps

    pretrain = tuple((int(size), steps_for("pretrain", int(size), pre_share * float(share)))
                     for size, share in stages)
    d_steps = steps_for("d_pretrain", crop, d_share)
    gan_steps = steps_for("gan", crop, gan_share)
    return Plan(pretrain, d_steps, gan_steps, table, spent / 1e12)


def _cost_analysis_of(config):
    """flops_per_image(kind, crop) over this config's own setup (rebalancing weights, when
    on, are uniform here: they change no FLOP)."""
    from jaxcolor.data import prior
    from jaxcolor.train.setup import setup as make_setup

    weights = np.ones(prior.BINS, np.float32) if config.loss.rebalance else None
    run = make_setup(config, ab_weights=weights)
    return functools.lru_cache(maxsize=None)(
        lambda kind, crop: lowered_flops_per_image(run, kind, crop, int(config.batch_size)))
