"""`jaxcolor.inference.Colorizer` on a checkpoint of a tiny real training run: restore,
any size and mode in, the input's size and lightness out, batching, backend choice."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from PIL import Image

from jaxcolor import color
from jaxcolor.inference import colorizer as colorizer_lib
from jaxcolor.inference import photo as photo_lib
from jaxcolor.inference.colorizer import Colorizer
from tests.support import TINY_RUN_STEPS, assert_keeps_lightness, photo_rgb, trained_workdir


@pytest.fixture(scope="module")
def colorizer(tmp_path_factory) -> Colorizer:
    return Colorizer.from_checkpoint(trained_workdir(tmp_path_factory), batch_size=4)


def test_restores_generator_and_config_from_workdir_or_checkpoints_dir(tmp_path_factory,
                                                                       colorizer):
    workdir = trained_workdir(tmp_path_factory)
    assert colorizer.step == TINY_RUN_STEPS  # latest by default
    assert colorizer.render_size == colorizer.config.data.crop_size  # default: training crop
    assert colorizer.config.model.backbone == "resnet18"
    earlier = Colorizer.from_checkpoint(workdir / "checkpoints", step=2)
    assert earlier.step == 2
    assert Colorizer.from_checkpoint(workdir, best=True).step == TINY_RUN_STEPS
    assert Colorizer.from_checkpoint(workdir, render_size=50).render_size == 64  # x32


@pytest.mark.parametrize("height, width", [(333, 517), (517, 333), (8, 8), (3000, 4000)])
def test_output_has_input_size_and_lightness(colorizer, height, width):
    rgb = photo_rgb(height, width)
    out = colorizer.colorize(rgb)
    assert out.shape == (height, width, 3) and out.dtype == np.uint8
    assert_keeps_lightness(rgb, out, step=max(1, height // 300))
    assert np.abs(color.rgb_to_lab_np(out)[..., 1:]).mean() > 0.5  # it did add colour


def test_pil_in_pil_out_with_alpha_kept(colorizer):
    rgb = photo_rgb(60, 90)
    alpha = np.tile(np.linspace(0, 255, 90).astype(np.uint8), (60, 1))
    rgba = Image.fromarray(np.dstack([rgb, alpha]))
    inputs = [Image.fromarray(rgb), rgba, Image.fromarray(rgb).convert("L"),
              rgba.convert("LA"), Image.fromarray(rgb).convert("P"),
              Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)]
    outs = colorizer.colorize(inputs)
    assert isinstance(outs, list) and len(outs) == len(inputs)
    assert [o.mode for o in outs] == ["RGB", "RGBA", "RGB", "RGBA", "RGB", "RGB"]
    assert all(o.size == (90, 60) for o in outs)
    np.testing.assert_array_equal(np.asarray(outs[1])[..., 3], alpha)
    assert_keeps_lightness(rgb, np.asarray(outs[1]))
    single = colorizer.colorize(Image.fromarray(rgb))
    assert isinstance(single, Image.Image)


def test_numpy_in_numpy_out(colorizer):
    rgb = photo_rgb(40, 70)
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    rgba = np.dstack([rgb, np.full((40, 70), 9, np.uint8)])
    out_gray, out_rgb, out_rgba = colorizer.colorize([gray, rgb, rgba])
    assert out_gray.shape == out_rgb.shape == (40, 70, 3)
    assert out_rgba.shape == (40, 70, 4) and np.all(out_rgba[..., 3] == 9)
    assert_keeps_lightness(np.stack([gray] * 3, -1), out_gray)
    with pytest.raises(photo_lib.InputImageError, match="at least 8 pixels"):
        colorizer.colorize(rgb[:7])
    with pytest.raises(photo_lib.InputImageError, match="PIL image or a numpy array"):
        colorizer.colorize("photo.jpg")


def test_batching_does_not_change_results(colorizer):
    photos = [photo_rgb(50 + 7 * i, 64, seed=i) for i in range(5)]
    together = colorizer.colorize(photos)
    for photo, batched in zip(photos, together):  # (batch shapes may round differently)
        diff = np.abs(colorizer.colorize(photo).astype(int) - batched)
        assert diff.max() <= 1 and diff.mean() < 0.01


def test_auto_backend_picks_onnx_only_on_a_cpu_with_the_onnx_extra(monkeypatch):
    from jaxcolor.inference.onnx import runtime

    resolve = colorizer_lib.resolve_backend
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    monkeypatch.setattr(runtime, "available", lambda: True)
    assert resolve("auto") == "onnx"
    monkeypatch.setattr(runtime, "available", lambda: False)
    assert resolve("auto") == "jax"  # not installed: JAX, no error
    monkeypatch.setattr(runtime, "available", lambda: True)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert resolve("auto") == "jax"  # accelerators: XLA
    assert resolve("onnx") == "onnx" and resolve("jax") == "jax"


def test_device_and_host_compose_give_the_same_colours(tmp_path_factory):
    workdir = trained_workdir(tmp_path_factory)
    host = Colorizer.from_checkpoint(workdir, batch_size=4, compose="host")
    device = Colorizer.from_checkpoint(workdir, batch_size=4, compose="device")
    assert (host.compose, device.compose) == ("host", "device")
    rgba = np.dstack([photo_rgb(200, 150, seed=2), np.full((200, 150), 77, np.uint8)])
    photos = [photo_rgb(333, 517), np.asarray(Image.fromarray(photo_rgb(90, 60)).convert("L")),
              rgba]
    for want, got in zip(host.colorize(photos), device.colorize(photos)):
        assert want.shape == got.shape and got.dtype == np.uint8
        assert np.abs(want.astype(int) - got.astype(int)).max() <= 1
    assert device.colorize(rgba)[..., 3].min() == 77  # alpha kept


def test_auto_compose_is_the_device_only_on_accelerators(monkeypatch):
    resolve = colorizer_lib.resolve_compose
    assert resolve("host", "jax") == "host" and resolve("device", "onnx") == "device"
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    assert resolve("auto", "jax") == "host" and resolve("auto", "onnx") == "host"
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert resolve("auto", "jax") == "device" and resolve("auto", "onnx") == "host"
