"""MobileNetV2 and EfficientNet-Lite0: reference parity (golden files), the full-size key
contract (manifests), feature maps, TF-SAME padding, and the encoder registry.

The golden files come from the real reference classes (tests/fixtures/make_encoder_golden.py):
reduced widths and depths, randomised BatchNorm statistics, a 45 x 62 input (an odd side and
an even one, where TF-SAME pads symmetrically and asymmetrically).
"""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxcolor.models import encoders
from jaxcolor.models.efficientnet import EfficientNetLite, same_pads
from jaxcolor.models.mobilenet import MobileNetV2
from jaxcolor.models.port import load_state_dict, network_from_state_dict, port_into, torch_key

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures"

TINY_MOBILENET_SETTING = ((1, 16, 1, 1), (6, 24, 1, 2), (6, 32, 2, 2), (6, 64, 1, 2),
                          (6, 96, 2, 1), (6, 160, 1, 2), (6, 320, 1, 1))
GOLDEN = {  # the reduced reference networks of make_encoder_golden.py, by num_classes
    "mobilenet_v2_tiny": lambda classes=10: MobileNetV2(
        classes, width_mult=0.25, settings=TINY_MOBILENET_SETTING, rngs=nnx.Rngs(0)),
    "efficientnet_lite_tiny": lambda classes=10: EfficientNetLite(
        classes, width=0.2, depth=0.5, rngs=nnx.Rngs(0)),
}
FULL = {"mobilenet_v2": 3_504_872, "efficientnet_lite0": 4_652_008}  # reference counts
DEPTHWISE = {"mobilenet_v2": ("features", 2, "conv", 1, 0, "kernel"),  # features.2.conv.1.0
             "efficientnet_lite0": ("_blocks", 1, "_depthwise_conv", "kernel")}


def n_params(model):
    return sum(int(np.prod(v.shape)) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))


@jax.jit
def _forward(graphdef, state, x):
    model = nnx.merge(graphdef, state)
    return model(x), model(x, return_features=True)


def golden_model(name):
    model = nnx.eval_shape(GOLDEN[name])
    port_into(model, load_state_dict(FIXTURES / f"{name}.safetensors"))
    model.eval()
    return model


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_matches_the_reference_logits_and_features(name):
    golden = np.load(FIXTURES / f"{name}.npz")
    logits, features = _forward(*nnx.split(golden_model(name)), golden["input"])

    def close(ours, ref):
        np.testing.assert_allclose(np.asarray(ours), ref, rtol=1e-5,
                                   atol=1e-5 * np.abs(ref).max())

    close(logits, golden["logits"])
    assert len(features) == 5
    for i, feature in enumerate(features):
        close(feature, golden[f"feat{i}"])


@pytest.mark.parametrize("backbone", sorted(FULL))
def test_full_size_network_takes_exactly_the_reference_keys(backbone):
    manifest = json.loads((FIXTURES / f"{backbone}_manifest.json").read_text())
    shapes = manifest["shapes"]
    rng = np.random.default_rng(0)
    state_dict = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}

    model = network_from_state_dict(state_dict, source=f"{backbone} manifest")  # strict

    assert type(model) is encoders.encoder_class(backbone)
    paths = [p for p, _ in nnx.to_flat_state(nnx.state(model))]
    assert {torch_key(p) for p in paths} == {k for k in shapes
                                            if not k.endswith("num_batches_tracked")}
    assert n_params(model) == manifest["num_params"] == FULL[backbone]
    depthwise = DEPTHWISE[backbone]
    kernel = np.asarray(dict(nnx.to_flat_state(nnx.state(model)))[depthwise].get_value())
    assert kernel.shape == (3, 3, 1, 96)  # torch (96, 1, 3, 3) -> HWIO, one input per group
    np.testing.assert_array_equal(kernel, state_dict[torch_key(depthwise)].transpose(2, 3, 1, 0))


