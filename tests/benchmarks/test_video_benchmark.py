"""`benchmarks/video.py`'s flicker measure: E_warp with the ground truth's motion, and the
pairs across a cut (no motion to follow) left out of it, decided on the ground truth."""

from pathlib import Path

import numpy as np
import pytest

from tests.inference.video.clips import (  # skips without PyAV / OpenCV
    cut_frames, moving_object_frames)

import cv2  # noqa: E402  (present: the import above skips without it)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def video_bench(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    from benchmarks import video

    return video


def test_cuts_are_found_on_the_ground_truth_and_left_out(video_bench):
    frames = cut_frames(10, cut=6, width=96, height=64)
    flows = video_bench.truth_flows(frames)
    shot = video_bench.within_shot(frames, flows, 0.5)
    assert shot.tolist() == [True] * 5 + [False] + [True] * 3  # the pair (5, 6) is the cut
    errors = video_bench.warp_errors(frames, flows)
    assert errors.shape == (9,)
    assert errors[~shot].min() > 10 * errors[shot].max()  # a cut is not motion


def test_still_colour_has_no_flicker_and_a_colour_jump_has(video_bench):
    frames = cut_frames(6, cut=6, width=96, height=64)  # one shot: a pan
    flows = video_bench.truth_flows(frames)
    shifted = [f if i % 2 else np.clip(f.astype(int) + [40, -20, 0], 0, 255).astype(np.uint8)
               for i, f in enumerate(frames)]
    assert video_bench.warp_errors(shifted, flows).mean() > \
        10 * video_bench.warp_errors(frames, flows).mean()


def test_motion_boundaries_leave_e_warp_but_not_the_shot(video_bench):
    """A disc moving over a photo: the edge of its motion is left out of E_warp's mask (Lai
    et al.'s), where the smooth reference flow mixes the disc's motion and the
    background's and so charges even the ground truth; the pairs still count as one shot."""
    frames, discs = moving_object_frames(6, width=96, height=64, step=4, radius=12)
    flows = video_bench.truth_flows(frames)
    assert video_bench.within_shot(frames, flows, 0.5).all()
    for f, disc in zip(flows, discs[1:]):
        edge = disc ^ np.roll(disc, 4, axis=1)  # the disc's leading and trailing edges
        far = cv2.dilate(disc.astype(np.uint8), np.ones((25, 25), np.uint8)) == 0
        assert f.boundary[edge].mean() > 5 * f.boundary[far].mean() + 0.1
    blind = [f._replace(boundary=np.zeros_like(f.boundary)) for f in flows]
    assert video_bench.warp_errors(frames, flows).mean() < \
        0.7 * video_bench.warp_errors(frames, blind).mean()


def test_cdc_is_zero_for_a_still_clip_and_grows_with_colour_jumps(video_bench):
    frames = cut_frames(6, cut=6, width=96, height=64)  # one shot: a pan
    cdc = video_bench.colour_distribution_consistency
    assert cdc([frames[0]] * 5) == 0.0
    shifted = [f if i % 2 else np.clip(f.astype(int) + [40, -20, 0], 0, 255).astype(np.uint8)
               for i, f in enumerate(frames)]
    assert cdc(shifted) > 10 * cdc(frames) > 0
    assert cdc(shifted) <= np.log(2)  # the Jensen-Shannon divergence's bound, in nats
