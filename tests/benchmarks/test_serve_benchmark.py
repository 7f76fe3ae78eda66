"""`benchmarks/serve.py` runs end to end at a tiny size: a real `jaxcolor serve` process,
clients at once, one complete JSON line per scenario, no errors."""

import json
from pathlib import Path

import pytest

from tests.support import trained_workdir

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_serve_benchmark_writes_one_line_per_scenario(tmp_path_factory, tmp_path,
                                                          monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    from benchmarks import serve

    out = tmp_path / "serve.jsonl"
    results = serve.main(["--checkpoint", str(trained_workdir(tmp_path_factory)),
                          "--backend", "jax", "--clients", "1,2", "--requests", "2",
                          "--sizes", "64x48", "--out", str(out)])
    assert [json.loads(line) for line in out.read_text().splitlines()] == results
    assert [(r["figure"], r["clients"], r["requests"]) for r in results] == [
        ("serve/preview_64x48", 1, 2), ("serve/full_64x48", 1, 2),
        ("serve/preview_64x48", 2, 4), ("serve/full_64x48", 2, 4)]
    assert [r["target_ms"] for r in results] == [300, None, None, None]
    for result in results:
        assert result["unit"] == "ms" and 0 < result["value"] <= result["p95_ms"]
        assert result["errors"] == 0
        assert result["photos_per_s"] > 0 and result["peak_rss_mb"] > 50
        assert result["config"]["backend"] == "jax" and "jax" in result
