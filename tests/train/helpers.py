"""Shared pieces of the training tests: tiny synthetic records, a tiny run config,
subprocess and checkpoint helpers. Fixtures built on them live in conftest.py.

The tiny run: ResNet-18 encoder, a 16-wide decoder, an 8-wide PatchGAN, 32x32 crops of
40x40 records, global batch 4. A whole three-phase run compiles in well under a minute on
two CPU cores.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import jax
import ml_collections
import numpy as np
from PIL import Image

from jaxcolor import color
from jaxcolor.data.records import RecordsWriter

REPO = Path(__file__).resolve().parents[2]
RECORDS_COUNT, RECORDS_SIZE, VAL_EVERY = 40, 40, 5  # 32 training, 8 validation records
CROP, BATCH = 32, 4


def colourful_images(count: int, size: int, seed: int = 0) -> np.ndarray:
    """uint8 RGB [count, size, size, 3]: smooth random colour fields plus a little noise,
    so they have both colour (they pass the colourfulness filter) and structure to learn."""
    rng = np.random.default_rng(seed)
    out = np.empty((count, size, size, 3), np.uint8)
    for i in range(count):
        coarse = rng.integers(0, 256, (4, 4, 3), np.uint8)
        smooth = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BILINEAR))
        noise = rng.integers(-12, 13, (size, size, 3))
        out[i] = np.clip(smooth.astype(np.int32) + noise, 0, 255).astype(np.uint8)
    return out


def write_records(directory: Path, count: int = RECORDS_COUNT, size: int = RECORDS_SIZE,
                  val_every: int = VAL_EVERY, seed: int = 0) -> Path:
    rgb = colourful_images(count, size, seed)
    with RecordsWriter(directory, size, size, val_every=val_every) as writer:
        writer.add(*color.encode_lab8(color.rgb_to_lab_np(rgb)))
    return directory


def _gan_module():
    spec = importlib.util.spec_from_file_location(
        "jaxcolor_test_gan_config", REPO / "experiments" / "configs" / "gan.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_config(train_dir, **phases) -> ml_collections.ConfigDict:
    """The gan.py recipe shrunk to seconds per phase; `phases` overrides config.phases."""
    config = _gan_module().get_config()
    config.batch_size = BATCH
    config.phases.pretrain_steps = 4
    config.phases.d_pretrain_steps = 2
    config.phases.gan_steps = 4
    config.phases.update(phases)
    config.data.train = str(train_dir) if train_dir is not None else None
    config.data.crop_size = CROP
    config.data.prefetch = 2
    config.model.depth = 18
    config.model.decoder_widths = (16, 16, 16, 16, 8)
    config.model.d_width = 8
    config.model.compute_dtype = "float32"
    config.log_every = 1  # one TensorBoard point per step: tests compare steps one by one
    config.eval_every = 5
    config.eval_max_images = 8
    config.probe_images = 3
    config.checkpoint_every = 5
    config.compilation_cache = ""  # tests manage the cache themselves (see fixture below)
    return config


def run_python(code: str, *, env: dict | None = None, timeout: float = 300,
               args: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter from the repo root (own XLA flags, own devices)."""
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def restore_saved_state(workdir: Path, step: int) -> dict:
    """The `state` item of a checkpoint as a plain tree of numpy arrays (no target needed)."""
    import orbax.checkpoint as ocp

    with ocp.StandardCheckpointer() as ckptr:
        restored = ckptr.restore(Path(workdir).absolute() / "checkpoints" / str(step) / "state")
    return jax.tree.map(np.asarray, restored)


def assert_trees_equal(a, b, **tolerance) -> None:
    """Same structure, and leaves equal (bitwise without tolerance, else allclose)."""
    paths_a = jax.tree_util.tree_flatten_with_path(a)[0]
    paths_b = jax.tree_util.tree_flatten_with_path(b)[0]
    assert [p for p, _ in paths_a] == [p for p, _ in paths_b]
    for (path, x), (_, y) in zip(paths_a, paths_b):
        name = jax.tree_util.keystr(path)
        if tolerance:
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), err_msg=name, **tolerance)
        else:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=name)
