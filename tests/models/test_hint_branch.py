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
