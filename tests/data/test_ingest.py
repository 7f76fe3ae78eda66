"""Ingestion: the Kaggle .npy layout and folders of photos, through the library and the CLI."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from jaxcolor import color
from jaxcolor.cli import main as jaxcolor_main
from jaxcolor.data import images, ingest, records, stats
from tests.support import record_stats_reference

H, W = 12, 10  # non-square
AB_COUNTS = (10, 8, 5)  # the Kaggle set splits ab over three files the same way
N = sum(AB_COUNTS)


# --------------------------------------------------------------------------------------
# Kaggle layout.
# --------------------------------------------------------------------------------------


@pytest.fixture
def kaggle(tmp_path):
    """gray_scale.npy uint8 [N, H, W] and ab1..ab3.npy uint8 [n, H, W, 2] in `tmp_path/in`."""
    rng = np.random.default_rng(0)
    L = rng.integers(0, 256, (N, H, W), np.uint8)
    ab = rng.integers(0, 256, (N, H, W, 2), np.uint8)
    ab[:3] = 128  # three gray records for the filter to find
    folder = tmp_path / "in"
    folder.mkdir()
    np.save(folder / "gray_scale.npy", L)
    ab_paths, start = [], 0
    for i, n in enumerate(AB_COUNTS, 1):
        ab_paths.append(folder / f"ab{i}.npy")
        np.save(ab_paths[-1], ab[start:start + n])
        start += n
    return folder / "gray_scale.npy", ab_paths, L, ab


def test_kaggle_records_equal_inputs(tmp_path, kaggle):
    gray_path, ab_paths, L, ab = kaggle
    out = tmp_path / "recs"
    summary = ingest.ingest_kaggle(gray_path, ab_paths, out, chunk=4, val_every=5)
    recs = records.Records(out)
    L_read, ab_read = recs.read(np.arange(N))
    np.testing.assert_array_equal(L_read, L)
    np.testing.assert_array_equal(ab_read, ab)
    expected = record_stats_reference(L, ab)
    np.testing.assert_allclose(recs.stats["colorfulness"], expected["colorfulness"], atol=1e-2)
    assert recs.manifest.source["kind"] == "kaggle"
    assert recs.manifest.source["ab"] == [str(p) for p in ab_paths]
    np.testing.assert_array_equal(recs.split("val"), [0, 5, 10, 15, 20])
    assert (summary.records, summary.train, summary.val, summary.skipped) == (N, 18, 5, ())
    assert summary.filter_removed["min_colorfulness"] == 3 and summary.filter_pass == N - 3


def test_kaggle_streams_in_chunks(tmp_path, kaggle, monkeypatch):
    """Memory stays flat: the writer only ever sees `chunk` records, copied out of the maps."""
    seen = []
    original_add = records.RecordsWriter.add

    def spy(self, L8, ab8, *args, **kwargs):
        seen.append((len(L8), len(ab8), isinstance(L8, np.memmap), isinstance(ab8, np.memmap)))
        return original_add(self, L8, ab8, *args, **kwargs)

    monkeypatch.setattr(records.RecordsWriter, "add", spy)
    progress = []
    gray_path, ab_paths, L, ab = kaggle
    ingest.ingest_kaggle(gray_path, ab_paths, tmp_path / "recs", chunk=4,
                         progress=lambda done, total: progress.append((done, total)))
    assert [s[0] for s in seen] == [4, 4, 4, 4, 4, 3]  # chunks straddle ab file boundaries
    assert all(n_L == n_ab and not mm_L and not mm_ab for n_L, n_ab, mm_L, mm_ab in seen)
    assert progress[-1] == (N, N) and len(progress) == 6
    np.testing.assert_array_equal(records.Records(tmp_path / "recs").read(np.arange(N))[1], ab)


def _save(path, array):
    np.save(path, array)
    return path


KAGGLE_MISMATCHES = {
    "ab counts short": (lambda g, abs_: (g, abs_[:2]), "ab files hold 18 records"),
    "ab height differs": (lambda g, abs_: (g, abs_[:2] + [_save(abs_[2], np.zeros(
        (5, H + 1, W, 2), np.uint8))]), r"ab3.npy: shape \(5, 13, 10, 2\), expected"),
    "ab three channels": (lambda g, abs_: (g, [_save(abs_[0], np.zeros(
        (10, H, W, 3), np.uint8))] + abs_[1:]), r"ab1.npy: shape \(10, 12, 10, 3\)"),
    "gray float": (lambda g, abs_: (_save(g, np.zeros((N, H, W), np.float32)), abs_),
                   "gray_scale.npy: dtype float32, expected uint8"),
    "gray rgb": (lambda g, abs_: (_save(g, np.zeros((N, H, W, 3), np.uint8)), abs_),
                 r"gray_scale.npy: shape \(23, 12, 10, 3\), expected \[N, H, W\]"),
    "ab missing": (lambda g, abs_: (g, abs_ + [g.parent / "ab4.npy"]), "ab4.npy: ab file not found"),
    "gray not npy": (lambda g, abs_: (g.write_text("text") and g, abs_),
                     "gray_scale.npy: not a readable .npy file"),
}


@pytest.mark.parametrize("case", list(KAGGLE_MISMATCHES))
def test_kaggle_mismatch_fails_before_writing(tmp_path, kaggle, case):
    make, message = KAGGLE_MISMATCHES[case]
    gray_path, ab_paths = make(kaggle[0], list(kaggle[1]))
    with pytest.raises(ingest.IngestError, match=message):
        ingest.ingest_kaggle(gray_path, ab_paths, tmp_path / "recs")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # no out, no temp dir


def test_kaggle_refuses_existing_out(tmp_path, kaggle):
    (tmp_path / "recs").mkdir()
    with pytest.raises(records.RecordsError, match="already exists"):
        ingest.ingest_kaggle(kaggle[0], kaggle[1], tmp_path / "recs")
    assert list((tmp_path / "recs").iterdir()) == []


def test_cli_kaggle(tmp_path, kaggle, capsys):
    gray_path, ab_paths, L, _ = kaggle
    out = tmp_path / "recs"
    code = jaxcolor_main(["ingest", "kaggle", f"--gray={gray_path}",
                          "--ab=" + ",".join(map(str, ab_paths)), f"--out={out}",
                          "--val_every=0", "--chunk=8"])
    captured = capsys.readouterr()
    assert code == 0
    assert f"wrote {N} records to {out}" in captured.out and f"{N} train, 0 val" in captured.out
    assert "records/s" in captured.out and "min_colorfulness 3" in captured.out
    assert "\r" in captured.err and f"{N}/{N} 100%" in captured.err
    np.testing.assert_array_equal(records.Records(out)[N - 1][0], L[N - 1])


def test_cli_user_errors_are_one_line(tmp_path, kaggle, capsys):
    gray_path, ab_paths, _, _ = kaggle
    code = jaxcolor_main(["ingest", "kaggle", f"--gray={gray_path}", f"--ab={ab_paths[0]}",
                          f"--out={tmp_path / 'recs'}"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: ab files hold 10 records (ab1.npy: 10)")
    assert err.count("\n") == 1 and "Traceback" not in err
    code = jaxcolor_main(["ingest", "images", f"--src={tmp_path / 'none'}",
                          f"--out={tmp_path / 'r'}"])
    assert code == 2 and capsys.readouterr().err.startswith("error: ")  # usage: no such path
    code = jaxcolor_main(["ingest", "kaggle", f"--gray={gray_path}", f"--ab={ab_paths[0]}",
                          f"--out={tmp_path / 'recs'}", "--val_every=-1"])
    assert code == 2 and "--val_every must be >= 0" in capsys.readouterr().err


def test_cli_as_module_exits_cleanly(tmp_path, kaggle):
    gray_path, ab_paths, _, _ = kaggle
    result = subprocess.run(
        [sys.executable, "-m", "jaxcolor", "ingest", "kaggle", f"--gray={gray_path}",
         f"--ab={ab_paths[1]},{ab_paths[2]}", f"--out={tmp_path / 'recs'}"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ab files hold 13 records")
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "recs").exists()


# --------------------------------------------------------------------------------------
# Folders of photos.
# --------------------------------------------------------------------------------------

SIZE = 32
GOOD = ["astronaut.jpg", "camera_gray.png", "chelsea.webp", "cmyk.jpg", "coffee.png",
        "gray16.png", "palette.gif", "rgba.png", "rocket.tiff", "sub/colorwheel.bmp"]
BROKEN = {"empty.jpg": "empty file", "notes.png": "not an image",
          "truncated.jpg": "truncated"}
GRAY = {"camera_gray.png", "gray16.png"}


def _small(rgb, side=96):
    return images.resize_short_side(rgb, side)


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    """scikit-image's photos in many formats and modes, plus broken files and a stray .txt."""
    root = tmp_path_factory.mktemp("photos")
    (root / "sub").mkdir()
    Image.fromarray(_small(skdata.astronaut())).save(root / "astronaut.jpg", quality=92)
    Image.fromarray(skdata.camera()[::4, ::4]).save(root / "camera_gray.png")
    Image.fromarray(_small(skdata.chelsea())).save(root / "chelsea.webp", quality=90)
    Image.fromarray(_small(skdata.coffee())).convert("CMYK").save(root / "cmyk.jpg")
    Image.fromarray(_small(skdata.coffee())).save(root / "coffee.png")
    gray16 = (skdata.camera()[::4, ::4].astype(np.uint16) * 257)
    Image.fromarray(gray16).save(root / "gray16.png")
    Image.fromarray(_small(skdata.rocket())).quantize(64).save(root / "palette.gif")
    rgba = np.dstack([_small(skdata.chelsea()), np.full((96, 144), 200, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(root / "rgba.png")
    Image.fromarray(_small(skdata.rocket())).save(root / "rocket.tiff")
    Image.fromarray(_small(skdata.colorwheel())).save(root / "sub" / "colorwheel.bmp")
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.png").write_text("not a picture\n")
    jpeg = (root / "astronaut.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(jpeg[:len(jpeg) // 2])
    (root / "README.txt").write_text("ignored: not an image suffix")
    return root


@pytest.fixture(scope="module")
def photo_records(photo_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ingested") / "recs"
    summary = ingest.ingest_images(photo_dir, out, size=SIZE, workers=1, batch=4, val_every=4)
    return out, summary


def test_images_keep_every_decodable_photo_in_path_order(photo_dir, photo_records):
    out, summary = photo_records
    recs = records.Records(out)
    assert len(recs) == len(GOOD) == summary.records
    assert recs.image_size == (SIZE, SIZE)
    for i, name in enumerate(GOOD):
        L8, ab8 = images.load_record(photo_dir / name, SIZE)
        np.testing.assert_array_equal(recs[i][0], L8, err_msg=name)
        np.testing.assert_array_equal(recs[i][1], ab8, err_msg=name)
    assert recs.manifest.source["files"] == len(GOOD) + len(BROKEN)


def test_images_skip_exactly_the_broken_files(photo_dir, photo_records):
    out, summary = photo_records
    skipped = records.Records(out).manifest.skipped
    assert [e["path"] for e in skipped] == [str(photo_dir / name) for name in sorted(BROKEN)]
    for entry in skipped:
        assert BROKEN[entry["path"].rsplit("/", 1)[-1]] in entry["reason"]
    assert summary.skipped == skipped
    text = summary.format()
    assert "skipped 3 inputs:" in text and all(name in text for name in BROKEN)


def test_gray_photos_are_converted_then_filtered(photo_records):
    recs = records.Records(photo_records[0])
    for i, name in enumerate(GOOD):
        if name in GRAY:
            L8, ab8 = recs[i]
            assert np.all(ab8 == 128), name  # exactly neutral after conversion
            assert L8.max() > 200 and L8.min() < 50, name  # full tonal range kept
    kept, removed = stats.select(recs.stats, stats.FilterThresholds())
    assert {GOOD[i] for i in kept} == set(GOOD) - GRAY
    assert removed["min_colorfulness"] == len(GRAY)
    assert photo_records[1].filter_removed == removed


def test_sixteen_bit_gray_equals_its_eight_bit_twin(photo_records):
    recs = records.Records(photo_records[0])
    gray8, gray16 = recs[GOOD.index("camera_gray.png")], recs[GOOD.index("gray16.png")]
    np.testing.assert_array_equal(gray16[0], gray8[0])


def test_rgba_and_cmyk_keep_their_colours(photo_dir, photo_records):
    recs = records.Records(photo_records[0])
    coffee = recs[GOOD.index("coffee.png")]
    cmyk = recs[GOOD.index("cmyk.jpg")]
    assert np.abs(cmyk[1].astype(int) - coffee[1]).mean() < 3
    rgba_rgb = color.lab_to_rgb_np(color.decode_lab8(*recs[GOOD.index("rgba.png")])) * 255
    cat = images.resize_and_crop(_small(skdata.chelsea()), SIZE).astype(np.float32)
    on_white = cat * 200 / 255 + 255 * 55 / 255  # alpha 200 over white
    assert np.abs(rgba_rgb - on_white).mean() < 3


def test_worker_processes_give_identical_records(photo_dir, photo_records, tmp_path):
    ingest.ingest_images(photo_dir, tmp_path / "recs", size=SIZE, workers=2, batch=3,
                         val_every=4)
    one, two = records.Records(photo_records[0]), records.Records(tmp_path / "recs")
    for a, b in zip(one.read(np.arange(len(one))), two.read(np.arange(len(two)))):
        np.testing.assert_array_equal(a, b)
    assert one.manifest.skipped == two.manifest.skipped


def test_images_from_glob(photo_dir, tmp_path):
    summary = ingest.ingest_images(str(photo_dir / "c*.*"), tmp_path / "recs", size=16,
                                   workers=1, val_every=0)
    assert summary.records == 4 and summary.skipped == ()  # camera, chelsea, cmyk, coffee


def test_no_decodable_file_is_an_error(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.jpg").write_bytes(b"")
    (tmp_path / "src" / "b.png").write_text("text")
    with pytest.raises(ingest.IngestError, match="none of the 2 files could be decoded"):
        ingest.ingest_images(tmp_path / "src", tmp_path / "recs", workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_cli_images(photo_dir, tmp_path, capsys):
    out = tmp_path / "recs"
    code = jaxcolor_main(["ingest", "images", f"--src={photo_dir}", f"--out={out}",
                          "--size=16", "--workers=1", "--val_every=0"])
    captured = capsys.readouterr()
    assert code == 0
    assert f"wrote {len(GOOD)} records" in captured.out and "skipped 3 inputs" in captured.out
    assert f"{len(GOOD) + len(BROKEN)}/{len(GOOD) + len(BROKEN)} 100%" in captured.err
    manifest = json.loads((out / records.MANIFEST).read_text())
    assert manifest["height"] == manifest["width"] == 16 and len(manifest["skipped"]) == 3
