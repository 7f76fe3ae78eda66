"""User hints: the format and its one-line errors, where a hint lands in the render square,
and a generator with hint inputs fed by Colorizer (JAX and ONNX agree; L kept exactly)."""

from __future__ import annotations


import numpy as np
import pytest

from jaxcolor import color
from jaxcolor.errors import UsageError
from jaxcolor.inference import hints
from jaxcolor.inference.colorizer import Colorizer
from jaxcolor.inference.photo import Photo
from tests.support import assert_keeps_lightness, hinted_colorizer, photo_rgb, tiny_config

RED = "#d02020"


@pytest.mark.parametrize("entries, needle", [
    ({"x": 1}, "expected a list"),
    ([[1, 2]], r"\[0\]: expected"),
    ([{"x": 1, "y": 2, "color": "red"}], r"\[0\]: color must be"),
    ([{"x": 1, "y": 2, "color": RED, "radius": -1}], r"\[0\]: radius must be >= 0"),
    ([{"x": "1", "y": 2, "color": RED}], r"\[0\]: 'x' must be a number"),
    ([{"x": 1, "y": 2, "color": RED, "size": 3}], "unknown field"),
    ([{"x": 1, "y": 2, "color": RED}, {"x": 1, "y": float("nan"), "color": RED}], r"\[1\]"),
])
def test_bad_hints_are_one_line_usage_errors_naming_the_entry(entries, needle):
    with pytest.raises(hints.HintError, match=needle) as info:
        hints.parse(entries, "h.json: a.jpg")
    assert str(info.value).startswith("h.json: a.jpg") and "\n" not in str(info.value)


def test_film_hints_need_a_frame_and_everything_round_trips():
    parsed = hints.parse([{"x": 3, "y": 4.5, "color": "#ABCDEF", "radius": 0, "frame": 7}],
                         "f", film=True)
    assert parsed[0].to_json() == {"x": 3.0, "y": 4.5, "color": "#abcdef", "radius": 0.0,
                                   "frame": 7}
    with pytest.raises(hints.HintError, match="frame must be"):
        hints.parse([{"x": 3, "y": 4, "color": RED}], "f", film=True)


def test_hints_outside_the_photo_and_bad_files_are_refused(tmp_path):
    inside = hints.parse([{"x": 0, "y": 0, "color": RED}, {"x": 99, "y": 49, "color": RED}],
                         "h")
    hints.check_inside(inside, 100, 50, "h")
    with pytest.raises(hints.HintError, match=r"h\[0\]: \(100, 0\) is outside the 100x50"):
        hints.check_inside(hints.parse([{"x": 100, "y": 0, "color": RED}], "h"), 100, 50, "h")
    for text, needle in (("[1]", "expected an object"), ("{", "not JSON")):
        (tmp_path / "h.json").write_text(text)
        with pytest.raises(hints.HintError, match=needle):
            hints.load_file(tmp_path / "h.json")
    with pytest.raises(hints.HintError, match="cannot read"):
        hints.load_file(tmp_path / "none.json")


def test_a_hint_lands_where_its_pixel_is_seen_with_its_colour_not_its_lightness():
    # A 200 x 100 photo in a 64 px square: 64 x 32, rows 16..47.
    points = hints.parse([{"x": 0, "y": 0, "color": RED, "radius": 0},
                          {"x": 199, "y": 99, "color": "#20d020", "radius": 10}], "h")
    m = hints.hint_map(points, (100, 200), 64)
    assert m.shape == (64, 64, 3) and m[16, 0, 2] == 1.0 and m[15, 0, 2] == 0.0
    a, b = color.rgb_to_lab_np(np.array([[208, 32, 32]], np.uint8))[0, 1:]
    np.testing.assert_allclose(m[16, 0, :2], (a / 110, b / 110), rtol=1e-5)
    disc = m[..., 2] > 0
    assert disc[47, 63] and 8 <= disc[32:48, 48:].sum() <= 16  # radius 10 px -> 3.2 render px
    assert (m[..., :2][~disc] == 0).all()


@pytest.fixture(scope="module")
def hinted_colorizers():
    """One hint-taking generator (`tests.support.hinted_colorizer`), in JAX and in ONNX
    Runtime."""
    jax_colorizer = hinted_colorizer(backend="jax", batch_size=2)
    onnx_colorizer = Colorizer(jax_colorizer.graphdef, jax_colorizer.variables,
                               jax_colorizer.config, step=0, backend="onnx", batch_size=2)
    return jax_colorizer, onnx_colorizer


