"""`jaxcolor export` on a checkpoint of a tiny real training run: the written model gives the
checkpoint's generator's ab; user errors are one line with the usage exit status."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the ONNX export needs `pip install 'jaxcolor[onnx]'`")
pytest.importorskip("onnxruntime", reason="the ONNX backend needs `pip install 'jaxcolor[onnx]'`")

from jaxcolor import color  # noqa: E402
from jaxcolor.cli import main as jaxcolor_main  # noqa: E402
from jaxcolor.inference.colorizer import Colorizer  # noqa: E402
from jaxcolor.inference.onnx.runtime import OnnxBackendError, OnnxGenerator  # noqa: E402
from tests.support import trained_workdir  # noqa: E402


def export(*args: str) -> int:
    return jaxcolor_main(["export", *args])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return trained_workdir(tmp_path_factory)


def test_export_cli_writes_a_model_equal_to_the_checkpoints_generator(workdir, tmp_path,
                                                                       capsys):
    out = tmp_path / "models" / "g.onnx"
    assert export(f"--checkpoint={workdir}", f"--out={out}", "--render_size=96") == 0
    assert "wrote" in capsys.readouterr().out

    model = OnnxGenerator(out)
    assert (model.batch, model.height, model.width) == (1, 96, 96)
    colorizer = Colorizer.from_checkpoint(workdir, render_size=96)
    assert model.metadata["jaxcolor.step"] == str(colorizer.step)
    assert model.metadata["jaxcolor.render_size"] == "96"
    L = np.random.default_rng(2).uniform(0, 100, (3, 96, 96)).astype(np.float32)
    want = colorizer.predict_ab(L)
    got = color.denormalize_ab(model(color.normalize_l(L)[..., None]))  # 3 runs of batch 1
    np.testing.assert_allclose(got, want, atol=1e-4 * color.AB_SCALE)
    with pytest.raises(OnnxBackendError, match="--render_size"):
        model(np.zeros((1, 32, 32, 1), np.float32))


def test_dynamic_batch_export_takes_any_batch(workdir, tmp_path):
    out = tmp_path / "g.onnx"
    assert export(f"--checkpoint={workdir}", f"--out={out}", "--dynamic_batch") == 0
    model = OnnxGenerator(out)
    assert model.batch is None
    assert model(np.zeros((5, model.height, model.width, 1), np.float32)).shape[0] == 5


def test_export_user_errors_are_one_line(workdir, tmp_path, capsys):
    cases = [
        ([f"--checkpoint={tmp_path / 'missing'}", f"--out={tmp_path / 'g.onnx'}"], "missing"),
        ([f"--checkpoint={workdir}", f"--out={tmp_path}"], "is a directory"),
        ([f"--checkpoint={workdir}", f"--out={tmp_path / 'g.onnx'}", "--step=999"], "999"),
        ([f"--checkpoint={workdir}", f"--out={tmp_path / 'g.onnx'}", "--render_size=0"],
         "--render_size"),
    ]
    for argv, needle in cases:
        assert export(*argv) == 2  # usage: a missing checkpoint or step, a bad flag
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and needle in err and "\n" not in err, err
    assert not (tmp_path / "g.onnx").exists()
