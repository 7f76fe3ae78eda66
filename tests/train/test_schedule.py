"""The phases and the resolution schedule of progressive pretraining, from config."""

import ml_collections
import numpy as np
import pytest

from jaxcolor.errors import UsageError
from jaxcolor.train import optim
from jaxcolor.train.schedule import Schedule, Stage


def _config(stages=(), pretrain=10, d_pretrain=2, gan=5, batch=8, lr=2e-4):
    return ml_collections.ConfigDict({
        "batch_size": batch, "g": {"lr": lr},
        "phases": {"pretrain_steps": pretrain, "d_pretrain_steps": d_pretrain,
                   "gan_steps": gan, "pretrain_stages": stages}})


def test_without_stages_the_phases_follow_each_other():
    s = Schedule.from_config(_config())
    assert s.total == 17 and s.stages == ()
    assert [s.phase(i) for i in (0, 9, 10, 11, 12, 16)] == \
        ["pretrain"] * 2 + ["d_pretrain"] * 2 + ["gan"] * 2
    assert s.data_stages(128, 8) == () and s.g_lr_scale(2e-4) is None
    assert s.stage(0) is None


def test_stages_fill_in_the_runs_batch_and_rate_and_tile_the_pretraining():
    s = Schedule.from_config(_config(((64, 4, 16), (96, 3, 0, 1e-4), (128, 3))))
    assert s.stages == (Stage(0, 4, 64, 16, 2e-4), Stage(4, 3, 96, 8, 1e-4),
                        Stage(7, 3, 128, 8, 2e-4))
    assert [s.stage(i) for i in (0, 3, 4, 6, 7, 9, 10)] == [0, 0, 1, 1, 2, 2, None]
    # The last stage is already at the final size: the pipeline runs it on into the GAN.
    assert s.data_stages(128, 8) == ((0, 64, 16), (4, 96, 8), (7, 128, 8))
    # A final size different from the last stage's gets its own entry after pretraining.
    assert s.data_stages(160, 8)[-1] == (10, 160, 8)


def test_per_stage_learning_rates_scale_gs_schedule_only_in_their_stage():
    s = Schedule.from_config(_config(((64, 4, 0, 1e-3), (128, 6))))
    scale = s.g_lr_scale(2e-4)
    assert [float(scale(c)) for c in (0, 3, 4, 9, 10, 50)] == \
        pytest.approx([5.0, 5.0, 1.0, 1.0, 1.0, 1.0])
    cfg = ml_collections.ConfigDict({"lr": 2e-4, "b1": 0.5, "b2": 0.999, "weight_decay": 0.0,
                                     "schedule": "constant", "warmup_steps": 0,
                                     "clip_grad_norm": 0.0})
    tx = optim.make_optimizer(cfg, field="g", total_updates=15, lr_scale=scale)
    params = {"w": np.ones(3, np.float32)}
    state = tx.init(params)
    rates = []
    for _ in range(6):
        _, state = tx.update({"w": np.ones(3, np.float32)}, state, params)
        rates.append(float(optim.current_learning_rate(state)))
    assert rates == pytest.approx([1e-3] * 4 + [2e-4] * 2)


@pytest.mark.parametrize("stages, match", [
    (((64, 4), (128, 5)), "add up to 9, but config.phases.pretrain_steps is 10"),
    (((60, 5), (128, 5)), "multiple of 32"),
    (((64, 0), (128, 10)), "steps positive"),
    (((64, 5, -1), (128, 5)), "batch and lr >= 0"),
    (((64,),), r"\(crop, steps\[, batch\[, lr\]\]\)"),
])
def test_bad_stages_name_the_field(stages, match):
    with pytest.raises(UsageError, match=match) as error:
        Schedule.from_config(_config(stages))
    assert "config.phases.pretrain_stages" in str(error.value)
