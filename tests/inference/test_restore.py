"""`jaxcolor.inference.restore`: a checkpoint -> G and the run's config, wherever the checkpoint
is given (a run workdir or its checkpoints/ directory)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcolor import checkpoints
from jaxcolor.errors import UsageError
from jaxcolor.inference import restore
from tests.support import TINY_RUN_STEPS, trained_workdir


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return trained_workdir(tmp_path_factory)


def test_a_workdir_and_its_checkpoints_directory_are_the_same_checkpoint(workdir):
    from_workdir = restore.restore(workdir)
    from_checkpoints = restore.restore(workdir / "checkpoints", step=TINY_RUN_STEPS)
    assert from_workdir.step == from_checkpoints.step == TINY_RUN_STEPS
    assert from_workdir.directory == (workdir / "checkpoints").absolute()
    assert from_workdir.config.model.backbone == "resnet18" and "data" in from_workdir.config
    for a, b in zip(jax.tree.leaves(from_workdir.variables),
                    jax.tree.leaves(from_checkpoints.variables)):
        np.testing.assert_array_equal(a, b)


def test_the_restored_generator_runs_in_eval_mode(workdir):
    restored = restore.restore(workdir, step=2)
    generator = restored.generator()
    l_norm = jnp.zeros((2, 32, 32, 1))
    first, second = generator(l_norm), generator(l_norm[:1])
    # Eval mode: BatchNorm uses running statistics, so an image's colours do not depend on
    # the rest of its batch.
    np.testing.assert_allclose(first[:1], second, atol=1e-5)
    assert first.shape == (2, 32, 32, 2)


@pytest.mark.parametrize("kwargs, message", [
    ({"step": 99}, r"no checkpoint for step 99 \(available: \[2, 3\]\)"),
])
def test_a_missing_step_is_a_usage_error(workdir, kwargs, message):
    with pytest.raises(checkpoints.CheckpointNotFoundError, match=message) as info:
        restore.restore(workdir, **kwargs)
    assert isinstance(info.value, UsageError)


def test_a_directory_without_checkpoints_is_a_usage_error(tmp_path):
    with pytest.raises(checkpoints.CheckpointNotFoundError, match="no such checkpoint directory"):
        restore.restore(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(checkpoints.CheckpointNotFoundError, match="holds no complete checkpoint"):
        restore.restore(tmp_path / "empty")
    (tmp_path / "g.onnx").write_bytes(b"onnx")
    with pytest.raises(checkpoints.CheckpointNotFoundError,
                       match=r"g.onnx: a file, not a checkpoint directory \(a run directory"):
        restore.restore(tmp_path / "g.onnx")
