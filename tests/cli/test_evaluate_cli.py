"""`jaxcolor evaluate` end to end: metrics.json, the gray baseline, the contact sheet.

The metric functions themselves are checked against references in test_metrics.py; these
tests check what the report holds and that its numbers are consistent and sane.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxcolor.cli import main as jaxcolor_main
from jaxcolor.inference import evaluation
from tests.support import TINY_RUN_STEPS, photo_rgb, trained_workdir
from tests.support import write_records


def evaluate(*args: str) -> int:
    return jaxcolor_main(["evaluate", *args])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return trained_workdir(tmp_path_factory)


def test_records_report_with_baseline_and_sheet(workdir, tmp_path, capsys):
    records = write_records(tmp_path / "records", count=12, size=48, val_every=2)
    out = tmp_path / "report"
    assert evaluate(f"--checkpoint={workdir}", f"--data={records}", f"--out={out}",
                    "--sheet=3", "--batch_size=4") == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["checkpoint"]["step"] == TINY_RUN_STEPS
    assert report["config"]["model"]["backbone"] == "resnet18"
    assert report["data"]["split"] == "val" and report["data"]["images"] == 6  # every 2nd
    per_image = report["per_image"]
    assert len(per_image) == 6 and all(r["height"] == r["width"] == 48 for r in per_image)
    summary = report["summary"]
    for key in ("psnr", "ssim", "ab_mae", "ab_auc", "cf", "cf_true", "psnr_gray", "ssim_gray",
                "ab_mae_gray", "ab_auc_gray"):
        assert summary[key] == pytest.approx(np.mean([r[key] for r in per_image])), key
    assert summary["images"] == 6
    assert summary["delta_cf"] == pytest.approx(abs(summary["cf"] - summary["cf_true"]))
    assert summary["delta_cf_gray"] == pytest.approx(summary["cf_true"])
    for which in ("", "_gray"):
        assert 5 < summary["psnr" + which] < 60 and -1 <= summary["ssim" + which] <= 1
        assert 0 <= summary["ab_auc" + which] <= 1 and summary["ab_mae" + which] >= 0
    assert summary["cf"] > 0  # the model does colour
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.size == (3 * evaluation.TILE, 3 * (evaluation.TILE + evaluation.CAPTION))
    gray_tile = np.asarray(sheet)[:evaluation.TILE, :evaluation.TILE].astype(int)
    assert np.all(gray_tile[..., 0] == gray_tile[..., 1])  # the first column is gray
    caption = np.asarray(sheet)[evaluation.TILE:evaluation.TILE + evaluation.CAPTION]
    assert (caption < 128).any()  # CF captions are drawn
    printed = capsys.readouterr().out
    assert "PSNR (dB)" in printed and "delta-CF" in printed and "model" in printed


def test_photo_folder_lists_unreadable_files_and_respects_max_images(workdir, tmp_path):
    """An unreadable photo is listed and skipped; the report still covers the rest, and the
    exit status (1) says that some inputs failed."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(photo_rgb(60 + 10 * i, 900, seed=i)).save(photos / f"p{i}.jpg")
    (photos / "broken.png").write_text("not an image")
    out = tmp_path / "report"
    assert evaluate(f"--checkpoint={workdir / 'checkpoints'}", "--step=2",
                    f"--data={photos}", f"--out={out}", "--max_images=2",
                    "--max_side=300", "--sheet=0") == 1
    report = json.loads((out / "metrics.json").read_text())
    assert report["checkpoint"]["step"] == 2
    assert [Path(r["path"]).name for r in report["data"]["unreadable"]] == ["broken.png"]
    assert [Path(r["name"]).name for r in report["per_image"]] == ["p0.jpg", "p1.jpg"]
    assert report["per_image"][0]["width"] == 300  # downscaled to --max_side first
    assert not (out / "contact_sheet.png").exists()


def test_missing_data_is_a_one_line_error(workdir, tmp_path, capsys):
    assert evaluate(f"--checkpoint={workdir}", f"--data={tmp_path / 'none'}",
                    f"--out={tmp_path / 'r'}") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "none" in err and "Traceback" not in err


