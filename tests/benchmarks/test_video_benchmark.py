"""`benchmarks/video.py`'s flicker measure: E_warp with the ground truth's motion, and the
pairs across a cut (no motion to follow) left out of it, decided on the ground truth."""

from pathlib import Path

import numpy as np
import pytest

from inference.video_clips import cut_frames  # skips without PyAV / OpenCV

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
