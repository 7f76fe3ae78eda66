"""Porting MobileNetV2 and EfficientNet-Lite0: the architecture read from the keys, encoder
checkpoints of any backbone (and one clear error for the wrong one), `jaxcolor port --classify`."""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from PIL import Image
from safetensors.numpy import save_file

from jaxcolor.cli import main as jaxcolor_main
from jaxcolor.data import images
from jaxcolor.models import encoders, imagenet
from jaxcolor.models.port import (
    PortError,
    infer_backbone,
    load_encoder_checkpoint,
    load_state_dict,
    network_from_state_dict,
    save_encoder_checkpoint,
)
from jaxcolor.models.resnet import normalize_rgb
from tests.models.test_encoders import GOLDEN, golden_model

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures"


def manifest_state_dict(name, seed=0):
    """A state dict with the full-size reference's exact keys and shapes, random values."""
    shapes = json.loads((FIXTURES / f"{name}_manifest.json").read_text())["shapes"]
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


def flat_values(model):
    return {p: np.asarray(v.get_value()) for p, v in nnx.to_flat_state(nnx.state(model))}


@pytest.mark.parametrize("manifest, backbone", [
    ("resnet101", "resnet101"), ("mobilenet_v2", "mobilenet_v2"),
    ("efficientnet_lite0", "efficientnet_lite0")])
def test_infer_backbone_from_the_keys_with_or_without_head(manifest, backbone):
    keys = set(json.loads((FIXTURES / f"{manifest}_manifest.json").read_text())["shapes"])
    assert infer_backbone(keys) == backbone
    head = encoders.encoder_class(backbone).head_names
    assert infer_backbone({k for k in keys if k.split(".")[0] not in head}) == backbone


def test_infer_backbone_names_what_it_cannot_port():
    lite0 = set(json.loads((FIXTURES / "efficientnet_lite0_manifest.json").read_text())["shapes"])
    with pytest.raises(PortError, match="b0.pth: an EfficientNet with squeeze-excitation"):
        infer_backbone(lite0 | {"_blocks.0._se_reduce.weight"}, source="b0.pth")
    with pytest.raises(PortError, match="x.pth: no supported network has these keys "
                                        r"\(first: a.weight, b.weight\)"):
        infer_backbone({"a.weight", "b.weight"}, source="x.pth")
    tiny = load_state_dict(FIXTURES / "mobilenet_v2_tiny.safetensors")  # 11 feature layers
    with pytest.raises(PortError, match="MobileNetV2-like layout with 11 feature layers"):
        infer_backbone(tiny)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_encoder_checkpoint_round_trip_drops_the_head(name, tmp_path):
    classifier = golden_model(name)
    out = save_encoder_checkpoint(classifier, tmp_path / "encoder")
    encoder = nnx.eval_shape(lambda: GOLDEN[name](None))
    load_encoder_checkpoint(out, encoder)

    expected = {p: v for p, v in flat_values(classifier).items()
                if p[0] not in type(classifier).head_names}
    restored = flat_values(encoder)
    assert restored.keys() == expected.keys()
    for path, value in expected.items():
        np.testing.assert_array_equal(restored[path], value, err_msg=str(path))
    with pytest.raises(PortError, match="missing key"):  # the head was not saved
        load_encoder_checkpoint(out, nnx.eval_shape(GOLDEN[name]))


def zero_encoder(backbone):
    """An encoder of zeros, without compiling an initialisation."""
    model = nnx.eval_shape(lambda: encoders.build(backbone, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(model)
    return nnx.merge(graphdef, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), state))


def test_a_checkpoint_of_another_backbone_is_one_clear_error(tmp_path):
    resnet18 = zero_encoder("resnet18")
    mobilenet = network_from_state_dict(manifest_state_dict("mobilenet_v2"), include_head=False)
    out = save_encoder_checkpoint(mobilenet, tmp_path / "mnv2")
    with pytest.raises(PortError) as info:
        load_encoder_checkpoint(out, resnet18)
    assert str(info.value) == (
        f"{out}: holds a mobilenet_v2 encoder but the model's encoder is resnet18 "
        "(config.model.backbone); port resnet18 weights or set the backbone to mobilenet_v2")
    resnet34 = nnx.eval_shape(lambda: encoders.build("resnet34", rngs=nnx.Rngs(0)))
    r18 = save_encoder_checkpoint(resnet18, tmp_path / "r18")
    with pytest.raises(PortError, match="holds a resnet18 encoder but the model's encoder is "
                                        "resnet34"):
        load_encoder_checkpoint(r18, resnet34)


