"""The run's phases in global steps: L1 pretraining, NoGAN D pretraining, adversarial training,
and the resolution schedule of progressive pretraining.

`config.phases.{pretrain,d_pretrain,gan}_steps` give each phase's length; a phase's name is
also the name of its step function (`steps.Steps`) and of its config field.

`config.phases.pretrain_stages` (empty: off) splits the pretraining into stages of growing
image size, as DeOldify trains its generator (64 -> 128 -> 192 px): each entry is
`(size, steps)`, `(size, steps, batch)` or `(size, steps, batch, lr)` (batch or lr 0: the
run's `batch_size` / `g.lr`), and the stages' steps add up to `pretrain_steps`. A stage
smaller than `data.crop_size` sees the whole crop downscaled to its size (the same scene at
a lower resolution, not a smaller window of it: `data.batches.downscale`). G is fully
convolutional, so its weights carry over from one size to the next unchanged (no fade-in);
each new size compiles its step once. After the stages, every phase runs at
`data.crop_size` and `batch_size`, the size validation and inference use.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from jaxcolor.errors import UsageError

PHASES = ("pretrain", "d_pretrain", "gan")
SIZE_MULTIPLE = 32  # G's encoder downsamples 32x: every crop must be a multiple of it


@dataclasses.dataclass(frozen=True)
class Stage:
    """One step of the resolution schedule: global steps [first_step, first_step + steps)."""

    first_step: int
    steps: int
    crop_size: int
    batch_size: int
    lr: float  # G's peak learning rate in this stage


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Global step ranges of the three phases, in `PHASES` order, and the pretraining's
    resolution stages (empty for a fixed size)."""

    pretrain_steps: int
    d_pretrain_steps: int
    gan_steps: int
    stages: tuple[Stage, ...] = ()

    @classmethod
    def from_config(cls, config) -> "Schedule":
        counts = [int(config.phases[f"{phase}_steps"]) for phase in PHASES]
        if min(counts) < 0 or sum(counts) == 0:
            raise UsageError("config.phases: step counts must be >= 0 and not all 0")
        stages = _stages(config, counts[0])
        return cls(*counts, stages=stages)

    @property
    def total(self) -> int:
        return self.pretrain_steps + self.d_pretrain_steps + self.gan_steps

    def phase(self, step: int) -> str:
        """The phase that global step `step` (0-based) belongs to."""
        if step < self.pretrain_steps:
            return "pretrain"
        if step < self.pretrain_steps + self.d_pretrain_steps:
            return "d_pretrain"
        return "gan"

    def stage(self, step: int) -> int | None:
        """The index of the resolution stage step `step` runs in (None after the stages)."""
        for k, st in enumerate(self.stages):
            if st.first_step <= step < st.first_step + st.steps:
                return k
        return None

    @property
    def g_updates(self) -> int:
        return self.pretrain_steps + self.gan_steps

    @property
    def d_updates(self) -> int:
        return self.d_pretrain_steps + self.gan_steps

    def data_stages(self, crop_size: int, batch_size: int) -> tuple[tuple[int, int, int], ...]:
        """The input pipeline's schedule, (first step, crop, global batch) from step 0, ending
        in the final size (`()` when there is no resolution schedule)."""
        if not self.stages:
            return ()
        out = [(st.first_step, st.crop_size, st.batch_size) for st in self.stages]
        out.append((self.pretrain_steps, crop_size, batch_size))
        merged = [out[0]]
        for entry in out[1:]:  # a stage already at the final size runs straight on
            if entry[1:] != merged[-1][1:]:
                merged.append(entry)
        return tuple(merged)

    def g_lr_scale(self, lr: float):
        """Multiplier of G's learning-rate schedule (a function of G's update count, which
        equals the global step during pretraining): each stage's lr / `lr`; None when no
        stage sets its own learning rate."""
        if not any(st.lr != lr for st in self.stages):
            return None
        bounds = np.asarray([st.first_step + st.steps for st in self.stages], np.int32)
        scales = np.asarray([st.lr / lr for st in self.stages] + [1.0], np.float32)

        def scale(count):
            return jnp.asarray(scales)[jnp.searchsorted(jnp.asarray(bounds), count, side="right")]

        return scale


def _stages(config, pretrain_steps: int) -> tuple[Stage, ...]:
    """config.phases.pretrain_stages, checked, as `Stage`s (defaults filled in)."""
    raw = tuple(config.phases.get("pretrain_stages", ()) or ())
    if not raw:
        return ()
    field = "config.phases.pretrain_stages"
    stages, first = [], 0
    for entry in raw:
        entry = tuple(entry) if isinstance(entry, (tuple, list)) else (entry,)
        if not 2 <= len(entry) <= 4:
            raise UsageError(f"{field}: {entry!r} must be (crop, steps[, batch[, lr]])")
        crop, steps, batch, lr = (*entry, 0, 0)[:4]
        if int(crop) <= 0 or int(crop) % SIZE_MULTIPLE or int(steps) <= 0 or int(batch) < 0 \
                or float(lr) < 0:
            raise UsageError(f"{field}: {entry!r}: crop must be a positive multiple of "
                             f"{SIZE_MULTIPLE}, steps positive, batch and lr >= 0 (0: the "
                             "run's own)")
        stages.append(Stage(first_step=first, steps=int(steps), crop_size=int(crop),
                            batch_size=int(batch) or int(config.batch_size),
                            lr=float(lr) or float(config.g.lr)))
        first += int(steps)
    if first != pretrain_steps:
        raise UsageError(f"{field}: the stages' steps add up to {first}, but "
                         f"config.phases.pretrain_steps is {pretrain_steps}")
    return tuple(stages)
