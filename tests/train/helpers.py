"""Shared pieces of the training tests: tiny synthetic records, a tiny run config, the
run's models/steps built as the loop builds them, and checkpoint/subprocess helpers.
Fixtures built on them live in conftest.py.

The tiny run: ResNet-18 encoder, a 16-wide decoder, an 8-wide PatchGAN, 96x96 crops of
104x104 records, global batch 4. Every test that trains uses this one config (or changes
only what leaves the compiled programs alone: phase lengths that keep G's and D's update
counts, cadences), so the persistent compilation cache compiles each step once per session.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx
from PIL import Image

from jaxcolor import color, configs
from jaxcolor.data.records import Records, RecordsWriter
from jaxcolor.train import loop, monitor
from jaxcolor.train.setup import setup

REPO = Path(__file__).resolve().parents[2]
RECORDS_COUNT, RECORDS_SIZE, VAL_EVERY = 40, 104, 5  # 32 training, 8 validation records
# 96: at 32 the encoder's last stage is 1x1, BatchNorm there normalises 4 numbers per
# channel and gradients change by ~1% with the order of the batch (too ill-conditioned to
# compare 1 and 4 devices); at 64 (2x2) XLA:CPU takes a slow convolution path (3x slower
# steps than at 96); at 96 (3x3) gradients agree to ~1e-5 whatever the summation order.
CROP, BATCH = 96, 4
PRETRAIN, D_PRETRAIN, GAN = 4, 2, 4  # G makes 8 updates, D 6
ENCODER_FREEZE_STEPS, EMA_DECAY = 2, 0.9


def colourful_images(count: int, size: int, seed: int = 0) -> np.ndarray:
    """uint8 RGB [count, size, size, 3]: smooth random colour fields plus a little noise,
    so they have colour (they pass the colourfulness filter) and structure to learn."""
    rng = np.random.default_rng(seed)
    out = np.empty((count, size, size, 3), np.uint8)
    for i in range(count):
        coarse = rng.integers(0, 256, (4, 4, 3), np.uint8)
        smooth = np.asarray(Image.fromarray(coarse).resize((size, size),
                                                           Image.Resampling.BILINEAR))
        noise = rng.integers(-12, 13, (size, size, 3))
        out[i] = np.clip(smooth.astype(np.int32) + noise, 0, 255).astype(np.uint8)
    return out


def write_records(directory: Path, count: int = RECORDS_COUNT, size: int = RECORDS_SIZE,
                  val_every: int = VAL_EVERY, seed: int = 0) -> Path:
    rgb = colourful_images(count, size, seed)
    with RecordsWriter(directory, size, size, val_every=val_every) as writer:
        writer.add(*color.encode_lab8(color.rgb_to_lab_np(rgb)))
    return directory


def load_config(name: str, variant: str = "") -> ml_collections.ConfigDict:
    """experiments/configs/<name>.py's config (`jaxcolor.configs.load`)."""
    path = REPO / "experiments" / "configs" / f"{name}.py"
    return configs.load(f"{path}:{variant}" if variant else path)


def tiny_config(train_dir, **phases) -> ml_collections.ConfigDict:
    """The gan.py recipe shrunk to seconds per phase; `phases` overrides config.phases.

    It turns on what a real run may use so the tests exercise it: the encoder freeze, an
    EMA of G, and AdamW for G (weight decay must not move a frozen encoder either).
    """
    config = load_config("gan")
    config.seed = 0
    config.batch_size = BATCH
    config.phases.pretrain_steps = PRETRAIN
    config.phases.d_pretrain_steps = D_PRETRAIN
    config.phases.gan_steps = GAN
    config.phases.update(phases)
    config.data.train = None if train_dir is None else str(train_dir)
    config.data.crop_size = CROP
    config.data.prefetch = 2
    config.model.backbone = "resnet18"
    config.model.decoder_widths = (16, 16, 16, 16, 8)
    config.model.d_width = 8
    config.model.compute_dtype = "float32"
    config.g.lr = 1e-3
    config.g.schedule = "constant"  # gan.py's cosine reaches 0 within these few steps
    config.g.weight_decay = 1e-4
    config.g.encoder_freeze_steps = ENCODER_FREEZE_STEPS
    config.g.ema_decay = EMA_DECAY
    config.loss.lambda_cf = 0.0  # plain L1: the tests of each loss switch turn it on
    config.best_metric = "l1"
    config.log_every = 1  # one point per step: tests compare runs step by step
    config.eval_every = 5
    config.eval_max_images = 8
    config.probe_images = 3
    config.checkpoint_every = 5
    config.compilation_cache = ""  # tests manage the cache (conftest.compile_cache)
    return config


