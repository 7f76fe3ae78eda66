"""The input-pipeline benchmark runs end to end and writes a complete JSON line."""

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def input_pipeline(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))  # `benchmarks` is a directory at the repo root
    from benchmarks import input_pipeline
    return input_pipeline


def test_benchmark_prints_and_appends_one_json_line(input_pipeline, tmp_path, capsys):
    out = tmp_path / "results.jsonl"
    result = input_pipeline.main([
        "--synthetic", "24", "--size", "32", "--crop", "24", "--batch", "8",
        "--batches", "2", "--windows", "1", "--out", str(out)])
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()
               if line.startswith("{")]
    assert printed == [result]
    assert [json.loads(line) for line in out.read_text().splitlines()] == [result]
    assert result["figure"] == "input_pipeline" and result["unit"] == "images/s"
    assert result["batch"] == 8 and result["resolution"] == 24
    assert result["value"] > 0 and result["baseline"] > 0
    # ratio is rounded to 3 decimals from the unrounded rates: equal up to that rounding
    assert result["ratio"] == pytest.approx(result["value"] / result["baseline"], rel=0.01,
                                            abs=6e-4)
    assert len(result["windows"]["pipeline"]) == len(result["windows"]["baseline"]) == 1
    for key in ("jax", "jaxlib", "device_kind", "device_count", "config"):
        assert key in result
    assert result["config"]["count"] == 24 and result["config"]["flip"] is True
