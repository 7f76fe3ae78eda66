"""ResNet: torchvision parity (golden files), architecture contract, NNX train/eval behaviour."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from skimage.color import lab2rgb

from jaxcolor.color import normalize_l
from jaxcolor.models.port import load_state_dict, port_into
from jaxcolor.models.resnet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BasicBlock,
    Bottleneck,
    ResNet,
    gray_input_from_l,
    normalize_rgb,
    resnet,
    resnet101,
)

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures"

# The reduced torchvision networks of tests/fixtures/make_resnet_golden.py.
GOLDEN = {
    "resnet_basic": (BasicBlock, (1, 2, 1, 1)),
    "resnet_bottleneck": (Bottleneck, (2, 1, 1, 1)),
}


def tiny(num_classes=10, block=Bottleneck, stage_sizes=(1, 1, 1, 1), **kw):
    return ResNet(block, stage_sizes, num_classes, base_channels=8, rngs=nnx.Rngs(0), **kw)


def n_params(model):
    return sum(int(np.prod(v.shape)) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))


@jax.jit
def _forward(graphdef, state, x):
    """Eval forward the way training code runs it: functional split/merge under jit."""
    model = nnx.merge(graphdef, state)
    return model(x), model(x, return_features=True)


def golden_model(name):
    """The reduced torchvision network `name`, ported from its golden weights, in eval mode."""
    block, stage_sizes = GOLDEN[name]
    model = nnx.eval_shape(
        lambda: ResNet(block, stage_sizes, 10, base_channels=8, rngs=nnx.Rngs(0))
    )
    port_into(model, load_state_dict(FIXTURES / f"{name}.safetensors"))
    model.eval()
    return model


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_matches_torchvision_logits_and_features(name):
    golden = np.load(FIXTURES / f"{name}.npz")
    model = golden_model(name)

    logits, features = _forward(*nnx.split(model), golden["input"])

    def close(ours, ref):
        scale = np.abs(ref).max()
        np.testing.assert_allclose(np.asarray(ours), ref, rtol=1e-4, atol=1e-4 * scale)

    close(logits, golden["logits"])
    assert len(features) == 5
    for i, feature in enumerate(features):
        close(feature, golden[f"feat{i}"])


@pytest.mark.parametrize(
    "depth, expected",
    # torchvision's published parameter counts.
    [(18, 11_689_512), (34, 21_797_672), (50, 25_557_032)],
)
def test_parameter_count_matches_torchvision(depth, expected):
    model = nnx.eval_shape(lambda: resnet(depth, rngs=nnx.Rngs(0)))  # no allocation
    assert n_params(model) == expected


def test_resnet101_mirrors_torchvision():
    model = nnx.eval_shape(lambda: resnet101(rngs=nnx.Rngs(0)))
    assert n_params(model) == 44_549_160
    paths = {path for path, _ in nnx.to_flat_state(nnx.state(model))}
    assert ("layer3", 22, "conv3", "kernel") in paths
    assert ("layer3", 0, "downsample", 0, "kernel") in paths  # projection shortcut [conv, bn]
    assert ("layer3", 0, "downsample", 1, "var") in paths
    assert not any(p[:3] == ("layer3", 5, "downsample") for p in paths)  # identity shortcut
    assert model.layer3[0].conv2.strides == (2, 2)  # v1.5: stride on the 3x3
    assert model.layer3[0].conv1.strides == (1, 1)
    assert model.feature_channels == (64, 256, 512, 1024, 2048)
    assert model.fc.kernel.shape == (2048, 1000)


@pytest.mark.parametrize(
    "hw, sizes",
    [
        ((224, 224), [112, 56, 28, 14, 7]),
        ((64, 64), [32, 16, 8, 4, 2]),
        ((225, 97), [(113, 49), (57, 25), (29, 13), (15, 7), (8, 4)]),  # torch's floor rounding
    ],
)
def test_feature_shapes(hw, sizes):
    model = nnx.eval_shape(lambda: tiny(None))
    x = jax.ShapeDtypeStruct((2, *hw, 3), jnp.float32)
    features = nnx.eval_shape(lambda m, x: m(x, return_features=True), model, x)
    sizes = [s if isinstance(s, tuple) else (s, s) for s in sizes]
    assert [f.shape for f in features] == [
        (2, *s, c) for s, c in zip(sizes, model.feature_channels, strict=True)
    ]


def test_encoder_without_head():
    encoder = nnx.eval_shape(lambda: tiny(num_classes=None))
    classifier = nnx.eval_shape(lambda: tiny(num_classes=10))
    assert "fc" not in nnx.state(encoder)
    assert n_params(classifier) - n_params(encoder) == 64 * 4 * 10 + 10
    with pytest.raises(ValueError, match="no fc head"):
        encoder(jnp.zeros((1, 32, 32, 3)))


@pytest.fixture
def tiny_model():
    return golden_model("resnet_bottleneck")  # ported, not initialised: eager init is slow on CPU


@jax.jit
def _train_forward(graphdef, state, x):
    model = nnx.merge(graphdef, state)
    logits = model(x)
    return logits, nnx.state(model)  # BatchNorm's running statistics, updated in train mode


def test_train_mode_under_jit_updates_batch_stats(tiny_model):
    x = jax.random.normal(jax.random.key(1), (4, 32, 32, 3))
    tiny_model.eval()
    eval_state = nnx.split(tiny_model)[1]
    eval_logits, after_eval = _train_forward(*nnx.split(tiny_model), x)
    tiny_model.train()
    graphdef, state = nnx.split(tiny_model)
    train_logits, after_train = _train_forward(graphdef, state, x)

    def bn1_mean(s):
        return np.asarray(s["bn1"]["mean"].get_value())

    np.testing.assert_array_equal(bn1_mean(after_eval), bn1_mean(eval_state))  # eval: untouched
    # Train: running mean moves 10% (momentum 0.9) towards the batch mean of the stem conv.
    batch_mean = np.asarray(tiny_model.conv1(x)).mean(axis=(0, 1, 2))
    np.testing.assert_allclose(
        bn1_mean(after_train), 0.9 * bn1_mean(state) + 0.1 * batch_mean, rtol=1e-4, atol=1e-6
    )
    assert not np.allclose(train_logits, eval_logits, atol=1e-3)  # batch, not running, statistics
    # The module itself is unchanged: the new statistics live only in the returned state.
    np.testing.assert_array_equal(tiny_model.bn1.mean.get_value(), bn1_mean(state))


def test_bfloat16_compute_keeps_float32_params():
    model = nnx.eval_shape(lambda: tiny(dtype=jnp.bfloat16))
    model.eval()
    x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    logits = nnx.eval_shape(lambda m, x: m(x), model, x)
    assert logits.dtype == jnp.bfloat16
    assert model.conv1.kernel.get_value().dtype == jnp.float32


def test_unknown_depth_is_rejected():
    with pytest.raises(ValueError, match="depth"):
        resnet(42, rngs=nnx.Rngs(0))


def test_normalize_rgb_defaults_to_imagenet():
    mean = jnp.asarray(IMAGENET_MEAN)
    std = jnp.asarray(IMAGENET_STD)
    np.testing.assert_allclose(normalize_rgb(mean), 0.0, atol=1e-7)
    np.testing.assert_allclose(normalize_rgb(mean + std), 1.0, atol=1e-6)
    np.testing.assert_allclose(normalize_rgb(jnp.asarray([0.0, 0.5, 1.0]), (0.5,) * 3, (0.5,) * 3),
                               [-1.0, 0.0, 1.0])


def test_gray_input_from_l_is_the_imagenet_normalised_gray_photo():
    L = np.linspace(0.0, 100.0, 2 * 5 * 7).reshape(2, 5, 7)
    lab = np.stack([L, np.zeros_like(L), np.zeros_like(L)], axis=-1)
    gray_rgb = lab2rgb(lab)  # scikit-image, float64
    expected = (gray_rgb - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)

    ours = gray_input_from_l(normalize_l(jnp.asarray(L, jnp.float32))[..., None])

    assert ours.shape == (2, 5, 7, 3)
    np.testing.assert_allclose(np.asarray(ours), expected, atol=2e-4)
