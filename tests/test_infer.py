"""Inference: the full-resolution pixel work (`jaxcolor.photo`: geometry, edge-aware upsampling,
colour handling) and `jaxcolor.infer.Colorizer` on a checkpoint of a tiny real training run.

`trained_workdir` is shared with test_colorize.py and test_evaluate.py: the run is made once
per pytest session (cached under the session's base temp directory).
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from jaxcolor import color, infer
from jaxcolor import photo as photo_lib
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


@pytest.fixture(scope="module")
def colorizer(tmp_path_factory) -> infer.Colorizer:
    return infer.Colorizer.from_checkpoint(trained_workdir(tmp_path_factory), batch_size=4)


def photo_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A colourful uint8 RGB test photo of any size."""
    tile = colourful_images(1, 48, seed)[0]
    return np.asarray(Image.fromarray(tile).resize((width, height), Image.Resampling.BILINEAR))


def assert_keeps_lightness(inp_rgb: np.ndarray, out_rgb: np.ndarray, step: int = 1) -> None:
    """Output L equals the input's L up to 8-bit rounding (~1 L unit)."""
    L_in = color.rgb_to_lab_np(inp_rgb[::step, ::step])[..., 0]
    L_out = color.rgb_to_lab_np(out_rgb[::step, ::step, :3])[..., 0]
    assert np.abs(L_out - L_in).max() < 1.0


# --------------------------------------------------------------------------------------
# Pieces, without a model.
# --------------------------------------------------------------------------------------


def test_render_keeps_aspect_and_pads_instead_of_stretching():
    photo = photo_lib.Photo(photo_rgb(333, 517))
    square, inner = photo_lib.render_lightness(photo, 64)
    assert square.shape == (64, 64)
    assert inner == (41, 64)  # 333 / 517 * 64 = 41.2: the long side fills the square
    cropped = photo_lib.crop_render(square, inner)
    assert cropped.shape == inner
    # The padding mirrors the photo (reflect), it is not a constant or a stretched copy.
    top = (64 - 41) // 2
    np.testing.assert_allclose(square[top - 1], square[top + 1])


def test_lightness_matches_the_colour_module():
    rgb = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    np.testing.assert_allclose(photo_lib.lightness(rgb), color.rgb_to_lab_np(rgb)[..., 0],
                               atol=1e-3)
    gray = rgb[..., 0]
    np.testing.assert_allclose(photo_lib.lightness(gray),
                               color.rgb_to_lab_np(np.stack([gray] * 3, -1))[..., 0], atol=1e-3)


