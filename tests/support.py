"""What tests in several folders share: synthetic photos and records, the one tiny run config
(tests/tiny_config.py), the tiny trained run the inference and CLI tests colourise with, and
tree comparisons.

Every test that trains uses the tiny config, or changes only what leaves the compiled
programs alone (phase lengths that keep G's and D's update counts, cadences), so the
persistent compilation cache compiles each step once per session.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import jax
import ml_collections
import numpy as np
from flax import nnx
from PIL import Image

from jaxcolor import color, configs
from jaxcolor.data import stats as stats_lib
from jaxcolor.data.records import RecordsWriter

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "tests" / "tiny_config.py"
RECORDS_COUNT, RECORDS_SIZE, VAL_EVERY = 40, 104, 5  # 32 training, 8 validation records
# tests/tiny_config.py's numbers that tests reason with:
CROP, BATCH = 96, 4
PRETRAIN, D_PRETRAIN, GAN = 4, 2, 4  # G makes 8 updates, D 6
ENCODER_FREEZE_STEPS, EMA_DECAY = 2, 0.9
TINY_RUN_STEPS = 3  # the inference tests' run: checkpoints at steps 2 and 3, validated at 3


# ---- synthetic photos and records -------------------------------------------------------------


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
                  val_every: int = VAL_EVERY, seed: int = 0, *, gray=None,
                  shard_bytes: int | None = None) -> Path:
    """`count` colourful records of size x size (every `val_every`-th held out); the records
    `gray` selects (an index or slice) made gray, for the training filter to drop."""
    rgb = colourful_images(count, size, seed)
    if gray is not None:
        rgb[gray] = rgb[gray].mean(axis=-1, keepdims=True).astype(np.uint8)
    kwargs = {} if shard_bytes is None else {"shard_bytes": shard_bytes}
    with RecordsWriter(directory, size, size, val_every=val_every, **kwargs) as writer:
        writer.add(*color.encode_lab8(color.rgb_to_lab_np(rgb)))
    return directory


def photo_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A colourful uint8 RGB test photo of any size."""
    tile = colourful_images(1, 48, seed)[0]
    return np.asarray(Image.fromarray(tile).resize((width, height), Image.Resampling.BILINEAR))


def assert_keeps_lightness(inp_rgb: np.ndarray, out_rgb: np.ndarray, step: int = 1) -> None:
    """Output L equals the input's L up to 8-bit rounding (~1 L unit)."""
    L_in = color.rgb_to_lab_np(inp_rgb[::step, ::step])[..., 0]
    L_out = color.rgb_to_lab_np(out_rgb[::step, ::step, :3])[..., 0]
    assert np.abs(L_out - L_in).max() < 1.0


def record_stats_reference(L8: np.ndarray, ab8: np.ndarray) -> np.ndarray:
    """A single-threaded numpy reference of `jaxcolor.data.stats.compute_stats`."""
    lab = color.decode_lab8(L8, ab8).astype(np.float64)
    rgb = color.lab_to_rgb_np(lab).astype(np.float64) * 255.0
    rg = np.abs(rgb[..., 0] - rgb[..., 1])
    yb = np.abs(0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2])
    ax = (1, 2)
    cf = np.sqrt(rg.var(ax) + yb.var(ax)) + 0.3 * np.sqrt(rg.mean(ax) ** 2 + yb.mean(ax) ** 2)
    stats = np.empty(len(L8), stats_lib.STATS_DTYPE)
    stats["colorfulness"] = cf
    stats["a_std"] = lab[..., 1].std(ax)
    stats["b_std"] = lab[..., 2].std(ax)
    stats["ab_max"] = np.abs(lab[..., 1:]).max((1, 2, 3))
    stats["l_std"] = lab[..., 0].std(ax)
    stats["l_mean"] = lab[..., 0].mean(ax)
    return stats


# ---- configs and the tiny trained run ---------------------------------------------------------


def load_config(name: str, variant: str = "") -> ml_collections.ConfigDict:
    """experiments/configs/<name>.py's config (`jaxcolor.configs.load`)."""
    path = REPO / "experiments" / "configs" / f"{name}.py"
    return configs.load(f"{path}:{variant}" if variant else path)


def tiny_config(train_dir, **phases) -> ml_collections.ConfigDict:
    """tests/tiny_config.py's config training on `train_dir`; `phases` overrides
    config.phases."""
    config = configs.load(TINY_CONFIG)
    config.phases.update(phases)
    config.data.train = None if train_dir is None else str(train_dir)
    return config


def trained_workdir(tmp_path_factory) -> Path:
    """A run directory with checkpoints of a 3-step L1 run of the tiny config at 32 px,
    trained once per pytest session (under the session's base temp directory)."""
    workdir = tmp_path_factory.getbasetemp() / "infer_tiny_run"
    if (workdir / "checkpoints" / str(TINY_RUN_STEPS)).is_dir():
        return workdir
    from jaxcolor.train import loop

    records = write_records(tmp_path_factory.mktemp("infer_records") / "records", size=40)
    config = tiny_config(records, pretrain_steps=TINY_RUN_STEPS, d_pretrain_steps=0, gan_steps=0)
    config.data.crop_size = 32  # the smallest the encoder takes: the fastest compile
    config.eval_every = TINY_RUN_STEPS
    config.checkpoint_every = 2
    loop.train_and_evaluate(config, workdir)
    return workdir


def hinted_colorizer(crop_size: int = 64, model: dict | None = None, **kwargs):
    """A hint-taking `Colorizer` of the tiny config: random weights, with the hint branch's
    zero-initialised projections switched on by hand (as training moves them), so hints
    change the colours. `model` updates config.model (e.g. hint_scales); `kwargs` go to
    `Colorizer.from_config` (backend, batch_size...)."""
    from jaxcolor.inference.colorizer import Colorizer

    config = tiny_config(None)
    config.model.hints = True
    config.model.update(model or {})
    config.data.crop_size = crop_size
    colorizer = Colorizer.from_config(config, **kwargs)
    for i, proj in colorizer.variables["params"]["hints"]["proj"].items():
        proj["kernel"][...] = jax.random.normal(jax.random.key(int(i)), proj["kernel"].shape)
    return colorizer


# ---- trees and processes ----------------------------------------------------------------------


def to_host(tree):
    """A numpy copy of a tree of arrays (safe to keep after the arrays are donated)."""
    return jax.tree.map(lambda x: np.array(x, copy=True), tree)


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


def run_python(args: list[str], *, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python *args` from the repo root in a fresh interpreter."""
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
