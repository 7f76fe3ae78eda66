"""The full-resolution pixel work around the network (`jaxcolor.inference.photo`): geometry,
edge-aware upsampling, colour handling, input validation. No model involved."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from jaxcolor import color
from jaxcolor.inference import photo as photo_lib
from tests.support import photo_rgb


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
