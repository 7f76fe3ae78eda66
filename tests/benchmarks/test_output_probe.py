"""benchmarks.output_probe: the changes it makes to what G delivers, and where its lines go.
The measurements are chroma_gain's (slow, run by hand); here fakes stand in for G and for
the benchmark."""

import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def probe(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    from benchmarks import output_probe
    return output_probe


def test_the_ceiling_caps_chroma_keeps_hue_and_leaves_faint_colour_alone(probe):
    ab = np.array([[30.0, 40.0], [3.0, -4.0], [-60.0, 80.0]], np.float32)  # chroma 50, 5, 100
    out = np.asarray(probe.ceiling(ab, 40.0))
    chroma = np.linalg.norm(out, axis=-1)
    np.testing.assert_allclose(chroma, [40.0, 5.0, 40.0], rtol=1e-5)
    np.testing.assert_allclose(out / chroma[:, None], ab / np.linalg.norm(ab, axis=-1)[:, None],
                               rtol=1e-5)


def test_the_mirror_average_is_taken_before_the_chroma_scale(probe):
    """A fake G whose a/b is the column index: on L and on its mirror (mirrored back) the
    mean is flat, (w - 1) / 2 everywhere; only then are the scale and exponent applied."""
    w = 4

    def raw(L, hint):
        cols = np.broadcast_to(np.arange(w, dtype=np.float32), L.shape)
        return np.stack([cols, np.zeros_like(cols)], -1)

    L = np.zeros((1, 2, w), np.float32)
    ab = np.asarray(probe.mirror_averaged(raw, 2.0, 1.5)(L))
    mean = (w - 1) / 2
    np.testing.assert_allclose(ab[..., 0], 2.0 * mean * (mean / 20.0) ** 0.5, rtol=1e-4)
    with pytest.raises(SystemExit, match="without hints"):
        probe.mirror_averaged(raw, 1.0, 1.0)(L, np.ones((1, 2, w, 3), np.float32))


@pytest.mark.parametrize("spec", ["ceiling", "ceiling:0", "ceiling:x", "mirror:2", "blur"])
def test_a_bad_change_is_one_line_naming_the_flag(probe, spec):
    with pytest.raises(SystemExit, match="--change: 'mirror' or 'ceiling:C'"):
        probe.parse_change(spec)


def test_each_line_records_its_change_and_goes_to_the_probe_file(probe, monkeypatch, tmp_path):
    seen = {}

    def fake_main(argv):
        seen["argv"] = argv
        return [{"figure": "chroma_gain_minus_scale", "value": 0.0, "config": {"model": "m"}}]

    monkeypatch.setattr(probe.chroma_gain, "main", fake_main)
    out = tmp_path / "probe.jsonl"
    probe.main(["--change", "ceiling:50", "--model", "m.npz", "--workdir", "w",
                "--out", str(out)])
    assert "--change" not in seen["argv"] and seen["argv"][-2:] == ["--out", ""]
    [line] = [json.loads(x) for x in out.read_text().splitlines()]
    assert line["config"]["change"] == "ceiling:50"


def test_a_parsed_change_builds_the_colorizers_new_predict(probe):
    """On a stand-in Colorizer whose predict_device scales a fixed raw a/b by its own chroma
    and exponent: the ceiling caps what it delivers; the mirror reads the raw a/b (chroma 1)
    and leaves the Colorizer's calibration as it was."""
    from jaxcolor import color

    class Stand:
        chroma, chroma_gamma = 2.0, 1.5

        def predict_device(self, L, hint=None):
            raw = np.broadcast_to(np.array([30.0, 40.0], np.float32), L.shape + (2,))
            return np.asarray(color.scale_chroma(raw, self.chroma, self.chroma_gamma))

    L = np.zeros((1, 2, 3), np.float32)
    stand = Stand()
    capped = np.asarray(probe.parse_change("ceiling:20")(stand)(L))
    np.testing.assert_allclose(np.linalg.norm(capped, axis=-1), 20.0, rtol=1e-5)
    mirrored = np.asarray(probe.parse_change("mirror")(stand)(L))
    np.testing.assert_allclose(mirrored, stand.predict_device(L), rtol=1e-5)
    assert (stand.chroma, stand.chroma_gamma) == (2.0, 1.5)
