"""U-Net generator: shapes, input checks, encoder wiring and freezing filters, training, bf16.

Speed: one ResNet-18 generator is built per module and cloned; shape checks trace with
jax.eval_shape; rbg keys because threefry initialisers compile slowly on CPU.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxcolor.models import encoders, resnet
from jaxcolor import ab_grid
from jaxcolor.models.generator import (
    DECODER_PARAMS,
    ENCODER_PARAMS,
    SelfAttention,
    UNetGenerator,
    annealed_mean,
    bin_centres,
    is_encoder_path,
    upsample2x,
)


def _rngs(seed=0):
    return nnx.Rngs(jax.random.key(seed, impl="rbg"))


def _l_batch(batch, h, w, seed=0):
    return jax.random.uniform(jax.random.key(seed), (batch, h, w, 1), minval=-1.0, maxval=1.0)


def _forward(graphdef, state, l_norm):
    model = nnx.merge(graphdef, state)
    return model(l_norm), nnx.state(model)


@pytest.fixture(scope="module")
def generator():
    """A small real generator (ResNet-18, self-attention on), built once: tests clone it."""
    return UNetGenerator("resnet18", self_attention=True, rngs=_rngs())


@pytest.fixture(scope="module")
def abstract_generators():
    """Shape-only ResNet-18 generators (nothing allocated or compiled), by self_attention."""
    return {
        attention: nnx.split(
            nnx.eval_shape(
                lambda: UNetGenerator("resnet18", self_attention=attention, rngs=_rngs()))
        )
        for attention in (False, True)
    }


@pytest.mark.parametrize("self_attention", [False, True])
@pytest.mark.parametrize("h,w", [(64, 64), (128, 128), (224, 224), (256, 256), (64, 128)])
def test_output_shape_and_dtype(abstract_generators, h, w, self_attention):
    graphdef, state = abstract_generators[self_attention]
    out, _ = jax.eval_shape(
        lambda s, x: _forward(graphdef, s, x),
        state,
        jax.ShapeDtypeStruct((2, h, w, 1), jnp.float32),
    )
    assert out.shape == (2, h, w, 2)
    assert out.dtype == jnp.float32


@pytest.mark.parametrize("shape", [(1, 48, 64, 1), (1, 64, 80, 1), (1, 64, 64, 3), (64, 64, 1)])
def test_bad_input_shape_raises_value_error_naming_it(generator, shape):
    with pytest.raises(ValueError, match=r"UNetGenerator: .*" + re.escape(str(shape))):
        generator(jnp.zeros(shape))


def test_decoder_widths_must_be_five():
    with pytest.raises(ValueError, match="decoder_widths must be 5"):
        UNetGenerator("resnet18", decoder_widths=(64, 32, 16), rngs=_rngs())


def test_jit_with_split_merge_matches_eager_forward(generator):
    model = nnx.clone(generator)
    model.eval()
    l_norm = _l_batch(2, 64, 64)
    graphdef, state = nnx.split(model)
    jitted, _ = jax.jit(_forward, static_argnums=0)(graphdef, state, l_norm)
    eager = model(l_norm)
    np.testing.assert_allclose(jitted, eager, rtol=1e-4, atol=1e-5)
    assert float(jnp.abs(eager).max()) <= 1.0
    assert float(jnp.std(eager)) > 1e-3  # a real, not constant, colouring


def test_encoder_sees_the_gray_rgb_image_of_l(generator, monkeypatch):
    model = nnx.clone(generator)
    model.eval()
    seen = []
    encoder_call = type(model.encoder).__call__

    def spy(self, x, **kwargs):
        seen.append(x)
        return encoder_call(self, x, **kwargs)

    monkeypatch.setattr(type(model.encoder), "__call__", spy)
    l_norm = _l_batch(2, 64, 64)
    model(l_norm)
    assert len(seen) == 1
    assert seen[0].shape == (2, 64, 64, 3)
    np.testing.assert_allclose(seen[0], resnet.gray_input_from_l(l_norm), rtol=1e-6, atol=1e-6)


def test_every_parameter_gets_a_finite_nonzero_gradient(generator):
    model = nnx.clone(generator)
    model.train()
    model.attention.gamma[...] = 0.5  # at gamma = 0 the attention convs get no gradient yet.
    l_norm = _l_batch(2, 64, 64)
    target = jax.random.uniform(jax.random.key(1), (2, 64, 64, 2), minval=-0.5, maxval=0.5)

    @nnx.jit
    def grads_of(model):
        return nnx.grad(lambda m: jnp.mean(jnp.abs(m(l_norm) - target)))(model)

    flat = nnx.to_flat_state(grads_of(model))
    assert len(flat) == len(nnx.to_flat_state(nnx.state(model, nnx.Param)))
    for path, g in flat:
        g = np.asarray(g[...])
        assert np.all(np.isfinite(g)), path
        assert np.any(g != 0), path


def test_bfloat16_forward_close_to_float32(generator):
    model = nnx.clone(generator)
    model.eval()  # running statistics: both dtypes normalise by the same numbers.
    bf16 = nnx.eval_shape(
        lambda: UNetGenerator("resnet18", self_attention=True, dtype=jnp.bfloat16, rngs=_rngs())
    )
    bf16.eval()
    bf16_graphdef, _ = nnx.split(bf16)
    model.attention.gamma[...] = 0.5  # let the attention path count too
    graphdef, state = nnx.split(model)
    l_norm = _l_batch(2, 64, 64)
    forward = jax.jit(_forward, static_argnums=0)
    ref, _ = forward(graphdef, state, l_norm)
    out, bf16_state = forward(bf16_graphdef, state, l_norm)  # same float32 params
    assert out.dtype == jnp.float32
    assert float(jnp.std(ref)) > 0.1  # not saturated: the comparison means something
    np.testing.assert_allclose(out, ref, atol=0.05)
    assert float(jnp.mean(jnp.abs(out - ref))) < 0.01
    for leaf in jax.tree.leaves(nnx.state(bf16_state, nnx.Param)):
        assert leaf.dtype == jnp.float32


def test_encoder_and_decoder_filters_partition_the_parameters():
    model = nnx.eval_shape(lambda: UNetGenerator("resnet18", self_attention=True, rngs=_rngs()))
    encoder = nnx.state(model, ENCODER_PARAMS)
    decoder = nnx.state(model, DECODER_PARAMS)
    count = lambda s: sum(x.size for x in jax.tree.leaves(s))
    assert count(encoder) == count(nnx.state(model.encoder, nnx.Param)) > 0
    assert count(encoder) + count(decoder) == count(nnx.state(model, nnx.Param))
    paths = [p for p, _ in nnx.to_flat_state(decoder)]
    assert any(p[0] == "attention" for p in paths) and any(p[0] == "head" for p in paths)
    assert not any(p[0] == "encoder" for p in paths)
    # The same predicate labels jax key paths (e.g. for optax.multi_transform).
    labels = jax.tree_util.tree_map_with_path(
        lambda kp, _: is_encoder_path(kp), nnx.to_pure_dict(nnx.state(model, nnx.Param))
    )
    assert sum(jax.tree.leaves(labels)) == len(nnx.to_flat_state(encoder))


def test_self_attention_starts_as_identity_and_mixes_positions_once_gamma_moves():
    attention = SelfAttention(16, dtype=jnp.float32, rngs=_rngs())
    x = jax.random.normal(jax.random.key(3), (1, 4, 4, 16))
    np.testing.assert_array_equal(attention(x), x)
    attention.gamma[...] = 1.0
    # Changing one position changes the output everywhere: attention is global.
    y0 = attention(x)
    y1 = attention(x.at[0, 0, 0].add(1.0))
    assert np.all(np.abs(np.asarray(y1 - y0))[0, 1:, 1:].max(axis=-1) > 0)


def test_upsample2x_is_bilinear_with_half_pixel_centres():
    x = jax.random.normal(jax.random.key(4), (2, 5, 7, 3))
    expected = jax.image.resize(x, (2, 10, 14, 3), method="bilinear")
    np.testing.assert_allclose(upsample2x(x), expected, atol=1e-6)


def test_gan_recipe_generator_has_the_parameter_count_the_torch_reference_matches():
    """45,924,978 = ResNet-101 encoder (42.5M) + decoder (3.4M). benchmarks/torch_reference.py
    rebuilds this network in PyTorch and refuses to run unless its count is the same."""
    model = nnx.eval_shape(lambda: UNetGenerator("resnet101", rngs=_rngs()))
    count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    assert count == 45_924_978


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "efficientnet_lite0"])
@pytest.mark.parametrize("h,w", [(64, 64), (128, 96), (224, 224)])
def test_the_mobile_backbones_make_the_same_unet(backbone, h, w):
    model = nnx.eval_shape(lambda: UNetGenerator(backbone, self_attention=True, rngs=_rngs()))
    out = nnx.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct((2, h, w, 1), jnp.float32))
    assert out.shape == (2, h, w, 2) and out.dtype == jnp.float32
    assert type(model.encoder) is encoders.encoder_class(backbone)
    s2, s4, s8, s16, s32 = model.encoder.feature_channels
    assert model.bridge.conv.in_features == s32
    assert [b.skip_proj.conv.in_features for b in model.decoder[:4]] == [s16, s8, s4, s2]
    assert not any(name in nnx.state(model.encoder) for name in type(model.encoder).head_names)


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "efficientnet_lite0"])
def test_a_mobile_backbone_unet_runs_and_trains(backbone):
    """Real (not abstract) forward and gradient at 64x64: every parameter, the encoder's
    depthwise convs included, gets a finite gradient, and the encoder sees its own input."""
    model = UNetGenerator(backbone, decoder_widths=(16, 16, 8, 8, 8), rngs=_rngs())
    model.train()
    l_norm = _l_batch(2, 64, 64)
    target = jax.random.uniform(jax.random.key(1), (2, 64, 64, 2), minval=-0.5, maxval=0.5)

    @nnx.jit
    def grads_of(model):
        return nnx.grad(lambda m: jnp.mean(jnp.abs(m(l_norm) - target)))(model)

    flat = nnx.to_flat_state(grads_of(model))
    assert len(flat) == len(nnx.to_flat_state(nnx.state(model, nnx.Param)))
    for path, g in flat:
        g = np.asarray(g[...])
        assert np.all(np.isfinite(g)), path
        assert np.any(g != 0), path
    model.eval()
    out = model(l_norm)
    assert out.shape == (2, 64, 64, 2) and float(jnp.std(out)) > 1e-4


def test_the_annealed_mean_runs_from_the_mean_to_the_mode():
    centres = np.asarray(bin_centres())
    logits = jnp.zeros((265,)).at[100].set(2.0).at[7].set(1.0)
    mean = np.asarray(annealed_mean(logits, 1.0))
    probs = np.asarray(jax.nn.softmax(logits))
    np.testing.assert_allclose(mean, probs @ centres, atol=1e-6)
    np.testing.assert_allclose(annealed_mean(logits, 0.01), centres[100], atol=1e-6)
    # Sharper at Zhang et al.'s 0.38: closer to the mode than the mean is.
    sharp = np.asarray(annealed_mean(logits, 0.38))
    assert np.linalg.norm(sharp - centres[100]) < np.linalg.norm(mean - centres[100])
    uniform = np.asarray(annealed_mean(jnp.zeros((265,)), 0.38))
    np.testing.assert_allclose(uniform, centres.mean(0), atol=1e-6)


def test_the_bins_head_predicts_logits_over_the_gamut_and_their_annealed_mean():
    model = UNetGenerator("resnet18", decoder_widths=(16, 16, 8, 8, 8), colour_head="bins",
                          temperature=0.5, rngs=_rngs())
    model.eval()
    l_norm = _l_batch(2, 64, 64)
    ab, logits = model.predict(l_norm)
    assert logits.shape == (2, 64, 64, len(ab_grid.in_gamut_centres()))
    assert ab.shape == (2, 64, 64, 2) and ab.dtype == jnp.float32
    np.testing.assert_allclose(ab, annealed_mean(logits, 0.5), atol=1e-6)
    np.testing.assert_array_equal(model(l_norm), ab)
    assert float(jnp.abs(ab).max()) < 1.0
    assert model.head.kernel.shape == (1, 1, 8, 265)  # 1x1: full-resolution classes are dear
    regression = UNetGenerator("resnet18", decoder_widths=(16, 16, 8, 8, 8), rngs=_rngs())
    assert regression.predict(l_norm)[1] is None


@pytest.mark.parametrize("kwargs, message", [
    ({"colour_head": "softmax"}, "colour_head 'softmax'"), ({"temperature": 0.0}, "temperature")])
def test_a_bad_colour_head_setting_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        nnx.eval_shape(lambda: UNetGenerator("resnet18", rngs=_rngs(), **kwargs))