def test_edge_aware_upsampling_keeps_colour_on_its_side_of_an_edge():
    # Truth: colour tied to lightness, with an edge that falls between low-res pixels.
    h, w, factor = 64, 256, 8
    L_full = np.where(np.arange(w) < 101, 30.0, 70.0).astype(np.float32)[None].repeat(h, 0)
    ab_of = lambda L: np.stack([(L - 50.0) * 1.5, (50.0 - L) * 0.5], -1)
    L_low = np.asarray(Image.fromarray(L_full).resize((w // factor, h // factor),
                                                      Image.Resampling.BOX))
    ab_low = ab_of(L_low)
    photo = photo_lib.Photo(L_full)
    errors = {}
    for mode in ("bilateral", "bilinear"):
        out = photo_lib.compose(photo, ab_low, L_low, upsample=mode)
        ab_out = color.rgb_to_lab_np(out)[..., 1:]
        error = np.abs(ab_out - ab_of(L_full)).max(-1)
        errors[mode] = error[:, 101 - 12:101 + 12].mean()  # the band around the edge
        assert error[:, :80].max() < 1.0 and error[:, 124:].max() < 1.0  # exact away from it
    assert errors["bilinear"] > 8  # bilinear smears colour across the edge
    assert errors["bilateral"] < errors["bilinear"] / 2  # the edge-aware one much less


def test_out_of_gamut_colour_loses_chroma_not_lightness():
    L = np.array([[20.0, 50.0, 90.0, 97.0]], np.float32)
    ab = np.array([[[100.0, -100.0], [-100.0, 100.0], [80.0, 80.0], [-90.0, 60.0]]], np.float32)
    kept = photo_lib.lab_to_rgb8_keep_l(L, ab[..., 0], ab[..., 1])
    clipped = color.rgb01_to_uint8(color.lab_to_rgb_np(np.concatenate([L[..., None], ab], -1)))
    L_kept = color.rgb_to_lab_np(kept)[..., 0]
    L_clipped = color.rgb_to_lab_np(clipped)[..., 0]
    assert np.abs(L_kept - L).max() < 1.0
    assert np.abs(L_clipped - L).max() > 3.0  # what plain clipping would have done
    assert np.all(np.abs(color.rgb_to_lab_np(kept)[..., 1:]).max(-1) > 5)  # still coloured


def test_gamut_mapping_keeps_in_gamut_colours_and_takes_the_largest_chroma_that_fits():
    rng = np.random.default_rng(0)
    L = rng.uniform(5, 95, (64, 64)).astype(np.float32)
    ab = rng.normal(0, 40, (64, 64, 2)).astype(np.float32)
    rgb = photo_lib.lab_to_rgb8_keep_l(L, ab[..., 0], ab[..., 1])
    exact = color.lab_to_rgb_np(np.concatenate([L[..., None], ab], -1), clip=False)
    inside = (exact.min(-1) >= 0) & (exact.max(-1) <= 1)
    assert 0.2 < inside.mean() < 0.9  # both kinds of pixel are tested
    plain = color.rgb01_to_uint8(exact)
    assert np.abs(rgb[inside].astype(int) - plain[inside]).max() <= 1
    # Outside: scaled towards gray no further than needed (12 bisection steps), so
    # the colour ends on the gamut's boundary: some channel at (or next to) 0 or 255.
    out = rgb[~inside].astype(int)
    on_boundary = (out.min(-1) <= 1) | (out.max(-1) >= 254)
    assert on_boundary.mean() > 0.99
    hue_in, hue_out = (np.arctan2(x[..., 1], x[..., 0]) for x in
                       (ab[~inside], color.rgb_to_lab_np(rgb[~inside])[:, 1:]))
    turned = np.abs(np.angle(np.exp(1j * (hue_out - hue_in))))
    assert np.median(turned) < 0.05  # hue kept (8-bit rounding moves it a little)


@pytest.mark.parametrize("array, message", [
    (np.zeros((7, 100), np.uint8), "at least 8 pixels"),
    (np.zeros((100, 5, 3), np.uint8), "at least 8 pixels"),
    (np.zeros((20, 20), np.int16), "uint8"),
    (np.zeros((20, 20, 2), np.uint8), "unsupported array"),
])
def test_unusable_arrays_are_refused_with_the_reason(array, message):
    with pytest.raises(photo_lib.InputImageError, match=message):
        photo_lib.Photo.from_array(array)


def test_float_lightness_out_of_range_is_refused():
    with pytest.raises(photo_lib.InputImageError, match=r"\[0, 100\]"):
        photo_lib.Photo(np.full((16, 16), 255.0, np.float32))


# --------------------------------------------------------------------------------------
# Colorizer on a real checkpoint.
# --------------------------------------------------------------------------------------


def test_restores_generator_and_config_from_workdir_or_checkpoints_dir(tmp_path_factory,
                                                                       colorizer):
    workdir = trained_workdir(tmp_path_factory)
    assert colorizer.step == TINY_RUN_STEPS  # latest by default
    assert colorizer.render_size == colorizer.config.data.crop_size  # default: training crop
    assert colorizer.config.model.depth == 18
    earlier = infer.Colorizer.from_checkpoint(workdir / "checkpoints", step=2)
    assert earlier.step == 2
    assert infer.Colorizer.from_checkpoint(workdir, best=True).step == TINY_RUN_STEPS
    assert infer.Colorizer.from_checkpoint(workdir, render_size=50).render_size == 64  # x32


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
    from jaxcolor import onnx_backend

    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    monkeypatch.setattr(onnx_backend, "available", lambda: True)
    assert infer.resolve_backend("auto") == "onnx"
    monkeypatch.setattr(onnx_backend, "available", lambda: False)
    assert infer.resolve_backend("auto") == "jax"  # not installed: JAX, no error
    monkeypatch.setattr(onnx_backend, "available", lambda: True)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert infer.resolve_backend("auto") == "jax"  # accelerators: XLA
    assert infer.resolve_backend("onnx") == "onnx" and infer.resolve_backend("jax") == "jax"
