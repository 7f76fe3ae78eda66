"""The generator's hint branch: zero at initialisation, a hint-free checkpoint's exact twin,
and a hinted colour reaches the decoder at every scale."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxcolor.models import hint_branch
from jaxcolor.models.generator import UNetGenerator

WIDTHS = (16, 16, 16, 16, 8)


def _pair():
    plain = UNetGenerator("resnet18", WIDTHS, rngs=nnx.Rngs(0))
    hinted = UNetGenerator("resnet18", WIDTHS, hints=True, rngs=nnx.Rngs(1))
    # The hint-free checkpoint loads into the hinted generator unchanged (its paths all exist).
    nnx.update(hinted, nnx.state(plain))
    plain.eval(), hinted.eval()
    return plain, hinted


def _hint(b=2, size=64, x=10, y=20, ab=(0.4, -0.3)):
    hint = np.zeros((b, size, size, 3), np.float32)
    hint[:, y - 2:y + 2, x - 2:x + 2] = (*ab, 1.0)
    return jnp.asarray(hint)


def test_a_hint_free_checkpoint_in_the_hinted_generator_computes_the_same():
    """At no hints, exactly; with hints, the encoder sees the hinted pixels in colour from
    the start (no new weight there), while the decoder's projections are still zero."""
    plain, hinted = _pair()
    l_norm = jax.random.uniform(jax.random.key(0), (2, 64, 64, 1)) * 2 - 1
    expected = plain(l_norm)
    np.testing.assert_allclose(hinted(l_norm), expected, atol=1e-6)
    np.testing.assert_allclose(hinted(l_norm, jnp.zeros((2, 64, 64, 3))), expected, atol=1e-5)
    assert float(jnp.abs(hinted(l_norm, _hint()) - expected).max()) > 1e-4


def test_the_encoder_sees_the_hinted_pixels_in_colour_and_the_rest_gray():
    from jaxcolor import color
    from jaxcolor.models import resnet

    l_norm = jnp.full((1, 32, 32, 1), 0.2)
    hint = np.zeros((1, 32, 32, 3), np.float32)
    hint[0, 4, 5] = (0.5, 0.3, 1.0)
    hint[0, 9, 9] = (0.5, 0.3, 0.0)  # colour without the mask: not a hint
    rgb = hint_branch.colour_input(l_norm, jnp.asarray(hint), (0, 0, 0), (1, 1, 1))
    gray = resnet.gray_input_from_l(l_norm, (0, 0, 0), (1, 1, 1))
    changed = np.argwhere(np.abs(np.asarray(rgb - gray)).max(-1) > 1e-5)
    assert changed.tolist() == [[0, 4, 5]]
    lab = color.rgb_to_lab_np(np.asarray(rgb[0, 4, 5])[None])[0]
    np.testing.assert_allclose(lab, (60.0, 55.0, 33.0), atol=0.3)


def test_a_trained_branch_carries_the_hint_to_the_output():
    _, hinted = _pair()
    for proj in hinted.hints.proj:  # as if trained: non-zero projections
        proj.kernel[...] = jax.random.normal(jax.random.key(3), proj.kernel.shape)
    l_norm = jnp.zeros((2, 64, 64, 1))
    moved = jnp.abs(hinted(l_norm, _hint()) - hinted(l_norm))
    assert float(moved.max()) > 1e-3
    with np.testing.assert_raises(ValueError):
        UNetGenerator("resnet18", WIDTHS, rngs=nnx.Rngs(0))(l_norm, _hint())


def test_pooling_keeps_the_hinted_colour_and_measures_its_share():
    hint = np.zeros((1, 32, 32, 3), np.float32)
    hint[0, 5, 7] = (0.25, -0.5, 1.0)  # one hinted pixel
    for factor in hint_branch.SCALES:
        cells = np.asarray(hint_branch.pooled(jnp.asarray(hint), factor))
        cell = cells[0, 5 // factor, 7 // factor]
        np.testing.assert_allclose(cell, (0.25, -0.5, 1 / factor**2), rtol=1e-5)
        assert np.count_nonzero(cells[..., 2]) == 1


def _trained(hinted):
    """`hinted` with non-zero projections, as if trained."""
    for i, proj in enumerate(hinted.hints.proj):
        proj.kernel[...] = jax.random.normal(jax.random.key(i), proj.kernel.shape)
    return hinted


def _moved_beyond(g, radius, size=256, at=128):
    """Where a one-pixel hint at (at, at) changes G's output: (anything within `radius` px,
    anything beyond it), Chebyshev distance."""
    l_norm = jax.random.uniform(jax.random.key(0), (1, size, size, 1)) * 2 - 1
    hint = np.zeros((1, size, size, 3), np.float32)
    hint[0, at, at] = (0.5, 0.5, 1.0)
    moved = np.abs(np.asarray(g(l_norm, jnp.asarray(hint)) - g(l_norm))).max(-1)[0] > 0
    yy, xx = np.mgrid[:size, :size]
    far = np.maximum(np.abs(yy - at), np.abs(xx - at)) > radius
    return bool(moved[~far].any()), bool(moved[far].any())


def test_a_hint_at_the_fine_scales_reaches_a_bounded_neighbourhood_only():
    """config.model.hint_scales = (8, 4, 2, 1) without the encoder path: the decoder layers
    after the /8 join see 37 px around the hinted /8 cell, so one hint cannot recolour the
    far side of the photo (the leak of the every-scale branch); with every scale and the
    encoder path, the same hint moves pixels everywhere."""
    local = UNetGenerator("resnet18", WIDTHS, hints=True, hint_scales=(8, 4, 2, 1),
                          hint_encoder=False, rngs=nnx.Rngs(1))
    local = _trained(local)
    local.eval()
    assert _moved_beyond(local, 40) == (True, False)
    _, every = _pair()
    assert _moved_beyond(_trained(every), 100) == (True, True)


def test_a_trained_bias_free_branch_adds_nothing_without_hints():
    """However trained, the branch adds exactly zero for a map of no hints: G without hints
    is the hint-free model it started from, bit for bit."""
    plain, _ = _pair()
    local = UNetGenerator("resnet18", WIDTHS, hints=True, hint_scales=(4, 2, 1),
                          hint_encoder=False, rngs=nnx.Rngs(1))
    nnx.update(local, nnx.state(plain))
    local = _trained(local)
    local.eval()
    l_norm = jax.random.uniform(jax.random.key(0), (2, 64, 64, 1)) * 2 - 1
    np.testing.assert_array_equal(local(l_norm, jnp.zeros((2, 64, 64, 3))), plain(l_norm))
    assert float(jnp.abs(local(l_norm, _hint()) - plain(l_norm)).max()) > 1e-4


def test_hint_scales_are_checked():
    from jaxcolor.errors import UsageError
    from jaxcolor.models import factory

    with np.testing.assert_raises(ValueError):
        hint_branch.check_scales((8, 3))
    model = {"hints": True, "hint_scales": (4, 4)}
    with np.testing.assert_raises_regex(UsageError, r"config.model.hint_scales: .*distinct"):
        factory.hint_scales(model)
    assert factory.hint_scales({}) == hint_branch.SCALES  # configs saved before the field
