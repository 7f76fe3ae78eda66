"""The tiny trained run the inference and CLI tests share, and photo helpers.

`trained_workdir` trains a 3-step L1 run of the tiny test model once per pytest session
(cached under the session's base temp directory) and returns its run directory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from jaxcolor import color
from train.helpers import colourful_images, tiny_config, write_records

TINY_RUN_STEPS = 3  # checkpoints at steps 2 and 3; validation (hence a "best") at step 3


def trained_workdir(tmp_path_factory) -> Path:
    """A run directory with checkpoints of a 3-step L1 run of the tiny test model."""
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


def photo_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A colourful uint8 RGB test photo of any size."""
    tile = colourful_images(1, 48, seed)[0]
    return np.asarray(Image.fromarray(tile).resize((width, height), Image.Resampling.BILINEAR))


def assert_keeps_lightness(inp_rgb: np.ndarray, out_rgb: np.ndarray, step: int = 1) -> None:
    """Output L equals the input's L up to 8-bit rounding (~1 L unit)."""
    L_in = color.rgb_to_lab_np(inp_rgb[::step, ::step])[..., 0]
    L_out = color.rgb_to_lab_np(out_rgb[::step, ::step, :3])[..., 0]
    assert np.abs(L_out - L_in).max() < 1.0
