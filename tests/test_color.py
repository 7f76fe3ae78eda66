"""Colour conversions against scikit-image, the normalisation, and the 8-bit storage encoding."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import color as skcolor
from skimage import data as skdata

from jaxcolor import color


def _test_colours():
    rng = np.random.default_rng(0)
    random = rng.random((500, 3))
    corners = np.array(list(itertools.product([0.0, 1.0], repeat=3)))
    near_black = rng.random((50, 3)) * 0.01
    return np.concatenate([random, corners, near_black]).astype(np.float64)


@pytest.mark.parametrize("impl", ["jnp", "np"])
def test_rgb_to_lab_matches_skimage(impl):
    rgb = _test_colours()
    fn = color.rgb_to_lab if impl == "jnp" else color.rgb_to_lab_np
    ours = np.asarray(fn(rgb))
    np.testing.assert_allclose(ours, skcolor.rgb2lab(rgb), atol=1e-3)


@pytest.mark.parametrize("impl", ["jnp", "np"])
def test_lab_to_rgb_matches_skimage(impl):
    rng = np.random.default_rng(1)
    lab = np.stack(
        [rng.uniform(0, 100, 2000), rng.uniform(-110, 110, 2000), rng.uniform(-110, 110, 2000)], -1
    )
    lab = np.concatenate([lab, skcolor.rgb2lab(_test_colours())])
    fn = color.lab_to_rgb if impl == "jnp" else color.lab_to_rgb_np
    with np.errstate(all="ignore"):
        expected = skcolor.lab2rgb(lab)
    np.testing.assert_allclose(np.asarray(fn(lab)), expected, atol=1e-3)


def test_round_trip_in_gamut():
    rgb = _test_colours()
    back = np.asarray(color.lab_to_rgb(color.rgb_to_lab(rgb)))
    np.testing.assert_allclose(back, rgb, atol=1e-4)
    back_np = color.lab_to_rgb_np(color.rgb_to_lab_np(rgb))
    np.testing.assert_allclose(back_np, rgb, atol=1e-4)


def test_batched_jit_and_differentiable():
    rgb = jnp.asarray(np.random.default_rng(2).random((2, 4, 5, 3)), jnp.float32)
    lab = jax.jit(color.rgb_to_lab)(rgb)
    assert lab.shape == (2, 4, 5, 3)
    grad = jax.grad(lambda x: color.rgb_to_lab(x)[..., 1].sum())(rgb)
    assert np.all(np.isfinite(np.asarray(grad))) and np.abs(np.asarray(grad)).sum() > 0
    # Near black and pure black must not produce NaN gradients either.
    g0 = jax.grad(lambda x: color.rgb_to_lab(x).sum())(jnp.zeros((3,)))
    assert np.all(np.isfinite(np.asarray(g0)))


def test_gray_rgb_from_l_is_lab_to_rgb_with_zero_ab():
    L = np.linspace(0, 100, 201)
    lab = np.stack([L, np.zeros_like(L), np.zeros_like(L)], -1)
    expected = skcolor.lab2rgb(lab)
    ours = np.asarray(color.gray_rgb_from_l(L))
    np.testing.assert_allclose(ours, expected[:, 0], atol=1e-4)
    np.testing.assert_allclose(expected[:, 0], expected[:, 2], atol=1e-3)  # it is gray


def test_model_normalisation():
    np.testing.assert_allclose(color.normalize_l(np.array([0.0, 50.0, 100.0])), [-1, 0, 1])
    np.testing.assert_allclose(color.normalize_ab(np.array([-110.0, 55.0])), [-1, 0.5])
    x = np.array([3.0, 97.0])
    np.testing.assert_allclose(color.denormalize_l(color.normalize_l(x)), x)
    np.testing.assert_allclose(color.denormalize_ab(color.normalize_ab(x)), x)


def test_lab8_encoding_convention():
    lab = np.array([[100.0, 0.0, 0.0], [0.0, -128.0, 127.0], [50.0, 10.4, -10.6]])
    L8, ab8 = color.encode_lab8(lab)
    assert L8.dtype == np.uint8 and ab8.dtype == np.uint8
    np.testing.assert_array_equal(L8, [255, 0, 128])  # 50 * 2.55 = 127.5 -> 128
    np.testing.assert_array_equal(ab8, [[128, 128], [0, 255], [138, 117]])
    decoded = color.decode_lab8(L8, ab8)
    np.testing.assert_allclose(decoded[:, 0], [100.0, 0.0, 128 / 2.55], atol=1e-4)


def test_lab8_round_trip_on_a_real_photo():
    """Encode a scikit-image photo as OpenCV 8-bit Lab, decode, and get the photo back."""
    rgb = skdata.astronaut()[::2, ::2]
    L8, ab8 = color.encode_lab8(color.rgb_to_lab_np(rgb))
    back = color.rgb01_to_uint8(color.lab_to_rgb_np(color.decode_lab8(L8, ab8)))
    err = np.abs(back.astype(int) - rgb.astype(int))
    assert err.mean() < 1.0 and np.percentile(err, 99) <= 4


def test_lab8_to_model_matches_host_decode():
    rng = np.random.default_rng(3)
    L8 = rng.integers(0, 256, (2, 8, 8), dtype=np.uint8)
    ab8 = rng.integers(0, 256, (2, 8, 8, 2), dtype=np.uint8)
    l_norm, ab_norm = color.lab8_to_model(L8, ab8)
    lab = color.decode_lab8(L8, ab8)
    assert l_norm.shape == (2, 8, 8, 1) and ab_norm.shape == (2, 8, 8, 2)
    np.testing.assert_allclose(np.asarray(l_norm)[..., 0], color.normalize_l(lab[..., 0]), atol=1e-6)
    np.testing.assert_allclose(np.asarray(ab_norm), color.normalize_ab(lab[..., 1:]), atol=1e-6)


@pytest.mark.parametrize("xp", [np, jnp], ids=["np", "jnp"])
def test_linear_planes_and_srgb8_match_the_float_conversion(xp):
    rng = np.random.default_rng(3)
    rgb = rng.uniform(0, 1, (5000, 3)).astype(np.float32)  # in gamut by construction
    lab = color.rgb_to_lab_np(rgb)
    planes = color.lab_to_linear_planes(xp, *(xp.asarray(lab[:, i]) for i in range(3)))
    assert bool(np.all(color.in_srgb_gamut(xp, *planes)))
    expected = color.rgb01_to_uint8(color.lab_to_rgb_np(lab))
    got = np.stack([np.asarray(color.linear_to_srgb8(xp, p)) for p in planes], -1)
    assert np.abs(got.astype(int) - expected).max() <= 1  # numpy: by table; jnp: the curve
    assert np.mean(got == expected) > 0.99
    ends = np.asarray(color.linear_to_srgb8(xp, xp.asarray([-0.5, 0.0, 1.0, 7.0])))
    assert ends.tolist() == [0, 0, 255, 255]
    assert not bool(color.in_srgb_gamut(xp, *(xp.asarray([v]) for v in (1.2, 0.5, 0.5))))


@pytest.mark.parametrize("xp", [np, jnp], ids=["np", "jnp"])
def test_srgb8_lightness_is_the_lab_conversions_l(xp):
    rgb = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    np.testing.assert_allclose(np.asarray(color.srgb8_lightness(xp, xp.asarray(rgb))),
                               color.rgb_to_lab_np(rgb)[..., 0], atol=1e-3)
    gray = rgb[..., 0]
    np.testing.assert_allclose(np.asarray(color.srgb8_lightness(xp, xp.asarray(gray))),
                               color.rgb_to_lab_np(np.stack([gray] * 3, -1))[..., 0], atol=1e-3)


def test_scale_chroma_keeps_hue_and_scales_chroma_by_a_power_law():
    rng = np.random.default_rng(0)
    ab = rng.normal(0, 30, (64, 2)).astype(np.float32)
    ab[0] = 0.0  # gray stays gray
    ab[1] = (color.CHROMA_GAIN_PIVOT, 0.0)  # the pivot's gain is the scale, whatever gamma
    np.testing.assert_allclose(color.scale_chroma(ab, 1.7, xp=np), 1.7 * ab)  # gamma 1
    out = color.scale_chroma(ab, 1.7, 1.5, xp=np)
    np.testing.assert_allclose(np.asarray(color.scale_chroma(jnp.asarray(ab), 1.7, 1.5)),
                               out, rtol=1e-5, atol=1e-5)
    chroma, scaled = np.hypot(*ab.T), np.hypot(*out.T)
    strong = chroma > 1
    np.testing.assert_allclose(  # hue kept: the same direction in the ab plane
        out[strong] / scaled[strong, None], ab[strong] / chroma[strong, None], atol=1e-5)
    np.testing.assert_allclose(scaled[strong], 1.7 * chroma[strong] ** 1.5
                               / color.CHROMA_GAIN_PIVOT ** 0.5, rtol=1e-4)
    np.testing.assert_allclose(out[:2], [[0, 0], [1.7 * color.CHROMA_GAIN_PIVOT, 0]],
                               atol=1e-3)
    # A traced exponent (no recompiling per gamma), and a finite gradient at gray.
    grad = jax.grad(lambda x, g: color.scale_chroma(x, 2.0, g).sum())(
        jnp.zeros((1, 2)), jnp.float32(1.5))
    assert np.all(np.isfinite(np.asarray(grad)))