def photo(path, size=(300, 200), seed=0):
    """A smooth random colour photo (not square: the eval transform resizes and crops)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    Image.fromarray(small).resize(size, Image.Resampling.BILINEAR).save(path)
    return str(path)


def parse_top5(text, photos):
    """{photo: [(index, name, probability)] * 5} from `--classify` output lines."""
    lines = text.splitlines()
    out = {}
    for p in photos:
        i = lines.index(p)
        rows = [line.split() for line in lines[i + 1:i + 6]]
        out[p] = [(int(r[0]), " ".join(r[1:-1]), float(r[-1])) for r in rows]
    return out


def test_cli_classify_prints_the_converted_networks_top5_and_writes_the_encoder(
        tmp_path, capsys):
    sd = manifest_state_dict("efficientnet_lite0", seed=3)
    # Scaled so that the probabilities are neither one-hot nor flat: the order means something.
    for k, v in sd.items():
        if k.endswith("running_var"):
            sd[k] = np.abs(v) + 1.0
        elif v.ndim == 4:
            sd[k] = v / np.sqrt(np.prod(v.shape[1:]))
        elif k == "_fc.weight":
            sd[k] = 0.1 * v
    src = tmp_path / "lite0.safetensors"
    save_file(sd, str(src))
    photos = [photo(tmp_path / "a.png"), photo(tmp_path / "b.jpg", (200, 260), seed=1)]

    assert jaxcolor_main(["port", str(src), str(tmp_path / "enc"), "--classify", *photos]) == 0
    text = capsys.readouterr().out
    assert "efficientnet_lite0" in text and "(encoder only)" in text
    top5 = parse_top5(text, photos)

    model = network_from_state_dict(sd)
    for p in photos:
        rgb = images.center_crop(images.resize_short_side(images.load_image_rgb(p), 256),
                                 224, 224)
        x = normalize_rgb(jnp.asarray(rgb[None] / 255.0), (0.5,) * 3, (0.5,) * 3)
        logits = np.asarray(model(x))[0]
        probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        want = np.argsort(-logits)[:5]
        got = top5[p]
        assert [i for i, _, _ in got] == list(want)
        assert [n for _, n, _ in got] == [imagenet.class_names()[i] for i in want]
        np.testing.assert_allclose([q for _, _, q in got], probs[want], atol=1e-4)
        assert [q for _, _, q in got] == sorted((q for _, _, q in got), reverse=True)
        assert 0.01 < got[0][2] < 0.99 and sum(q for _, _, q in got) <= 1.0 + 1e-3
    encoder = nnx.eval_shape(lambda: encoders.build("efficientnet_lite0", rngs=nnx.Rngs(0)))
    load_encoder_checkpoint(tmp_path / "enc", encoder)  # OUT written as usual, no head


def test_cli_arch_override_and_a_headless_file_cannot_classify(tmp_path, capsys):
    sd = {k: v for k, v in manifest_state_dict("mobilenet_v2").items()
          if not k.startswith("classifier.")}
    src = tmp_path / "mnv2.safetensors"
    save_file(sd, str(src))
    assert jaxcolor_main(["port", str(src), str(tmp_path / "r18"), "--arch", "resnet18"]) == 1
    assert f"error: {src} does not fit the model: " in capsys.readouterr().err
    assert jaxcolor_main(["port", str(src), str(tmp_path / "x"), "--classify",
                          photo(tmp_path / "a.png")]) == 2
    assert "has no classification head" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_top_k_names_a_head_of_other_classes_by_number():
    probs = np.asarray([0.1, 0.6, 0.3])
    assert imagenet.top_k(probs, 2) == [(1, "class 1", 0.6), (2, "class 2", 0.3)]
    names = imagenet.class_names()
    assert len(names) == 1000 and names[281] == "tabby" and names[967] == "espresso"


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "efficientnet_lite0"])
def test_a_ported_checkpoint_fills_the_generators_encoder(backbone, tmp_path):
    """What training's `config.model.backbone_weights` does: `load_encoder_checkpoint` into
    G's encoder, whose structure must be the ported classifier's less its head."""
    from jaxcolor.models.generator import UNetGenerator

    ported = network_from_state_dict(manifest_state_dict(backbone))
    out = save_encoder_checkpoint(ported, tmp_path / "enc")
    g = nnx.eval_shape(lambda: UNetGenerator(backbone, rngs=nnx.Rngs(0)))
    load_encoder_checkpoint(out, g.encoder)
    restored = flat_values(g.encoder)
    expected = {p: v for p, v in flat_values(ported).items()
                if p[0] not in type(ported).head_names}
    assert restored.keys() == expected.keys()
    for path, value in expected.items():
        np.testing.assert_array_equal(restored[path], value, err_msg=str(path))
