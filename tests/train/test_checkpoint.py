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

from helpers import assert_trees_equal, plain, restore_saved_state, tiny_config
from jaxcolor.inference import restore
from jaxcolor.models import factory
from jaxcolor.train import checkpoint

FINAL = 10


@pytest.fixture(scope="module")
def checkpoints(finished_run):
    return finished_run.workdir / "checkpoints"


def test_generator_restores_alone_from_the_saved_config(checkpoints, monkeypatch):
    def no_discriminator(*args, **kwargs):
        raise AssertionError("inference must not build D")

    monkeypatch.setattr(factory, "make_discriminator", no_discriminator)
    config = ml_collections.ConfigDict(restore.read_config(checkpoints, FINAL))
    abstract = nnx.eval_shape(lambda: factory.make_generator(config.model, seed=0))
    _, params, batch_stats = nnx.split(abstract, nnx.Param, ...)

    restored = restore.restore_generator(checkpoints, FINAL,
                                         {"params": params, "batch_stats": batch_stats})

    saved = restore_saved_state(checkpoints.parent, FINAL)
    # EMA is on in the tiny config: inference gets the averaged weights.
    assert_trees_equal(plain(restored["params"]), plain(saved["g_ema_params"]))
    assert_trees_equal(plain(restored["batch_stats"]), plain(saved["g_batch_stats"]))
    assert not all(np.array_equal(a, b) for a, b in zip(
        jax.tree.leaves(saved["g_ema_params"]), jax.tree.leaves(saved["g_params"])))


def test_saved_config_is_the_run_config(checkpoints, records_dir):
    saved = restore.read_config(checkpoints, FINAL)
    assert saved == json.loads(tiny_config(records_dir).to_json_best_effort())


def test_resolve_step_latest_best_and_explicit(checkpoints, finished_run):
    assert restore.resolve_step(checkpoints) == FINAL
    assert restore.resolve_step(checkpoints, step=5) == 5
    events = event_accumulator.EventAccumulator(str(finished_run.workdir / "tb")).Reload()
    val_l1 = {e.step: e.value for e in events.Scalars("val/l1")}
    assert restore.resolve_step(checkpoints, best=True) == min(val_l1, key=val_l1.get)
    with pytest.raises(restore.CheckpointNotFoundError, match=r"no checkpoint for step 7 "
                                                             r"\(available: \[5, 10\]\)"):
        restore.resolve_step(checkpoints, step=7)
    with pytest.raises(restore.CheckpointNotFoundError, match="no such checkpoint directory"):
        restore.resolve_step(checkpoints.parent / "elsewhere")


def test_a_half_written_checkpoint_is_never_the_latest(checkpoints, tmp_path):
    copy = tmp_path / "checkpoints"
    shutil.copytree(checkpoints, copy)
    # What a run killed in the middle of an asynchronous save leaves behind.
    shutil.copytree(copy / str(FINAL), copy / "15.orbax-checkpoint-tmp")
    manager = checkpoint.Checkpointer(copy)
    try:
        assert manager.latest_step() == FINAL
        assert 15 not in manager.all_steps()
    finally:
        manager.close()
    assert restore.resolve_step(copy) == FINAL
