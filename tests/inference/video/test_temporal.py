"""Temporal consistency (`jaxcolor.inference.video.temporal`) on synthetic clips.

G is replaced by a predictor that knows the true colour of each frame and adds a smooth
random error that changes every frame, as a photo model's colour does from frame to frame:
what the carry must remove (flicker) and what it must not do (drag colour across a cut)
then show without depending on what a tiny model has learned. Everything else is the real
`Colorizer` (render square, compose keeping L) driven by `pipeline.process`.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from PIL import Image

from jaxcolor import color
from jaxcolor.inference import pipeline
from jaxcolor.inference.colorizer import Colorizer
from jaxcolor.inference.photo import Photo
from jaxcolor.inference.video import temporal
from tests.support import assert_keeps_lightness, trained_workdir
from tests.inference.video.clips import (cut_frames, grainy_sky_frames, moving_object_frames,
                                         pan_frames)

STEP = 2  # pixels the pan moves per frame (whole pixels: the true motion is exact)


@pytest.fixture(scope="module")
def colorizer(tmp_path_factory) -> Colorizer:
    c = Colorizer.from_checkpoint(trained_workdir(tmp_path_factory), backend="jax",
                                  compose="host", render_size=64, batch_size=4)
    def noisy_truth(prepared):
        """The true ab at render size plus a smooth error that changes every frame (the
        same for the same frame, in every run)."""
        out = []
        for p in prepared:
            rng = np.random.default_rng(zlib.crc32(p.photo.pixels.tobytes()))
            rh, rw = p.inner
            small = np.asarray(Image.fromarray(p.photo.pixels).resize((rw, rh),
                                                                      Image.Resampling.BILINEAR))
            ab = color.rgb_to_lab_np(small)[..., 1:]
            noise = rng.normal(0, 12, (3, 3, 2)).astype(np.float32)
            field = np.stack([np.asarray(Image.fromarray(noise[..., k]).resize(
                (rw, rh), Image.Resampling.BILINEAR)) for k in range(2)], -1)
            R = p.L_render.shape[0]
            square = np.zeros((R, R, 2), np.float32)
            top, left = (R - rh) // 2, (R - rw) // 2
            square[top:top + rh, left:left + rw] = ab + field
            out.append(square)
        return np.stack(out)

    c.predict = noisy_truth
    return c


def colourise(colorizer, frames, strength):
    stepper = temporal.TemporalColorizer(colorizer, temporal.Consistency(strength=strength),
                                         threads=2)
    jobs = [pipeline.Job(str(i), lambda f=f: Photo(f), lambda rgb, _: rgb)
            for i, f in enumerate(frames)]
    try:
        outs = [o.value for o in pipeline.process(stepper, jobs, workers=2)]
    finally:
        stepper.close()
    return outs, stepper


def warp_error(frames_rgb) -> float:
    """Mean |ab_t - ab_{t-1} moved by the true motion| (the pan: STEP pixels left)."""
    ab = [color.rgb_to_lab_np(f)[..., 1:] for f in frames_rgb]
    return float(np.mean([np.abs(b[:, :-STEP] - a[:, STEP:]).mean()
                          for a, b in zip(ab, ab[1:])]))


def test_carry_halves_the_flicker_of_a_pan_and_keeps_lightness(colorizer):
    frames = pan_frames(16, 64, 48, step=STEP)
    independent, _ = colourise(colorizer, frames, 0.0)
    carried, stepper = colourise(colorizer, frames, 0.8)
    assert stepper.cuts == 0 and stepper.mean_carried > 0.5
    assert warp_error(carried) < 0.5 * warp_error(independent), (
        warp_error(carried), warp_error(independent))
    true_ab = [color.rgb_to_lab_np(f)[..., 1:] for f in frames]
    err = lambda outs: np.mean([np.abs(color.rgb_to_lab_np(o)[..., 1:] - t).mean()  # noqa
                                for o, t in zip(outs, true_ab)])
    assert err(carried) < err(independent)  # averaging the errors away, not the colour
    for f, o in zip(frames, carried):
        assert_keeps_lightness(f, o)


def test_a_hard_cut_starts_afresh(colorizer):
    frames = cut_frames(12, cut=6)
    independent, _ = colourise(colorizer, frames, 0.0)
    carried, stepper = colourise(colorizer, frames, 0.8)
    assert stepper.cuts == 1
    np.testing.assert_array_equal(carried[6], independent[6])  # nothing came across
    assert any(np.abs(c.astype(int) - i).max() > 2 for c, i in zip(carried[1:6],
                                                                   independent[1:6]))


def test_colour_does_not_trail_a_moving_object(colorizer):
    """The background a red disc uncovers takes the background's colour, not the disc's.
    DIS's smooth flow passes the forward-backward and lightness checks there; the
    motion-boundary check refuses the carried red, which disagrees with the prediction."""
    frames, discs = moving_object_frames(12)
    independent, _ = colourise(colorizer, frames, 0.0)
    carried, stepper = colourise(colorizer, frames, 0.8)
    assert stepper.cuts == 0 and stepper.mean_carried > 0.5  # the still background is carried
    uncovered = [prev & ~cur for prev, cur in zip(discs, discs[1:])]
    true_ab = [color.rgb_to_lab_np(f)[..., 1:] for f in frames]
    err = lambda outs: np.mean([  # noqa: E731
        np.linalg.norm(color.rgb_to_lab_np(o)[..., 1:] - t, axis=-1)[m].mean()
        for o, t, m in zip(outs[1:], true_ab[1:], uncovered)])
    # Without the motion-boundary check the carried error there was 2.9 times the
    # independent one (the disc's red trailing behind it); with it, 1.4 times.
    assert err(carried) < 1.8 * err(independent), (err(carried), err(independent))


def test_grain_on_a_flat_sky_does_not_stop_the_carry(colorizer):
    """DIS follows the grain on a flat sky at random, so the forward-backward check fails
    on much of it while a patch moves past; the sky still counts as tracked (flat, and its
    lightness agrees), and its colour stops flickering."""
    frames, patches = grainy_sky_frames(10)
    ab = lambda outs: [color.rgb_to_lab_np(o)[..., 1:] for o in outs]  # noqa: E731
    sky = [~(a | b) for a, b in zip(patches, patches[1:])]  # sky in both frames
    flicker = lambda outs: np.mean([np.abs(b - a)[m].mean()  # noqa: E731
                                    for a, b, m in zip(ab(outs), ab(outs)[1:], sky)])
    independent, _ = colourise(colorizer, frames, 0.0)
    carried, stepper = colourise(colorizer, frames, 0.8)
    assert stepper.cuts == 0
    assert flicker(carried) < 0.5 * flicker(independent), (flicker(carried),
                                                            flicker(independent))


def test_zoom_is_tracked():
    frames = pan_frames(6, 96, 72, step=1.0, zoom=0.02)
    L = [color.rgb_to_lab_np(f)[..., 0] for f in frames]
    tracked = [temporal.flow(a, b).trust.mean() for a, b in zip(L, L[1:])]
    assert min(tracked) > 0.7, tracked


def test_blend_rules():
    rng = np.random.default_rng(0)
    L = rng.uniform(20, 80, (24, 32)).astype(np.float32)
    L = np.asarray(Image.fromarray(L).resize((32, 24)), np.float32)
    pred = rng.normal(0, 20, (24, 32, 2)).astype(np.float32)
    old = rng.normal(0, 20, (24, 32, 2)).astype(np.float32)
    settings = temporal.Consistency(strength=0.8)
    assert temporal.blend(None, L, pred, None, settings).ab is pred  # the first frame
    still = temporal.flow(L, L)
    step = temporal.blend(temporal.Carry(L, old), L, pred, still, settings)
    assert not step.cut and step.carried > 0.7
    expected = pred + 0.8 * (old - pred)  # the same frame again: the carry is exact
    mag = lambda x: np.linalg.norm(x, axis=-1)  # noqa: E731
    np.testing.assert_allclose(mag(step.ab), 0.2 * mag(pred) + 0.8 * mag(old), atol=0.6)
    cosine = np.sum(step.ab * expected, -1) / (mag(step.ab) * mag(expected) + 1e-6)
    assert np.median(cosine) > 0.999
    other = np.clip(100 - L[::-1], 0, 100)  # another shot
    cut = temporal.blend(temporal.Carry(L, old), other, pred, temporal.flow(L, other),
                         settings)
    assert cut.cut and cut.ab is pred
    with pytest.raises(ValueError, match="strength"):
        temporal.Consistency(strength=1.0)


def test_a_hint_holds_through_its_shot_and_stops_at_the_cut():
    """A hint placed on frame 2 is carried with the pan to every later frame of its shot
    and dropped at the cut (frame 6); frames before it never see it. G is replaced by one
    that paints exactly the hints it is given, and the carry of colour itself is off, so
    what reaches each frame is the hint alone."""
    from jaxcolor.inference import hints
    from tests.support import tiny_config

    config = tiny_config(None)
    config.model.hints = True
    config.data.crop_size = 64
    echo = Colorizer.from_config(config, backend="jax", compose="host", batch_size=3)
    echo.predict = lambda prepared: np.stack([
        np.zeros((64, 64, 2), np.float32) if p.hint is None
        else p.hint[..., :2] * color.AB_SCALE * p.hint[..., 2:] for p in prepared])
    frames = cut_frames(10, cut=6)
    placed = hints.parse([{"frame": 2, "x": 30, "y": 24, "color": "#e02020", "radius": 4}],
                         "h", film=True)
    stepper = temporal.TemporalColorizer(echo, temporal.Consistency(strength=0.0), threads=2)
    jobs = [pipeline.Job(str(i), lambda i=i, f=f: Photo(f, hints=tuple(
        h for h in placed if h.frame == i)), lambda rgb, _: rgb) for i, f in enumerate(frames)]
    try:
        outs = [o.value for o in pipeline.process(stepper, jobs, workers=2)]
    finally:
        stepper.close()
    red = [int((color.rgb_to_lab_np(o)[..., 1] > 20).sum()) for o in outs]
    assert red[0] == red[1] == 0 and red[2] > 20
    assert all(r > 0.5 * red[2] for r in red[3:6]), red  # carried through the shot
    assert red[6:] == [0] * 4, red  # and not across the cut
    assert stepper.carry.hint is None
