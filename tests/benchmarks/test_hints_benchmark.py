"""benchmarks/hints.py: the hints drawn from the truth, the sweep, the table."""

import json

import numpy as np
from PIL import Image

from benchmarks import hints as bench
from tests.support import hinted_colorizer, photo_rgb


def test_a_drawn_hint_is_the_mean_colour_of_its_patch():
    true = np.zeros((64, 64, 3), np.uint8)
    true[:32] = (200, 30, 30)
    true[32:] = (30, 30, 200)
    drawn = bench.draw_hints(true, 50, np.random.default_rng(0))
    assert len(drawn) == 50
    for hint in drawn:
        assert 2.5 <= hint.x <= 60.5 and hint.radius == 3
        top = int(hint.y - 2.5)
        if top + 6 <= 32:
            assert hint.color == "#c81e1e"
        elif top >= 32:
            assert hint.color == "#1e1ec8"


def test_the_sweep_measures_each_count_and_the_table_prints_it(tmp_path, capsys):
    colorizer = hinted_colorizer(backend="jax", batch_size=4)
    photos = [(f"p{i}", photo_rgb(256, 256, seed=i)) for i in range(3)]
    measured = bench.sweep(colorizer, photos, [0, 20], draws=2, seed=0)
    assert set(measured) == {0, 20} and measured[0]["psnr"].shape == (3,)
    assert measured[20]["psnr"].mean() > measured[0]["psnr"].mean()  # hints from the truth
    sheet = bench.sheet(colorizer, photos[:2], 3, seed=0)
    assert sheet.size == (4 * 192, 2 * 192)
    lines = [{"figure": f"hints/{n}", "value": 22.0 + n, "split": "test", "delta_cf": 5.0,
              "ab_mae": 9.0, "config": {"checkpoint": "starter"},
              "intervals": {"psnr": [22.0 + n, 21.5 + n, 22.5 + n], "psnr_gain": [0.5, 0, 1],
                            "delta_cf": [5.0, 4.0, 6.0], "vs_0": [n, n - 1, n + 1]}}
             for n in (10, 0)]
    lines.append({**lines[0], "figure": "hints_grid/10", "config": {
        "checkpoint": "starter", "spread": {"spatial": 1.5, "sigma_l": 6.0, "decay": 0.4}}})
    path = tmp_path / "hints.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    bench.main(["--table", str(path)])
    rows = capsys.readouterr().out.splitlines()
    assert rows[2].startswith("| 0 | 22.00 [21.50, 22.50] | +0.50 | +0.00 [-1.00, +1.00] | "
                              "5.0 [4.0, 6.0] |")
    assert rows[3].startswith("| 10 | 32.00") and len(rows) == 4 + 4  # then the grid table
    bench.main(["--table", str(path), "--only", "grid"])
    assert capsys.readouterr().out.splitlines()[2] == "| 1.5 | 6 | 0.4 | - | +10.00 | |"
    bench.main(["--table", str(path), "--only", "validation"])
    assert capsys.readouterr().out == "\n"  # no validation lines: no table
    for r in lines:
        r["photos"], r["psnr_gray"] = 3, 21.0
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    bench.main(["--plot", str(tmp_path / "plot.png"), "--out", str(path)])
    plotted = np.asarray(Image.open(tmp_path / "plot.png").convert("RGB"))
    assert (plotted == (200, 60, 40)).all(-1).sum() > 100  # the test split's curve is drawn


def test_against_another_model_the_line_carries_the_paired_difference():
    import argparse

    colorizer = hinted_colorizer(backend="jax", batch_size=4)
    photos = [(f"p{i}", photo_rgb(256, 256, seed=i)) for i in range(3)]
    measured = bench.sweep(colorizer, photos, [0, 20], draws=1, seed=0)
    args = argparse.Namespace(split="validation", draws=1, checkpoint="A", photos="P", seed=0,
                              against="B")
    same = bench._line(args, 20, measured[20], measured[0], 3, None, measured[20])
    assert same["intervals"]["vs_against"] == [0.0, 0.0, 0.0]
    # against the same model given no hints: the hints' own gain, as vs_0
    line = bench._line(args, 20, measured[20], measured[0], 3, None, measured[0])
    assert line["intervals"]["vs_against"] == line["intervals"]["vs_0"]
    assert line["intervals"]["vs_against"][1] > 0 and line["config"]["against"] == "B"


def test_locality_rows_per_photo_set_and_the_grid_quotes_its_own_photos_leak(tmp_path, capsys):
    spread = {"spatial": 1.5, "sigma_l": 6.0, "decay": 0.4, "reach": 0.12}

    def leak(far, photos, split, count):
        return {"figure": "hints_locality", "value": far, "split": split, "photos": count,
                "config": {"checkpoint": "starter", "photos": photos, "spread": spread},
                "intervals": {"near": [40.0, 39.0, 41.0], "far": [far, far - 0.1, far + 0.1]}}

    grid = {"figure": "hints_grid/10", "split": "validation", "config": {
        "checkpoint": "starter", "photos": "/val", "spread": spread},
        "intervals": {"vs_0": [3.0, 2.9, 3.1]}}
    lines = [grid, leak(2.2, "/val", "validation", 292), leak(1.7, "/test", "test", 500),
             leak(2.0, "/val-less", "validation", 240)]
    path = tmp_path / "hints.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    bench.main(["--table", str(path), "--only", "locality"])
    rows = capsys.readouterr().out.splitlines()[2:]
    assert [r.split(" | ")[0] for r in rows] == [
        "| starter (validation, 292 photos)", "| starter (test, 500 photos)",
        "| starter (validation, 240 photos)"]
    bench.main(["--table", str(path), "--only", "grid"])
    assert capsys.readouterr().out.splitlines()[2] == "| 1.5 | 6 | 0.4 | 0.12 | +3.00 | 2.2 |"
