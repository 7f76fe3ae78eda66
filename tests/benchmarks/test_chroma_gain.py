"""benchmarks.chroma_gain's matched mode: k bisected until the model's delta-CF meets the
reference's (the same file at its own setting, or another model file: `--reference`), then
paired against that reference's report. The measurements are the quality benchmark's (slow,
run by hand); here a fake model whose colour falls as 1/k stands in for them."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def chroma_gain(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    from benchmarks import chroma_gain

    measured = []

    def fake_measure(model, gamma, k, photos, reports, render_size=None):
        measured.append((Path(model).name, gamma, round(k, 4), render_size))
        delta_cf = 40.0 / k  # more scale, more colour: delta-CF falls
        return {"delta_cf": delta_cf, "psnr": 22.0 - 0.1 * k, "k": round(k, 4),
                "gamma": gamma, "report": f"{Path(model).name}@{k:.4f}"}

    monkeypatch.setattr(chroma_gain, "_measure", fake_measure)
    monkeypatch.setattr(chroma_gain.quality, "paired", lambda a, b: {
        "psnr_diff": [0.1, 0.0, 0.2], "delta_cf_diff": [0.0, -0.5, 0.5], "pair": (a, b)})
    return chroma_gain, measured


def test_k_is_bisected_to_the_references_delta_cf_and_paired_against_it(chroma_gain):
    module, measured = chroma_gain
    reference = {"delta_cf": 8.9, "report": "starter.npz@own"}
    [result] = module._matched(Path("cap.npz"), [1.5], [], Path("r"), 0.3, {}, reference)
    assert abs(result["matched"]["delta_cf"] - 8.9) <= 0.3
    assert result["paired"]["pair"] == (result["matched"]["report"], "starter.npz@own")
    assert result["gamma"] == 1.5 and result["reference"] is reference
    assert all(name == "cap.npz" and gamma == 1.5 and render is None
               for name, gamma, _, render in measured)
    assert len(result["bisection"]) == len(measured) > 1


def test_the_model_is_bisected_at_the_render_size_asked_for(chroma_gain):
    module, measured = chroma_gain
    module._matched(Path("starter.npz"), [1.5], [], Path("r"), 0.3, {},
                    {"delta_cf": 8.9, "report": "starter.npz@own"}, 192)
    assert measured and all(render == 192 for *_, render in measured)


def test_a_reference_out_of_reach_stops_after_ten_steps(chroma_gain):
    """delta-CF 2 would need k = 20, beyond the bracket [0.2, 6]: the bisection gives up at
    its last step rather than looping, and the line says how far it got."""
    module, measured = chroma_gain
    [result] = module._matched(Path("m.npz"), [1.0], [], Path("r"), 0.3, {},
                               {"delta_cf": 2.0, "report": "x"})
    assert len(measured) == 10 and result["matched"]["delta_cf"] > 6.5


def test_exponents_other_networks_and_render_sizes_have_their_own_tables(chroma_gain,
                                                                         tmp_path):
    """A line matched to the model itself (an exponent against one scale), one matched to
    another file (`--reference`: another network's weights) and one of the model at another
    render size (`--render_size`) never share a table."""
    import json

    module, _ = chroma_gain

    def line(model, reference, psnr_diff, render_size=None):
        config = {"model": model, **({"reference": reference} if reference else {}),
                  **({"render_size": render_size} if render_size else {})}
        return {"figure": "chroma_gain_minus_scale", "gamma": 1.5, "config": config,
                "matched": {"k": 2.0, "psnr": 21.0, "delta_cf": 9.0,
                            "render_size": render_size or 128},
                "reference": {"render_size": 128},
                "paired": {"psnr_diff": [psnr_diff, -1.0, 1.0], "delta_cf_diff": [0, -1, 1]}}

    path = tmp_path / "lines.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (
        line("/a/starter.npz", None, 0.24),  # written before --reference existed
        line("/a/starter.npz", "/a/starter.npz", 0.25),
        line("/b/cap.npz", "/a/starter.npz", -0.21),
        line("/a/starter.npz", "/a/starter.npz", 0.31, render_size=192))))
    gain, weights = module.gain_table(str(path)), module.weights_table(str(path))
    render = module.render_table(str(path))
    assert "+0.25 [" in gain and "-0.21" not in gain and "cap.npz" not in gain
    assert "+0.31" not in gain
    assert "| cap.npz | starter.npz | 1.5 |" in weights and "+0.25" not in weights
    assert "+0.31" not in weights
    assert "| starter.npz | 192 | 128 | 1.5 |" in render and "+0.31 [" in render
    assert "+0.25" not in render and "cap.npz" not in render
