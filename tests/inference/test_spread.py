"""Hints spread over what they sit on (`jaxcolor.inference.spread`): the hinted region takes
the hinted colour, regions that do not resemble it (another lightness, or far away) keep
G's, and no hints change nothing."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from jaxcolor import color
from jaxcolor.inference import spread as spread_lib

R = 64


def scene():
    """L [1, R, R]: a flat square (L 50) on a background of L 80 with a gentle ramp; G's ab:
    a dull brown everywhere."""
    L = np.full((1, R, R), 80.0, np.float32) + np.linspace(0, 4, R, dtype=np.float32)
    L[:, 16:48, 16:48] = 50.0
    ab = np.broadcast_to(np.float32([8.0, 12.0]), (1, R, R, 2)).copy()
    return L, ab


def hint_at(y: int, x: int, ab, size: int = 3) -> np.ndarray:
    hint = np.zeros((1, R, R, 3), np.float32)
    hint[:, y:y + size, x:x + size] = [*color.normalize_ab(np.float32(ab)), 1.0]
    return hint


RED = (60.0, 40.0)


@pytest.mark.parametrize("xp", [np, jnp], ids=["np", "jnp"])
def test_a_hint_colours_its_region_and_not_the_rest(xp):
    L, ab = scene()
    hint = xp.asarray(hint_at(30, 30, RED))
    out = np.asarray(spread_lib.spread(xp.asarray(L), xp.asarray(ab), hint, xp=xp))
    around, background = out[0, 24:40, 24:40], out[0, :, 52:]
    np.testing.assert_allclose(out[0, 31, 31], RED, atol=3.0)  # the hinted pixel
    assert np.abs(around - RED).max() < 8.0  # the square around it
    assert np.abs(background - ab[0, 0, 0]).max() < 0.5  # another lightness: G's colour


def test_one_hint_leaves_far_pixels_of_its_lightness_as_they_were():
    # The reach: a red hint in one corner of a flat photo does not redden the other corner.
    side = 128
    L = np.full((1, side, side), 50.0, np.float32)
    ab = np.broadcast_to(np.float32([8.0, 12.0]), (1, side, side, 2)).copy()
    hint = np.zeros((1, side, side, 3), np.float32)
    hint[:, 8:11, 8:11] = [*color.normalize_ab(np.float32(RED)), 1.0]
    out = spread_lib.spread(L, ab, hint, xp=np)
    assert np.abs(out[0, 9, 9] - RED).max() < 3.0
    assert np.abs(out[0, side // 2:, side // 2:] - ab[0, 0, 0]).max() < 0.5


def test_no_hints_change_nothing_and_both_backends_agree():
    L, ab = scene()
    empty = np.zeros((1, R, R, 3), np.float32)
    np.testing.assert_array_equal(spread_lib.spread(L, ab, empty, xp=np), ab)
    hint = hint_at(30, 30, RED) + hint_at(4, 56, (-30.0, 20.0))
    np.testing.assert_allclose(np.asarray(spread_lib.spread(jnp.asarray(L), jnp.asarray(ab),
                                                            jnp.asarray(hint))),
                               spread_lib.spread(L, ab, hint, xp=np), atol=1e-3)


def test_two_hints_on_one_region_each_win_near_themselves_and_blend_between():
    L, ab = scene()
    green = (-40.0, 40.0)
    hint = hint_at(22, 22, RED) + hint_at(39, 39, green)
    out = spread_lib.spread(L, ab, hint, xp=np)

    def nearer_to(pixel, colour, other):
        return np.linalg.norm(pixel - colour) < np.linalg.norm(pixel - other)

    assert nearer_to(out[0, 23, 23], RED, green) and nearer_to(out[0, 40, 40], green, RED)
    middle = out[0, 31, 31]
    assert green[0] < middle[0] < RED[0] and 35.0 < middle[1] < 45.0  # a blend, not G's brown


@pytest.mark.parametrize("side", [32, 96, 256])
def test_every_render_side_pools_evenly(side):
    L = np.full((1, side, side), 50.0, np.float32)
    ab = np.zeros((1, side, side, 2), np.float32)
    hint = np.zeros((1, side, side, 3), np.float32)
    hint[:, :2, :2] = [0.5, 0.0, 1.0]
    out = spread_lib.spread(L, ab, hint, xp=np)
    assert out.shape == ab.shape and out[0, 0, 0, 0] > 40.0
