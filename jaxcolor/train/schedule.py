"""The run's phases in global steps: L1 pretraining, NoGAN D pretraining, adversarial training.

`config.phases.{pretrain,d_pretrain,gan}_steps` give each phase's length; a phase's name is
also the name of its step function (`steps.Steps`) and of its config field.
"""

from __future__ import annotations

import dataclasses

from jaxcolor.errors import UsageError

PHASES = ("pretrain", "d_pretrain", "gan")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Global step ranges of the three phases, in `PHASES` order."""

    pretrain_steps: int
    d_pretrain_steps: int
    gan_steps: int

    @classmethod
    def from_config(cls, config) -> "Schedule":
        s = cls(*(int(config.phases[f"{phase}_steps"]) for phase in PHASES))
        if min(s.pretrain_steps, s.d_pretrain_steps, s.gan_steps) < 0 or s.total == 0:
            raise UsageError("config.phases: step counts must be >= 0 and not all 0")
        return s

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

    @property
    def g_updates(self) -> int:
        return self.pretrain_steps + self.gan_steps

    @property
    def d_updates(self) -> int:
        return self.d_pretrain_steps + self.gan_steps
