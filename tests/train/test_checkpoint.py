"""Checkpoints of a finished tiny run: G alone restores from the saved config (no D, no
optimiser), the config round-trips, steps resolve, and half-written saves are invisible."""

import json
import shutil

import jax
import ml_collections
import numpy as np
import pytest
from flax import nnx
from tensorboard.backend.event_processing import event_accumulator

from jaxcolor import checkpoints as format_
from jaxcolor.models import factory
from jaxcolor.train import checkpoint
from tests.train.helpers import restore_saved_state
from tests.support import assert_trees_equal, plain, tiny_config

FINAL = 10


@pytest.fixture(scope="module")
def checkpoints(finished_run):
    return finished_run.workdir / "checkpoints"


def test_generator_restores_alone_from_the_saved_config(checkpoints, monkeypatch):
    def no_discriminator(*args, **kwargs):
        raise AssertionError("inference must not build D")

    monkeypatch.setattr(factory, "make_discriminator", no_discriminator)
    config = ml_collections.ConfigDict(format_.read_config(checkpoints, FINAL))
    abstract = nnx.eval_shape(lambda: factory.make_generator(config.model, seed=0))
    _, params, batch_stats = nnx.split(abstract, nnx.Param, ...)

    restored = format_.read_generator(checkpoints, FINAL,
                                       {"params": params, "batch_stats": batch_stats})

    saved = restore_saved_state(checkpoints.parent, FINAL)
    # EMA is on in the tiny config: inference gets the averaged weights and statistics.
    assert_trees_equal(plain(restored["params"]), plain(saved["g_ema_params"]))
    assert_trees_equal(plain(restored["batch_stats"]), plain(saved["g_ema_batch_stats"]))
    for ema, live in (("g_ema_params", "g_params"), ("g_ema_batch_stats", "g_batch_stats")):
        assert not all(np.array_equal(a, b) for a, b in zip(
            jax.tree.leaves(saved[ema]), jax.tree.leaves(saved[live])))


def test_saved_config_is_the_run_config(checkpoints, records_dir):
    saved = format_.read_config(checkpoints, FINAL)
    assert saved == json.loads(tiny_config(records_dir).to_json_best_effort())


def test_resolve_step_latest_best_and_explicit(checkpoints, finished_run):
    assert format_.resolve_step(checkpoints) == FINAL
    assert format_.resolve_step(checkpoints, step=5) == 5
    events = event_accumulator.EventAccumulator(str(finished_run.workdir / "tb")).Reload()
    val_error = {e.step: e.value for e in events.Scalars("val/ab_mae")}  # best_metric l1
    assert format_.resolve_step(checkpoints, best=True) == min(val_error, key=val_error.get)
    with pytest.raises(format_.CheckpointNotFoundError, match=r"no checkpoint for step 7 "
                                                             r"\(available: \[5, 10\]\)"):
        format_.resolve_step(checkpoints, step=7)
    with pytest.raises(format_.CheckpointNotFoundError, match="no such checkpoint directory"):
        format_.resolve_step(checkpoints.parent / "elsewhere")


def test_a_half_written_checkpoint_is_never_the_latest(checkpoints, tmp_path):
    copy = tmp_path / "checkpoints"
    shutil.copytree(checkpoints, copy)
    # What a run killed in the middle of an asynchronous save leaves behind.
    shutil.copytree(copy / str(FINAL), copy / "15.orbax-checkpoint-tmp")
    manager = checkpoint.Checkpointer(copy)
    try:
        assert manager.latest_step() == FINAL
    finally:
        manager.close()
    assert format_.resolve_step(copy) == FINAL


def _state(step: int):
    """A TrainState of two tiny arrays (what the checkpoint format needs of one)."""
    import jax.numpy as jnp

    from jaxcolor.train.state import TrainState

    w = {"w": jnp.full((2,), float(step))}
    return TrainState(step=jnp.asarray(step, jnp.int32), g_params=w, g_batch_stats={},
                      g_opt_state=(), d_params={}, d_batch_stats={}, d_opt_state=(),
                      g_ema_params=None)


def test_the_best_checkpoint_is_the_runs_best_metric_not_validation_l1(tmp_path):
    """Validation L1 keeps the dull early GAN state; the combined score keeps the most
    colourful-enough one that stays within 0.5 dB of the gray image's PSNR, not the garish
    last one (the figures are a GAN phase's typical swing)."""
    import grain

    evaluations = {10: {"ab_mae": 7.0, "psnr": 22.8, "psnr_gray": 23.0, "delta_cf": 17.3},
                   20: {"ab_mae": 7.4, "psnr": 22.6, "psnr_gray": 23.0, "delta_cf": 6.0},
                   30: {"ab_mae": 9.0, "psnr": 19.9, "psnr_gray": 23.0, "delta_cf": 3.3}}
    data_iter = iter(grain.MapDataset.range(4).to_iter_dataset())
    for metric, best in (("l1", 10), ("combined", 20), ("delta_cf", 30), ("psnr", 10)):
        directory = tmp_path / metric
        writer = checkpoint.Checkpointer(directory, keep=1, keep_best=1, async_save=False)
        try:
            for step, summary in evaluations.items():
                writer.save(_state(step), data_iter=data_iter, config_json="{}", phase="gan",
                            metrics=format_.checkpoint_metrics(summary, metric),
                            best_metric=metric)
        finally:
            writer.close()
        assert format_.resolve_step(directory, best=True) == best, metric
        assert format_.read_metas(directory)[best]["best_metric"] == metric
        assert sorted(format_.read_metas(directory)) == sorted({best, 30})  # best + latest


def test_a_checkpoint_from_before_the_ema_had_statistics_resumes(tmp_path):
    """Written by the earlier format (no `g_ema_batch_stats`): the run resumes, its EMA's
    statistics starting from the live ones."""
    import dataclasses

    import grain
    import jax.numpy as jnp
    import orbax.checkpoint as ocp

    from jaxcolor.train.state import TrainState

    new = TrainState(step=jnp.asarray(5, jnp.int32), g_params={"w": jnp.ones(2)},
                     g_batch_stats={"mean": jnp.full((2,), 3.0)}, g_opt_state=(), d_params={},
                     d_batch_stats={}, d_opt_state=(), g_ema_params={"w": jnp.zeros(2)},
                     g_ema_batch_stats={"mean": jnp.zeros(2)})
    old = {f.name: getattr(new, f.name) for f in dataclasses.fields(new)
           if f.name != "g_ema_batch_stats"}
    data_iter = iter(grain.MapDataset.range(4).to_iter_dataset())
    with ocp.CheckpointManager(tmp_path, item_names=("state", "data_iter", "meta")) as manager:
        manager.save(5, args=ocp.args.Composite(
            state=ocp.args.StandardSave(old), meta=ocp.args.JsonSave({"step": 5}),
            data_iter=grain.checkpoint.CheckpointSave(data_iter)))
    reader = checkpoint.Checkpointer(tmp_path, async_save=False)
    try:
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), new)
        state, meta = reader.restore(5, abstract, data_iter=data_iter)
    finally:
        reader.close()
    assert isinstance(state, TrainState) and meta["step"] == 5
    np.testing.assert_array_equal(state.g_ema_batch_stats["mean"], [3.0, 3.0])
    np.testing.assert_array_equal(state.g_ema_params["w"], [0.0, 0.0])