def test_paper_protocol_crops_to_256_and_skips_grayscale_references(workdir, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(photo_rgb(300, 420, seed=1)).save(photos / "a_colour.png")
    Image.fromarray(photo_rgb(600, 280, seed=2)).save(photos / "b_colour.png")
    gray = np.asarray(Image.fromarray(photo_rgb(300, 300, seed=3)).convert("L"))
    Image.fromarray(np.dstack([gray] * 3)).save(photos / "c_gray_as_rgb.png")
    out = tmp_path / "report"
    assert evaluate(f"--checkpoint={workdir}", f"--data={photos}", f"--out={out}",
                    "--protocol=paper", "--sheet=0") == 0  # skipped references are no failure
    report = json.loads((out / "metrics.json").read_text())
    assert report["data"]["protocol"] == "paper" and report["data"]["skipped_gray"] == 1
    assert [Path(r["name"]).name for r in report["per_image"]] == ["a_colour.png",
                                                                   "b_colour.png"]
    assert all(r["height"] == r["width"] == 256 for r in report["per_image"])
    assert report["summary"]["psnr_gray"] is not None  # finite: no gray reference in the mean

    kept = tmp_path / "kept"
    assert evaluate(f"--checkpoint={workdir}", f"--data={photos}", f"--out={kept}",
                    "--protocol=paper", "--sheet=0", "--keep_gray") == 0
    report = json.loads((kept / "metrics.json").read_text())
    assert report["data"]["skipped_gray"] == 0 and len(report["per_image"]) == 3
    assert report["summary"]["psnr_gray"] is None  # the gray reference's is +inf (JSON null)


def test_shard_reports_merge_into_the_unsharded_report(workdir, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(7):
        Image.fromarray(photo_rgb(48 + 4 * i, 64, seed=i)).save(photos / f"p{i}.png")
    gray = np.asarray(Image.fromarray(photo_rgb(64, 64, seed=9)).convert("L"))
    Image.fromarray(np.dstack([gray] * 3)).save(photos / "q_gray.png")  # skipped, counted
    (photos / "r_broken.png").write_text("not an image")
    common = [f"--checkpoint={workdir}", f"--data={photos}", "--sheet=2", "--batch_size=4"]
    assert evaluate(*common, f"--out={tmp_path / 'whole'}") == 1
    parts = [tmp_path / f"part{i}" for i in range(3)]
    for i, part in enumerate(parts):
        evaluate(*common, f"--out={part}", f"--shard={i}/3")
    sizes = [len(json.loads((p / "metrics.json").read_text())["per_image"]) for p in parts]
    assert sum(sizes) == 7 and max(sizes) < 7  # each photo measured by one shard
    capsys.readouterr()
    assert evaluate("--merge", *map(str, parts), f"--out={tmp_path / 'merged'}") == 0
    assert "PSNR (dB)" in capsys.readouterr().out
    merged = (tmp_path / "merged" / "metrics.json").read_text()
    assert merged == (tmp_path / "whole" / "metrics.json").read_text()


def test_merge_refuses_a_missing_shard_or_another_run(workdir, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(photo_rgb(48, 64, seed=i)).save(photos / f"p{i}.png")
    common = [f"--checkpoint={workdir}", f"--data={photos}", "--sheet=0"]
    for i in range(2):
        evaluate(*common, f"--out={tmp_path / f'a{i}'}", f"--shard={i}/2")
    evaluate(*common, f"--out={tmp_path / 'b1'}", "--shard=1/2", "--max_side=40")
    capsys.readouterr()
    for parts, needle in (([tmp_path / "a0"], "shards 0..N-1"),
                          ([tmp_path / "a0", tmp_path / "b1"], "not the same evaluation"),
                          ([tmp_path / "a0", tmp_path / "none"], "not a readable")):
        assert evaluate("--merge", *map(str, parts), f"--out={tmp_path / 'm'}") == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and needle in err and "\n" not in err, err
