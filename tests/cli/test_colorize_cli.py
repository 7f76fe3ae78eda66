"""`jaxcolor colorize` end to end on a checkpoint of a tiny real training run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxcolor import cli as jaxcolor_cli
from jaxcolor import color
from jaxcolor.data.records import RecordsWriter
from tests.support import assert_keeps_lightness, photo_rgb, trained_workdir


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return trained_workdir(tmp_path_factory)


def cli(workdir: Path, *args: str) -> int:
    return jaxcolor_cli.main(["colorize", f"--checkpoint={workdir}", "--batch_size=4",
                              *map(str, args)])


def odd_files(directory: Path) -> None:
    """The foundation issue's odd-file list: four broken files, six valid ones, one ignored."""
    (directory / "nested").mkdir(parents=True)
    rgb = photo_rgb(333, 517)
    Image.fromarray(rgb).save(directory / "odd_size.jpg", quality=98)
    (directory / "empty.jpg").write_bytes(b"")
    (directory / "truncated.jpg").write_bytes((directory / "odd_size.jpg").read_bytes()[:400])
    (directory / "text.png").write_text("not an image")
    Image.fromarray(rgb[:5, :40]).save(directory / "tiny.png")
    Image.fromarray(rgb).convert("CMYK").save(directory / "cmyk.jpg")
    Image.fromarray(rgb[..., 1].astype(np.uint16) * 257).save(directory / "sixteen.png")
    alpha = np.tile(np.linspace(0, 255, 517).astype(np.uint8), (333, 1))
    Image.fromarray(np.dstack([rgb, alpha])).save(directory / "nested" / "rgba.png")
    Image.fromarray(rgb).convert("P").save(directory / "palette.png")
    Image.fromarray(rgb).convert("L").save(directory / "gray.webp")
    (directory / "notes.txt").write_text("ignored: not an image suffix")


def test_odd_files_broken_reported_valid_processed(workdir, tmp_path, capsys):
    odd_files(tmp_path / "in")
    out = tmp_path / "out"
    assert cli(workdir, f"--input={tmp_path / 'in'}", f"--output={out}") == 1
    report = capsys.readouterr().out
    for name, reason in (("empty.jpg", "empty file"), ("truncated.jpg", "truncated"),
                         ("text.png", "not an image"), ("tiny.png", "at least 8 pixels")):
        assert any(name in line and reason in line for line in report.splitlines()), report
    assert "done 6, failed 4" in report
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["cmyk.png", "gray.png", "nested/rgba.png", "odd_size.png",
                       "palette.png", "sixteen.png"]
    for name in ("odd_size", "cmyk", "gray", "palette", "sixteen"):
        image = Image.open(out / f"{name}.png")
        assert image.size == (517, 333) and image.mode == "RGB"
    rgba = np.asarray(Image.open(out / "nested" / "rgba.png"))
    source = np.asarray(Image.open(tmp_path / "in" / "nested" / "rgba.png"))
    assert rgba.shape == (333, 517, 4)
    np.testing.assert_array_equal(rgba[..., 3], source[..., 3])  # alpha kept
    assert_keeps_lightness(source[..., :3], rgba)
    gray_in = np.asarray(Image.open(tmp_path / "in" / "gray.webp").convert("RGB"))
    assert_keeps_lightness(gray_in, np.asarray(Image.open(out / "gray.png")))


