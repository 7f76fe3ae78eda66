"""Porting torch state dicts: resnet101's key contract, strict errors, encoder checkpoints, CLI."""

import json
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import save_file

from jaxcolor.cli import main as jaxcolor_main
from jaxcolor.errors import MissingDependencyError, MissingPathError
from jaxcolor.models.port import (
    PortError,
    infer_depth,
    load_encoder_checkpoint,
    load_state_dict,
    port_into,
    network_from_state_dict,
    save_encoder_checkpoint,
    torch_key,
    torch_to_nnx_state,
)
from jaxcolor.models.resnet import Bottleneck, ResNet, resnet

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures"
SMALL = (
    FIXTURES / "resnet_bottleneck.safetensors"
)  # torchvision Bottleneck, stages (2,1,1,1), width 8


def small_resnet(num_classes=10):
    return nnx.eval_shape(
        lambda: ResNet(Bottleneck, (2, 1, 1, 1), num_classes, base_channels=8, rngs=nnx.Rngs(0))
    )


def flat_values(model):
    return {p: np.asarray(v.get_value()) for p, v in nnx.to_flat_state(nnx.state(model))}


@pytest.fixture(scope="module")
def manifest():
    return json.loads((FIXTURES / "resnet101_manifest.json").read_text())["shapes"]


@pytest.fixture(scope="module")
def abstract_resnet101():
    return nnx.eval_shape(lambda: resnet(101, rngs=nnx.Rngs(0)))


@pytest.fixture(scope="module")
def resnet101_state_dict(manifest):
    """torchvision resnet101's exact keys and shapes; conv1 and fc hold recognisable values."""
    sd = {k: np.zeros(shape, np.float32) for k, shape in manifest.items()}
    sd["conv1.weight"] = np.arange(np.prod(manifest["conv1.weight"]), dtype=np.float32).reshape(
        64, 3, 7, 7
    )
    sd["fc.weight"] = np.arange(1000 * 2048, dtype=np.float32).reshape(1000, 2048)
    sd["layer2.0.bn1.running_var"] = np.arange(128, dtype=np.float32)
    return sd


def test_resnet101_takes_exactly_torchvisions_keys(
    manifest, abstract_resnet101, resnet101_state_dict
):
    paths = [p for p, _ in nnx.to_flat_state(nnx.state(abstract_resnet101))]
    tracked = {k for k in manifest if k.endswith("num_batches_tracked")}
    assert {torch_key(p) for p in paths} == set(manifest) - tracked
    assert len(manifest) == 626

    state = torch_to_nnx_state(resnet101_state_dict, abstract_resnet101)

    kernel = np.asarray(state["conv1"]["kernel"].get_value())
    assert kernel.shape == (7, 7, 3, 64)  # HWIO
    w = resnet101_state_dict["conv1.weight"]
    assert kernel[2, 5, 1, 17] == w[17, 1, 2, 5]
    fc = np.asarray(state["fc"]["kernel"].get_value())
    np.testing.assert_array_equal(fc, resnet101_state_dict["fc.weight"].T)
    var = np.asarray(state["layer2"][0]["bn1"]["var"].get_value())
    np.testing.assert_array_equal(var, np.arange(128))
    assert infer_depth(resnet101_state_dict) == 101


def test_mismatches_are_all_reported_at_once(abstract_resnet101, resnet101_state_dict):
    sd = dict(resnet101_state_dict)
    del sd["layer3.5.conv2.weight"], sd["layer1.0.downsample.1.running_var"]
    sd["layer5.0.conv1.weight"] = np.zeros((8, 8, 1, 1), np.float32)
    sd["fc.weight"] = np.zeros((10, 2048), np.float32)

    with pytest.raises(PortError) as info:
        torch_to_nnx_state(sd, abstract_resnet101, source="r101.pth")

    err = info.value
    assert sorted(err.missing) == ["layer1.0.downsample.1.running_var", "layer3.5.conv2.weight"]
    assert err.unexpected == ["layer5.0.conv1.weight"]
    assert err.mismatched == ["fc.weight (10, 2048) vs model (1000, 2048)"]
    message = str(err)
    assert "\n" not in message and message.startswith("r101.pth does not fit the model")
    for key in ["layer3.5.conv2.weight", "layer5.0.conv1.weight", "fc.weight (10, 2048)"]:
        assert key in message


def test_data_parallel_prefix_gets_a_hint():
    sd = {"module." + k: v for k, v in load_state_dict(SMALL).items()}
    with pytest.raises(PortError, match="strip that DataParallel prefix") as info:
        port_into(small_resnet(), sd)
    assert len(info.value.missing) == len(info.value.unexpected) == len(flat_values(small_resnet()))


def test_infer_depth_rejects_non_torchvision_layouts():
    with pytest.raises(PortError, match=r"Bottleneck stages of \(2, 1, 1, 1\)"):
        infer_depth(load_state_dict(SMALL))