def build_run(config, mesh=None, initial=None):
    """(setup, state) of `jaxcolor.train.setup`, as `loop.train_and_evaluate` builds them,
    so that tests driving the steps directly share its compiled programs. `initial`, a host
    copy of a state, is placed on the mesh instead of initialising (which compiles)."""
    run = setup(config, mesh)
    return run, (run.init_state() if initial is None else run.place(initial))


def run_steps(steps, state, batch, phases):
    """Apply the named phases' steps in order to one batch -> (final state, each step's
    metrics as floats)."""
    history = []
    for phase in phases:
        state, metrics = steps.for_phase(phase)(state, batch)
        history.append({k: float(v) for k, v in metrics.items()})
    return state, history


def fixed_batch(records_dir, n: int = BATCH) -> dict[str, np.ndarray]:
    """The centre CROPxCROP windows of the first `n` training records (uint8)."""
    records = Records(records_dir)
    L8, ab8 = records.read(records.split("train")[:n])
    lo = (RECORDS_SIZE - CROP) // 2
    window = (slice(None), slice(lo, lo + CROP), slice(lo, lo + CROP))
    return {"L": np.ascontiguousarray(L8[window]), "ab": np.ascontiguousarray(ab8[window])}


def to_host(tree):
    """A numpy copy of a tree of arrays (safe to keep after the arrays are donated)."""
    return jax.tree.map(lambda x: np.array(x, copy=True), tree)


def restore_saved_state(workdir, step: int) -> dict:
    """The `state` item of a run's checkpoint as a plain tree of numpy arrays."""
    path = Path(workdir).absolute() / "checkpoints" / str(step) / "state"
    with ocp.StandardCheckpointer() as checkpointer:
        return to_host(checkpointer.restore(path))


def plain(tree):
    """Nested dicts with str keys and numpy leaves, whatever form G's variables come in: an
    `nnx.State`, or the raw checkpointed tree where each variable is {"value": array}."""
    if isinstance(tree, nnx.State):
        tree = nnx.to_pure_dict(tree)
    if isinstance(tree, Mapping):
        if set(tree) == {"value"}:
            return plain(tree["value"])
        return {str(k): plain(v) for k, v in tree.items()}
    return np.asarray(tree)


def assert_trees_equal(a, b, **tolerance) -> None:
    """Same structure, and every leaf equal: bitwise, or `assert_allclose(**tolerance)`."""
    flat_a, tree_a = jax.tree_util.tree_flatten_with_path(a)
    flat_b, tree_b = jax.tree_util.tree_flatten_with_path(b)
    assert [p for p, _ in flat_a] == [p for p, _ in flat_b], (tree_a, tree_b)
    for (path, x), (_, y) in zip(flat_a, flat_b):
        name = jax.tree_util.keystr(path)
        if tolerance:
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), err_msg=name, **tolerance)
        else:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=name)


@dataclasses.dataclass
class RunRecord:
    workdir: Path
    recorded: list  # (step, phase, metrics) as the loop hands them to Monitor.record
    returned: dict  # train_and_evaluate's return value


def train_recording(config, workdir, *, after_step=None) -> RunRecord:
    """`train_and_evaluate(config, workdir)`, keeping every step's metrics.

    `after_step(n)`, if given, is called once the loop has dispatched its n-th step of this
    call (n = 1, 2, ...), before it decides whether to evaluate, save or stop.
    """
    recorded, dispatched = [], [0]
    record, step_timing = monitor.Monitor.record, monitor.Monitor.step_timing

    def recording(self, step, phase, metrics):
        recorded.append((step, phase, dict(metrics)))
        return record(self, step, phase, metrics)

    def timing(self, *args, **kwargs):
        step_timing(self, *args, **kwargs)
        dispatched[0] += 1
        if after_step is not None:
            after_step(dispatched[0])

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(monitor.Monitor, "record", recording)
        mp.setattr(monitor.Monitor, "step_timing", timing)
        returned = loop.train_and_evaluate(config, workdir)
    return RunRecord(Path(workdir), recorded, returned)


def run_python(args: list[str], *, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python *args` from the repo root in a fresh interpreter."""
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