def test_exit_codes_skip_existing_and_overwrite(workdir, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        Image.fromarray(photo_rgb(40 + i, 64, seed=i)).save(src / f"p{i}.png")
    out = tmp_path / "out"
    assert cli(workdir, f"--input={src}", f"--output={out}") == 0
    assert "done 3, failed 0" in capsys.readouterr().out
    marker = np.zeros((5, 5, 3), np.uint8)
    Image.fromarray(marker).save(out / "p0.png")
    assert cli(workdir, f"--input={src}", f"--output={out}") == 0
    assert "done 0, failed 0, skipped 3 existing" in capsys.readouterr().out
    assert Image.open(out / "p0.png").size == (5, 5)  # left alone
    assert cli(workdir, f"--input={src}", f"--output={out}", "--overwrite",
               "--format=jpg") == 0  # new names: nothing to overwrite yet
    assert sorted(p.name for p in out.iterdir()) == [
        "p0.jpg", "p0.png", "p1.jpg", "p1.png", "p2.jpg", "p2.png"]
    assert cli(workdir, f"--input={src}/p0.png", f"--output={out}", "--overwrite") == 0
    assert Image.open(out / "p0.png").size == (64, 40)  # replaced
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_never_writes_over_an_input(workdir, tmp_path, capsys):
    src = tmp_path / "photos"
    src.mkdir()
    original = photo_rgb(30, 40)
    Image.fromarray(original).save(src / "a.png")
    before = (src / "a.png").read_bytes()
    assert cli(workdir, f"--input={src / 'a.png'}", f"--output={src}", "--format=same",
               "--overwrite") == 2
    assert cli(workdir, f"--input={src}", f"--output={src}") == 2
    err = capsys.readouterr().err
    assert "refusing to write" in err and "is the input directory" in err
    assert (src / "a.png").read_bytes() == before
    assert sorted(p.name for p in src.iterdir()) == ["a.png"]


def test_glob_npy_and_records_inputs(workdir, tmp_path, capsys):
    src = tmp_path / "bulk"
    (src / "deep").mkdir(parents=True)
    rgb = photo_rgb(36, 52)
    L = color.rgb_to_lab_np(rgb)[..., 0]
    L8, ab8 = color.encode_lab8(color.rgb_to_lab_np(np.stack([rgb, rgb[::-1]])))
    np.save(src / "deep" / "stack.npy", L8)  # [2, H, W] uint8 8-bit L
    np.save(src / "single.npy", L.astype(np.float32))  # [H, W] float L
    np.save(src / "bad.npy", np.zeros((2, 3, 4, 5), np.uint8))
    with RecordsWriter(src / "recs", 36, 52) as writer:
        writer.add(L8, ab8)
    out = tmp_path / "out"
    assert cli(workdir, f"--input={src}/**/*.npy", f"--output={out}") == 1
    assert "bad.npy" in capsys.readouterr().out
    assert Image.open(out / "deep" / "stack" / "000001.png").size == (52, 36)
    assert_keeps_lightness(rgb, np.asarray(Image.open(out / "single.png")))
    assert cli(workdir, f"--input={src / 'recs'}", f"--output={tmp_path / 'rec_out'}") == 0
    assert sorted(p.name for p in (tmp_path / "rec_out").iterdir()) == ["000000.png",
                                                                        "000001.png"]


def test_user_errors_are_one_line_without_traceback(tmp_path):
    src = tmp_path / "a.png"
    Image.fromarray(photo_rgb(20, 20)).save(src)
    result = subprocess.run(
        [sys.executable, "-m", "jaxcolor", "colorize", f"--checkpoint={tmp_path / 'nope'}",
         f"--input={src}", f"--output={tmp_path / 'out'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'nope'}: no such " \
                                                     "checkpoint directory"


def test_a_model_file_as_checkpoint_colours_as_its_run_does(workdir, tmp_path, capsys):
    from jaxcolor.inference import restore, starter

    model = starter.save(restore.restore(workdir), tmp_path / "model.npz", dtype="float32")
    src = tmp_path / "a.png"
    Image.fromarray(photo_rgb(40, 56)).save(src)
    for name, checkpoint in (("run", workdir), ("file", model)):
        assert jaxcolor_cli.main(["colorize", f"--checkpoint={checkpoint}", "--backend=jax",
                                  f"--input={src}", f"--output={tmp_path / name}"]) == 0
    assert f"model: {model} step " in capsys.readouterr().err
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "run" / "a.png")),
                                  np.asarray(Image.open(tmp_path / "file" / "a.png")))


