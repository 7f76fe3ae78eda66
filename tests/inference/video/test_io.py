"""Decoding film (`jaxcolor.inference.video.io`): the same frames, indices and time stamps on
every pass over a file, and a pass that starts at a key frame near the resume point (for
variable frame rates, B-frames, and a first time stamp that is not 0)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from jaxcolor.inference.video import io as video_io
from tests.inference.video.clips import pan_frames, write_clip


def _decoded(decoder: video_io.Decoder, *args) -> list[tuple[int, int, np.ndarray]]:
    return [(f.index, f.pts, video_io.pixels(f, False)) for f in decoder.frames(*args)]


def _assert_same(got, want) -> None:
    assert [(i, pts) for i, pts, _ in got] == [(i, pts) for i, pts, _ in want]
    for (_, _, a), (_, _, b) in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_every_pass_over_a_file_gives_the_same_frames(tmp_path):
    """A second pass (an in-process retry) starts counting afresh: frame 6 is frame 6."""
    clip = write_clip(tmp_path / "pan.mp4", pan_frames(12), audio=False)
    decoder = video_io.Decoder(video_io.probe(clip))
    whole = _decoded(decoder)
    assert [i for i, _, _ in whole] == list(range(12))
    _assert_same(_decoded(decoder, 6), whole[6:])
    _assert_same(_decoded(decoder), whole)


def test_a_resumed_pass_starts_at_the_key_frame_before_the_resume_point(tmp_path):
    """Key frames every 6 frames, B-frames, a variable frame rate and a first time stamp of
    4 s: resuming at frame 40 decodes from the key frame at 36, not from frame 0, and gives
    the frames, indices and time stamps of a whole pass."""
    stamps = [100 + i + i // 3 for i in range(60)]  # gaps of 2 every third frame
    clip = write_clip(tmp_path / "vfr.mp4", pan_frames(60), audio=False, gop=6,
                      pts=stamps, time_base=Fraction(1, 25))
    info = video_io.probe(clip)
    assert info.variable and len(info.keyframes) == 10
    decoder = video_io.Decoder(info)
    whole = _decoded(decoder)
    assert decoder.decoded == 60 and [i for i, _, _ in whole] == list(range(60))
    resumed = _decoded(decoder, 40, whole[39][1])
    _assert_same(resumed, whole[40:])
    assert decoder.decoded <= 24, decoder.decoded  # 36..59: one key frame's worth before 40


def test_a_resume_point_the_film_does_not_have_is_decoded_from_the_first_frame(tmp_path):
    """When the frame before the resume point is not met again at its time stamp (here: a
    time stamp no frame has), the pass starts over from frame 0 and counts."""
    clip = write_clip(tmp_path / "pan.mp4", pan_frames(30), audio=False, gop=6)
    decoder = video_io.Decoder(video_io.probe(clip))
    whole = _decoded(decoder)
    wrong = whole[19][1] + 1  # between two frames' time stamps
    _assert_same(_decoded(decoder, 20, wrong), whole[20:])
    assert decoder.decoded == 30
