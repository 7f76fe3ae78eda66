"""`colorize_video` killed at the moments that matter, and run twice at once: a rerun
always finishes the film (never needs --overwrite), leaves nothing beside the output, and
enters the film near where it stopped; a second run on the same output stops at once.

A kill inside this process is `Killed`, raised at the chosen point: nothing after it runs
but `finally` blocks (which only close files and the lock). Where the dead process's
leftovers matter (its temporary's name carries its pid), a subprocess dies by `os._exit`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from jaxcolor import cli as jaxcolor_cli
from jaxcolor.inference.colorizer import Colorizer
from jaxcolor.inference.video import film, lock, sources
from jaxcolor.inference.video import io as video_io
from jaxcolor.inference.video.segments import WorkDir
from tests.inference.video.clips import pan_frames, read_video, write_clip
from tests.support import REPO, trained_workdir

SETTINGS = film.Settings(codec=video_io.Codec(lossless=True), segment_frames=8)
ENV = {**os.environ, "JAX_PLATFORMS": "cpu",
       "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

HOLD_LOCK = """
import sys, time
from pathlib import Path
from jaxcolor.inference.video.lock import OutputLock
with OutputLock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(600)
"""

KILLED_WHILE_ASSEMBLED = """
import os, sys
from jaxcolor.cli import main
from jaxcolor.inference.video import mux
assemble = mux.assemble
def killed(*args):
    assemble(*args)
    os._exit(137)
mux.assemble = killed
sys.exit(main(sys.argv[1:]))
"""


class Killed(BaseException):
    """The process dies here."""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return trained_workdir(tmp_path_factory)


@pytest.fixture(scope="module")
def colorizer(workdir) -> Colorizer:
    return Colorizer.from_checkpoint(workdir, backend="jax", batch_size=4)


@pytest.fixture
def clip(tmp_path) -> Path:
    return write_clip(tmp_path / "pan.mp4", pan_frames(12), audio=False)


def colourise(colorizer: Colorizer, clip: Path, output: Path) -> film.Report:
    source = sources.open_source(clip, Fraction(24), 2**28)
    return film.colorize_video(colorizer, source, output, SETTINGS, workers=2)


def frames_in(output: Path) -> int:
    if output.is_dir():
        return len(list(output.glob("*.png")))
    return len(read_video(output)["frames"])


@pytest.mark.parametrize("point", ["before", "while"])
@pytest.mark.parametrize("name", ["colour.mkv", "colour_frames"])
def test_a_run_killed_once_its_output_is_in_place_is_finished_by_the_next(
        colorizer, clip, tmp_path, monkeypatch, point, name):
    """Killed after renaming the output into place, before or while deleting its work
    directory: the next run sees the output complete and only deletes what is left."""
    output = tmp_path / name
    rmtree = shutil.rmtree

    def killed(path, *args, **kwargs):
        if point == "before" or Path(path).exists():  # (not the no-op before the rename)
            raise Killed
        rmtree(path, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(*((WorkDir, "remove") if point == "before" else (shutil, "rmtree")), killed)
        with pytest.raises(Killed):
            colourise(colorizer, clip, output)
    assert frames_in(output) == 12
    report = colourise(colorizer, clip, output)
    assert report.skipped
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([clip.name, name])
    assert frames_in(output) == 12


def test_a_file_in_the_outputs_place_does_not_end_an_unfinished_run(
        colorizer, clip, tmp_path, monkeypatch):
    """Only the run's done mark makes an existing output complete: without it the finished
    segments are kept, and the film replaces the file."""
    output = tmp_path / "colour.mkv"
    finish = WorkDir.finish_segment

    def killed_after_segment_0(self, segment, *args):
        finish(self, segment, *args)
        raise Killed

    with monkeypatch.context() as m:
        m.setattr(WorkDir, "finish_segment", killed_after_segment_0)
        with pytest.raises(Killed):
            colourise(colorizer, clip, output)
    output.write_text("not a film")
    report = colourise(colorizer, clip, output)
    assert (report.skipped, report.resumed, report.frames) == (False, 8, 12)
    assert frames_in(output) == 12


def test_a_film_killed_while_it_is_assembled_leaves_nothing_behind(workdir, clip, tmp_path):
    """The film-sized temporary of a process killed during assembly is deleted by the next
    run, which writes the film."""
    output = tmp_path / "colour.mp4"
    args = ["video", f"--checkpoint={workdir}", f"--input={clip}", f"--output={output}",
            "--batch_size=4", "--workers=1", "--backend=jax", "--lossless"]
    killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_ASSEMBLED, *args], env=ENV,
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode == 137, killed.stderr[-2000:]
    (stale,) = tmp_path.glob(".colour.mp4.tmp-*")
    assert stale.stat().st_size > 0 and not output.exists()
    assert jaxcolor_cli.main(args) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["colour.mp4", "pan.mp4"]
    assert frames_in(output) == 12


def test_a_second_run_on_the_same_output_stops_and_a_dead_runs_lock_is_taken_over(
        colorizer, clip, tmp_path):
    output = tmp_path / "colour.mkv"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(output)], env=ENV,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(lock.OutputBusyError) as busy:
            colourise(colorizer, clip, output)
        assert str(busy.value).startswith(f"{output}: another run (pid {holder.pid}) is "
                                          "writing it")
        assert sorted(p.name for p in tmp_path.iterdir()) == [".colour.mkv.lock", "pan.mp4"]
    finally:
        holder.kill()  # -9: its lock file stays, with its pid
        holder.wait()
    assert (tmp_path / ".colour.mkv.lock").read_text().strip() == str(holder.pid)
    assert colourise(colorizer, clip, output).frames == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["colour.mkv", "pan.mp4"]


def test_an_output_in_a_folder_that_does_not_exist_yet(colorizer, clip, tmp_path):
    output = tmp_path / "new" / "colour.mkv"
    assert colourise(colorizer, clip, output).frames == 12
    assert [p.name for p in output.parent.iterdir()] == ["colour.mkv"]


def test_a_resumed_film_is_entered_at_the_key_frame_before_its_resume_point(
        colorizer, tmp_path, monkeypatch):
    """48 frames, a key frame every 6, segments of 8: killed after 32 frames, the rerun
    decodes from the key frame at 30 (not from frame 0) and gives an uninterrupted run's
    frames."""
    clip = write_clip(tmp_path / "gop.mp4", pan_frames(48), audio=False, gop=6)
    whole = tmp_path / "whole.mp4"
    colourise(colorizer, clip, whole)
    output = tmp_path / "resumed.mp4"
    finish = WorkDir.finish_segment

    def killed_after_segment_3(self, segment, *args):
        finish(self, segment, *args)
        if segment == 3:
            raise Killed

    decoders = []

    class Recorded(video_io.Decoder):
        def __init__(self, info):
            super().__init__(info)
            decoders.append(self)

    with monkeypatch.context() as m:
        m.setattr(WorkDir, "finish_segment", killed_after_segment_3)
        with pytest.raises(Killed):
            colourise(colorizer, clip, output)
    monkeypatch.setattr(video_io, "Decoder", Recorded)
    report = colourise(colorizer, clip, output)
    assert (report.resumed, report.frames) == (32, 48)
    assert decoders[-1].decoded == 48 - 30
    a, b = read_video(whole), read_video(output)
    assert a["times"] == b["times"]
    for x, y in zip(a["frames"], b["frames"], strict=True):
        np.testing.assert_array_equal(x, y)