@pytest.mark.parametrize("backbone, channels", [
    ("mobilenet_v2", (16, 24, 32, 96, 1280)),
    ("efficientnet_lite0", (32, 24, 40, 112, 320)),
])
@pytest.mark.parametrize("hw", [(224, 224), (128, 96), (45, 62)])
def test_feature_maps_at_strides_2_to_32(backbone, channels, hw):
    encoder = nnx.eval_shape(lambda: encoders.build(backbone, rngs=nnx.Rngs(0)))
    assert encoder.feature_channels == channels
    x = jax.ShapeDtypeStruct((2, *hw, 3), jnp.float32)
    features = nnx.eval_shape(lambda m, x: m(x, return_features=True), encoder, x)
    sides = [tuple(-(-s // 2**i) for s in hw) for i in range(1, 6)]  # torch and TF agree here
    assert [f.shape for f in features] == [(2, *s, c) for s, c in zip(sides, channels)]


@pytest.mark.parametrize("backbone", sorted(FULL))
def test_an_encoder_has_no_head(backbone):
    encoder = nnx.eval_shape(lambda: encoders.build(backbone, rngs=nnx.Rngs(0)))
    classifier = nnx.eval_shape(lambda: encoders.build(backbone, 1000, rngs=nnx.Rngs(0)))
    state = nnx.state(encoder)
    assert not any(name in state for name in type(encoder).head_names)
    assert all(name in nnx.state(classifier) for name in type(encoder).head_names
               if name != "_dropout")
    head = 1280 * 1000 + 1000 + (320 * 1280 + 2 * 1280 if backbone.startswith("eff") else 0)
    assert n_params(classifier) - n_params(encoder) == head
    with pytest.raises(ValueError, match="return_features=True"):
        encoder(jnp.zeros((1, 32, 32, 3)))


@pytest.mark.parametrize("side, kernel, stride, pads", [
    (224, 3, 2, (0, 1)),  # even side, stride 2: the odd pixel after (TensorFlow's rule)
    (224, 5, 2, (1, 2)),
    (45, 3, 2, (1, 1)),  # odd side: symmetric
    (45, 5, 2, (2, 2)),
    (14, 5, 1, (2, 2)),  # stride 1: (k - 1) / 2 each side
    (7, 1, 1, (0, 0)),
])
def test_tf_same_pads(side, kernel, stride, pads):
    assert same_pads(side, kernel, stride) == pads
    out = -(-side // stride)
    assert (side + sum(pads) - kernel) // stride + 1 == out  # ceil(side / stride)


def test_registry_builds_every_backbone_and_names_its_input_normalisation():
    for backbone in encoders.BACKBONES:
        cls = encoders.encoder_class(backbone)
        assert len(cls.input_mean) == len(cls.input_std) == 3 and cls.head_names
    assert EfficientNetLite.input_mean == EfficientNetLite.input_std == (0.5, 0.5, 0.5)
    l_norm = jnp.asarray([-1.0, 1.0]).reshape(1, 1, 2, 1)  # black and white
    lite = nnx.eval_shape(lambda: encoders.build("efficientnet_lite0", rngs=nnx.Rngs(0)))
    np.testing.assert_allclose(encoders.input_from_l(lite, l_norm)[0, 0],
                               [[-1.0] * 3, [1.0] * 3], atol=1e-5)  # [-1, 1]
    with pytest.raises(ValueError, match="unknown backbone 'vgg16'"):
        encoders.build("vgg16", rngs=nnx.Rngs(0))


@pytest.mark.parametrize("hw, kernel, stride, pads", [
    ((9, 12), 3, 2, ((1, 1), (1, 1))), ((9, 12), 5, 2, ((1, 2), (1, 2))),
    ((8, 7), 5, 1, ((2, 2), (2, 2))), ((6, 6), 3, 1, ((0, 2), (1, 0)))])
def test_shifted_depthwise_equals_the_grouped_conv_and_its_gradients(hw, kernel, stride, pads):
    """depthwise.shifted_depthwise (XLA:CPU's fast path) against lax's grouped conv."""
    from jaxcolor.models.depthwise import shifted_depthwise

    x = jax.random.normal(jax.random.key(0), (2, *hw, 6))
    w = jax.random.normal(jax.random.key(1), (kernel, kernel, 1, 6))

    def grouped(x, w):
        return jax.lax.conv_general_dilated(x, w, (stride, stride), pads,
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                            feature_group_count=6)

    def shifted(x, w):
        return shifted_depthwise(x, w, (stride, stride), pads)

    np.testing.assert_allclose(shifted(x, w), grouped(x, w), rtol=1e-5, atol=1e-5)
    grads = [jax.grad(lambda x, w: jnp.sum(f(x, w) ** 2), argnums=(0, 1))(x, w)
             for f in (shifted, grouped)]
    for ours, ref in zip(*grads):
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)
