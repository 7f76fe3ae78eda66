"""The model-file format (`jaxcolor.model_file`): G's variables, config and provenance in one
`.npz`, read back without any model code, and placed into a generator's variables strictly
(inference) or partly (a warm start that adds a branch)."""

import ml_collections
import numpy as np
import pytest
from flax import nnx

from jaxcolor import model_file


class _Net(nnx.Module):
    def __init__(self, width: int, extra: bool = False):
        self.layers = nnx.List([nnx.Linear(3, width, rngs=nnx.Rngs(0)),
                                nnx.BatchNorm(width, rngs=nnx.Rngs(0))])
        self.extra = nnx.Linear(width, 2, rngs=nnx.Rngs(1)) if extra else None


def _variables(net: nnx.Module) -> dict:
    _, params, rest = nnx.split(net, nnx.Param, ...)
    return {"params": params, "batch_stats": rest}


def _config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({"model": {"chroma": 2.0, "init_from": "/here/run"},
                                      "data": {"train": "/here/records", "crop_size": 32}})


def test_a_written_file_reads_back_with_this_machines_paths_cleared(tmp_path):
    variables = _variables(_Net(4))
    path = model_file.write(tmp_path / "m.npz", variables, _config(), {"step": 7},
                            dtype="float32")
    file = model_file.read(path, remedy="fix it")
    assert file.about == {"step": 7} and file.config.model.chroma == 2.0
    assert file.config.model.init_from is None and file.config.data.train is None
    kernel = nnx.to_pure_dict(variables["params"])["layers"][0]["kernel"]
    np.testing.assert_array_equal(file.arrays["params/layers/0/kernel"], kernel)
    half = model_file.read(model_file.write(tmp_path / "h.npz", variables, _config(), {}),
                           remedy="")
    assert half.arrays["params/layers/0/kernel"].dtype == np.float16


def test_placing_is_strict_for_inference_and_partial_for_a_warm_start(tmp_path):
    source = _Net(4)
    file = model_file.read(model_file.write(tmp_path / "m.npz", _variables(source), _config(),
                                            {}, dtype="float32"), remedy="")
    wider = _variables(_Net(4, extra=True))
    with pytest.raises(model_file.ModelFileError, match="params/extra/bias is missing or "
                       "misshapen; write it again"):
        model_file.place(file, "params", wider["params"], remedy="write it again")
    assert model_file.misfits(file, "params", wider["params"]) == []
    before = nnx.to_pure_dict(wider["params"])["extra"]["kernel"].copy()
    model_file.place(file, "params", wider["params"], remedy="", partial=True)
    placed = nnx.to_pure_dict(wider["params"])
    np.testing.assert_array_equal(placed["extra"]["kernel"], before)
    np.testing.assert_array_equal(placed["layers"][0]["kernel"],
                                  nnx.to_pure_dict(nnx.state(source, nnx.Param))["layers"][0]
                                  ["kernel"])
    other = _variables(_Net(5))
    assert "params/layers/0/kernel" in model_file.misfits(file, "params", other["params"])


def test_a_damaged_or_foreign_file_is_one_clear_error_and_starter_names_the_shipped_one(
        tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(model_file.ModelFileError, match="bad.npz: the model file cannot be "
                       "read .*; try again"):
        model_file.read(tmp_path / "bad.npz", remedy="try again")
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(model_file.ModelFileError, match="other.npz: not a jaxcolor model"):
        model_file.read(tmp_path / "other.npz", remedy="")
    assert model_file.resolve("starter") == model_file.STARTER and model_file.STARTER.is_file()
    assert model_file.resolve("~/m.npz").is_absolute()