def test_chroma_flags_reach_the_colours_and_the_model_line(workdir, tmp_path, capsys):
    """--chroma and --chroma_gamma override the model's own calibration, and the model line
    says which scale a run used; the raw colour (1, 1) differs from a gained one."""
    src = tmp_path / "a.png"
    Image.fromarray(photo_rgb(40, 56)).save(src)
    outputs = {}
    for name, flags in (("raw", ["--chroma=1", "--chroma_gamma=1"]),
                        ("gained", ["--chroma=1.5", "--chroma_gamma=2"])):
        assert jaxcolor_cli.main(["colorize", f"--checkpoint={workdir}", "--backend=jax",
                                  f"--input={src}", f"--output={tmp_path / name}",
                                  *flags]) == 0
        outputs[name] = np.asarray(Image.open(tmp_path / name / "a.png"))
    err = capsys.readouterr().err
    assert "chroma x1 with exponent 1)" in err and "chroma x1.5 with exponent 2)" in err
    assert np.abs(outputs["raw"].astype(int) - outputs["gained"].astype(int)).max() > 0
    assert jaxcolor_cli.main(["colorize", f"--checkpoint={workdir}", f"--input={src}",
                              f"--output={tmp_path / 'bad'}", "--chroma_gamma=9"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "error: chroma_gamma must lie in [0.25, 4], got 9"


def test_shards_colour_the_whole_archive_once(workdir, tmp_path, capsys):
    """Three machines with --shard I/3 write exactly the unsharded run's files, each once."""
    photos = tmp_path / "in"
    for i in range(9):
        (photos / f"box{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo_rgb(40 + 3 * i, 56, seed=i)).save(photos / f"box{i % 2}" / f"{i}.png")
    (photos / "broken.png").write_text("not an image")
    assert cli(workdir, f"--input={photos}", f"--output={tmp_path / 'whole'}") == 1
    capsys.readouterr()
    written, failed = {}, []
    for i in range(3):
        out = tmp_path / f"shard{i}"
        rc = cli(workdir, f"--input={photos}", f"--output={out}", f"--shard={i}/3")
        report = capsys.readouterr().out
        failed += [line for line in report.splitlines() if line.startswith("failed: ")]
        assert rc == (1 if any("broken.png" in line for line in report.splitlines()) else 0)
        for path in out.rglob("*.png"):
            rel = str(path.relative_to(out))
            assert rel not in written, f"{rel} written by two shards"
            written[rel] = np.asarray(Image.open(path))
    whole = {str(p.relative_to(tmp_path / "whole")): np.asarray(Image.open(p))
             for p in (tmp_path / "whole").rglob("*.png")}
    assert sorted(written) == sorted(whole) and len(whole) == 9
    for rel, pixels in whole.items():
        np.testing.assert_array_equal(written[rel], pixels, err_msg=rel)
    assert len(failed) == 1 and "broken.png" in failed[0]  # reported by its shard alone


def test_bad_hints_stop_the_run_before_any_work(workdir, tmp_path, capsys):
    """A hints file naming a photo the input lacks, a hint outside its photo or a malformed
    colour: exit 2, one line naming the file and entry, nothing written."""
    import json

    photos = tmp_path / "in"
    (photos / "sub").mkdir(parents=True)
    Image.fromarray(photo_rgb(30, 40)).save(photos / "sub" / "a.png")
    hint = {"x": 5, "y": 5, "color": "#ff0000"}
    cases = [({"sub/b.png": [hint]}, "'sub/b.png' is not a photo of the input"),
             ({"sub/a.png": [{**hint, "x": 40}]}, "sub/a.png[0]: (40, 5) is outside the 40x30"),
             ({"sub/a.png": [{**hint, "color": "#ff00"}]}, "sub/a.png[0]: color must be")]
    for document, needle in cases:
        (tmp_path / "h.json").write_text(json.dumps(document))
        assert cli(workdir, f"--input={photos}", f"--output={tmp_path / 'out'}",
                   f"--hints={tmp_path / 'h.json'}") == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]  # after the model line
        assert err.startswith("error:") and needle in err, err
        assert not (tmp_path / "out").exists()


def test_one_photo_goes_to_the_image_file_named(workdir, tmp_path, capsys):
    """`--output=old-colour.jpg` for one photo is that file (its suffix the format), not a
    folder of that name; an existing folder of that name still receives it inside, and a
    glob still names a folder; one file holding several photos cannot go to one name."""
    Image.fromarray(photo_rgb(36, 52)).save(tmp_path / "old.png")
    target = tmp_path / "old-colour.jpg"
    assert cli(workdir, f"--input={tmp_path / 'old.png'}", f"--output={target}") == 0
    assert target.is_file() and Image.open(target).format == "JPEG"
    assert Image.open(target).size == (52, 36)
    assert cli(workdir, f"--input={tmp_path / 'old.png'}", f"--output={target}") == 0
    assert "skipped 1 existing" in capsys.readouterr().out
    folder = tmp_path / "folder.png"
    folder.mkdir()
    assert cli(workdir, f"--input={tmp_path / 'old.png'}", f"--output={folder}") == 0
    assert (folder / "old.png").is_file()
    Image.fromarray(photo_rgb(36, 52, seed=1)).save(tmp_path / "new.png")
    assert cli(workdir, f"--input={tmp_path / '*.png'}", f"--output={tmp_path / 'x.png'}") == 0
    assert sorted(p.name for p in (tmp_path / "x.png").iterdir()) == ["new.png", "old.png"]
    capsys.readouterr()
    (tmp_path / "two").mkdir()
    np.save(tmp_path / "two" / "stack.npy", np.zeros((2, 16, 16), np.uint8))
    assert cli(workdir, f"--input={tmp_path / 'two' / 'stack.npy'}",
               f"--output={tmp_path / 'stack.png'}") == 2
    assert "one image file, but the input holds 2 photos" in capsys.readouterr().err