def test_hints_change_the_colour_and_both_backends_agree(hinted_colorizers):
    jax_c, onnx_c = hinted_colorizers
    photo = photo_rgb(90, 120)
    given = hints.parse([{"x": 60, "y": 45, "color": RED, "radius": 8}], "h")
    assert jax_c.reads_hints and onnx_c.reads_hints
    plain, hinted = jax_c.colorize([photo, photo], hints=[None, given])
    assert np.abs(plain.astype(int) - hinted.astype(int)).max() > 2
    assert_keeps_lightness(photo, hinted)
    via_onnx = onnx_c.colorize(photo, hints=given)
    assert np.abs(via_onnx.astype(int) - hinted.astype(int)).max() <= 1


def test_a_branch_at_the_fine_scales_only_exports_and_both_backends_agree():
    """The starter's kind of branch (config.model.hint_scales = 8,4,2,1, no encoder path):
    ONNX Runtime colours as JAX does with and without hints."""
    jax_c = hinted_colorizer(backend="jax", batch_size=2,
                             model={"hint_scales": (8, 4, 2, 1), "hint_encoder": False})
    onnx_c = Colorizer(jax_c.graphdef, jax_c.variables, jax_c.config, step=0, backend="onnx",
                       batch_size=2)
    photo = photo_rgb(90, 120)
    given = hints.parse([{"x": 60, "y": 45, "color": RED, "radius": 8}], "h")
    plain, hinted = jax_c.colorize([photo, photo], hints=[None, given])
    assert np.abs(plain.astype(int) - hinted.astype(int)).max() > 2
    for ours, theirs in zip((plain, hinted), onnx_c.colorize([photo, photo],
                                                             hints=[None, given])):
        assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1


def test_a_model_without_hint_inputs_follows_hints_by_spreading_them():
    config = tiny_config(None)
    config.data.crop_size = 64
    colorizer = Colorizer.from_config(config, backend="jax", batch_size=2)
    assert not colorizer.reads_hints
    photo = photo_rgb(64, 64)
    given = hints.parse([{"x": 32, "y": 32, "color": RED, "radius": 4}], "h")
    plain, hinted = colorizer.colorize([photo, photo], hints=[None, given])
    a_plain, a_hinted = (color.rgb_to_lab_np(x)[30:35, 30:35, 1].mean() for x in (plain, hinted))
    assert a_hinted > a_plain + 10  # the hinted spot reddens
    assert_keeps_lightness(photo, hinted)


def test_chroma_scales_the_colour_and_keeps_the_lightness():
    config = tiny_config(None)
    config.data.crop_size = 64
    photo = photo_rgb(64, 64)
    base = Colorizer.from_config(config, backend="jax")
    vivid = Colorizer.from_config(config, backend="jax", chroma=2.0)
    L = base.prepare(Photo(photo)).L_render[None]
    np.testing.assert_allclose(vivid.predict_ab(L), 2 * base.predict_ab(L), rtol=1e-5)
    assert_keeps_lightness(photo, vivid.colorize(photo))


@pytest.mark.parametrize("backend", ["jax", "onnx"])
def test_the_chroma_exponent_comes_from_the_config_and_scales_strong_colours_more(backend):
    config = tiny_config(None)
    config.data.crop_size = 64
    photo = photo_rgb(64, 64)
    base = Colorizer.from_config(config, backend=backend)
    config.model.chroma, config.model.chroma_gamma = 1.5, 2.0
    gained = Colorizer.from_config(config, backend=backend)
    assert (gained.chroma, gained.chroma_gamma) == (1.5, 2.0)
    L = base.prepare(Photo(photo)).L_render[None]
    plain = base.predict_ab(L)
    np.testing.assert_allclose(gained.predict_ab(L), color.scale_chroma(plain, 1.5, 2.0, xp=np),
                               rtol=1e-4, atol=1e-4)
    assert_keeps_lightness(photo, gained.colorize(photo))
    with pytest.raises(UsageError, match="chroma_gamma must lie in"):
        Colorizer.from_config(config, backend=backend, chroma_gamma=0.0)