def test_load_state_dict_errors(tmp_path, monkeypatch):
    with pytest.raises(MissingPathError, match="no such file"):
        load_state_dict(tmp_path / "nothing.pth")
    odd = tmp_path / "weights.h5"
    odd.write_bytes(b"")
    with pytest.raises(PortError, match="unknown checkpoint format '.h5'"):
        load_state_dict(odd)
    pth = tmp_path / "weights.pth"
    pth.write_bytes(b"")
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    with pytest.raises(MissingDependencyError, match=r"torch.*pip install 'jaxcolor\[port\]'"):
        load_state_dict(pth)


def test_encoder_checkpoint_round_trip(tmp_path):
    classifier = port_into(small_resnet(), load_state_dict(SMALL))
    out = save_encoder_checkpoint(classifier, tmp_path / "encoder")

    encoder = load_encoder_checkpoint(out, small_resnet(num_classes=None))

    restored = flat_values(encoder)
    expected = {p: v for p, v in flat_values(classifier).items() if p[0] != "fc"}
    assert restored.keys() == expected.keys()
    for path, value in expected.items():
        np.testing.assert_array_equal(restored[path], value, err_msg=str(path))

    with pytest.raises(PortError, match="2 missing key"):  # the head was not saved
        load_encoder_checkpoint(out, small_resnet(num_classes=10))
    with pytest.raises(PortError, match="already exists"):
        save_encoder_checkpoint(classifier, out)


def test_encoder_checkpoint_with_head_feeds_an_encoder_but_not_another_depth(tmp_path):
    classifier = port_into(small_resnet(), load_state_dict(SMALL))
    out = save_encoder_checkpoint(classifier, tmp_path / "with_fc", include_head=True)

    load_encoder_checkpoint(out, small_resnet(num_classes=None))  # fc ignored
    again = load_encoder_checkpoint(out, small_resnet(num_classes=10))
    np.testing.assert_array_equal(again.fc.kernel.get_value(), classifier.fc.kernel.get_value())

    deeper = nnx.eval_shape(
        lambda: ResNet(Bottleneck, (3, 1, 1, 1), 10, base_channels=8, rngs=nnx.Rngs(0))
    )
    with pytest.raises(PortError, match=r"missing key\(s\): layer1\.2\."):
        load_encoder_checkpoint(out, deeper)
    with pytest.raises(PortError, match="not an Orbax checkpoint"):
        load_encoder_checkpoint(tmp_path / "nowhere", deeper)


def torch_shapes(model):
    """torch state_dict key -> torch shape (OIHW convs, [out, in] linears) for a Flax ResNet."""
    out = {}
    for path, var in nnx.to_flat_state(nnx.state(model)):
        shape = tuple(var.get_value().shape)
        if path[-1] == "kernel":
            shape = (shape[3], shape[2], shape[0], shape[1]) if len(shape) == 4 else shape[::-1]
        out[torch_key(path)] = shape
    return out


def test_cli_converts_a_resnet18_safetensors_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    reference = nnx.eval_shape(lambda: resnet(18, rngs=nnx.Rngs(0)))
    sd = {
        k: rng.standard_normal(shape).astype(np.float32)
        for k, shape in torch_shapes(reference).items()
    }
    sd["bn1.num_batches_tracked"] = np.array(7, np.int64)
    src = tmp_path / "resnet18.safetensors"
    save_file(sd, str(src))

    assert jaxcolor_main(["port", str(src), str(tmp_path / "ckpt")]) == 0
    assert "resnet18" in capsys.readouterr().out

    encoder = load_encoder_checkpoint(
        tmp_path / "ckpt", nnx.eval_shape(lambda: resnet(18, None, rngs=nnx.Rngs(0)))
    )
    restored, expected = (
        flat_values(encoder),
        flat_values(network_from_state_dict(sd, include_head=False)),
    )
    assert restored.keys() == expected.keys()
    for path, value in expected.items():
        np.testing.assert_array_equal(restored[path], value)
    shortcut = sd["layer2.0.downsample.0.weight"].transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(encoder.layer2[0].downsample[0].kernel.get_value(), shortcut)


def test_cli_user_error_is_one_line_without_traceback(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxcolor",
            "port",
            str(tmp_path / "missing.pth"),
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2  # usage: the source file does not exist
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'missing.pth'}: no such file"
    ]
    assert not (tmp_path / "out").exists()


def test_port_preserves_model_dtype():
    bf16 = jax.numpy.bfloat16
    model = nnx.eval_shape(
        lambda: ResNet(
            Bottleneck, (2, 1, 1, 1), 10, base_channels=8, param_dtype=bf16, rngs=nnx.Rngs(0)
        )
    )
    port_into(model, load_state_dict(SMALL))
    assert model.conv1.kernel.get_value().dtype == bf16
    assert model.bn1.mean.get_value().dtype == jax.numpy.float32  # flax keeps batch stats in f32
