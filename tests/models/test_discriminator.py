"""PatchGAN discriminator: pix2pix shapes, parameter count, 70x70 receptive field, training."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxcolor.models.discriminator import PatchDiscriminator, SpectralConv


def _rngs(seed=0):
    # rbg keys: threefry initialisers compile slowly on CPU, and tests build many models.
    return nnx.Rngs(jax.random.key(seed, impl="rbg"))


def _inputs(batch, h, w, seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    l_norm = jax.random.uniform(k1, (batch, h, w, 1), minval=-1.0, maxval=1.0)
    ab_norm = jax.random.uniform(k2, (batch, h, w, 2), minval=-1.0, maxval=1.0)
    return l_norm, ab_norm


def _torch_conv_out(n, stride, kernel=4, pad=1):
    return (n + 2 * pad - kernel) // stride + 1


def _bce_with_logits(logits, labels):
    return jnp.maximum(logits, 0) - logits * labels + jnp.log1p(jnp.exp(-jnp.abs(logits)))


def _param_count(tree):
    return sum(x.size for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("h,w", [(64, 64), (128, 128), (224, 224), (256, 256), (64, 128)])
def test_logits_shape_follows_torch_conv_arithmetic(h, w):
    graphdef, state = nnx.split(nnx.eval_shape(lambda: PatchDiscriminator(rngs=_rngs())))
    forward = lambda s, l_norm, ab_norm: nnx.merge(graphdef, s)(l_norm, ab_norm)
    logits = jax.eval_shape(forward, state, *_inputs(2, h, w))
    strides = [2, 2, 2, 1, 1]  # n_layers=3: three stride-2 convs, then two stride-1 convs.
    eh, ew = h, w
    for s in strides:
        eh, ew = _torch_conv_out(eh, s), _torch_conv_out(ew, s)
    assert logits.shape == (2, eh, ew, 1)
    assert logits.dtype == jnp.float32


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_param_count_matches_pix2pix_layer_formula(norm):
    k, cin, ndf = 4, 3, 64
    widths = [cin, ndf, 2 * ndf, 4 * ndf, 8 * ndf, 1]
    expected = 0
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        first_or_last = i in (0, len(widths) - 2)
        expected += k * k * a * b
        if first_or_last or norm != "batch":
            expected += b  # conv bias
        if not first_or_last and norm == "batch":
            expected += 2 * b  # BatchNorm scale and shift
    d = nnx.eval_shape(
        lambda: PatchDiscriminator(cin, base_width=ndf, n_layers=3, norm=norm, rngs=_rngs())
    )
    assert _param_count(nnx.state(d, nnx.Param)) == expected


def test_receptive_field_is_70_pixels():
    d = PatchDiscriminator(rngs=_rngs())
    d.eval()
    x = jnp.concatenate(_inputs(1, 128, 128), axis=-1)
    h = d.logits(x).shape[1]

    def centre_logit(x):
        return d.logits(x)[0, h // 2, h // 2, 0]

    grad = jax.jit(jax.grad(centre_logit))(x)
    support = np.abs(np.asarray(grad[0])).sum(axis=-1) > 0
    rows, cols = np.nonzero(support.any(axis=1))[0], np.nonzero(support.any(axis=0))[0]
    assert rows.max() - rows.min() + 1 == 70
    assert cols.max() - cols.min() + 1 == 70
    assert 0 < rows.min() and rows.max() < 127  # the patch is inside the image, not clipped.


def test_jit_with_split_merge_matches_eager_and_updates_batch_stats():
    d = PatchDiscriminator(rngs=_rngs())
    l_norm, ab_norm = _inputs(2, 64, 64)
    initial = [np.array(x) for x in jax.tree.leaves(nnx.state(d, nnx.BatchStat))]
    graphdef, state = nnx.split(d)

    @jax.jit
    def forward(state, l_norm, ab_norm):
        model = nnx.merge(graphdef, state)
        logits = model(l_norm, ab_norm)
        return logits, nnx.state(model)

    logits, new_state = forward(state, l_norm, ab_norm)
    np.testing.assert_allclose(logits, d(l_norm, ab_norm), rtol=1e-5, atol=1e-5)
    old_mean = nnx.state(d, nnx.BatchStat)  # d has run once eagerly: compare to the jit's
    new_mean = nnx.state(nnx.merge(graphdef, new_state), nnx.BatchStat)
    for a, b in zip(jax.tree.leaves(old_mean), jax.tree.leaves(new_mean)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(a, b) for a, b in zip(initial, jax.tree.leaves(new_mean)))


@pytest.mark.parametrize(
    "norm,spectral_norm", [("batch", False), ("none", False), ("batch", True)]
)
def test_every_parameter_gets_a_finite_nonzero_gradient(norm, spectral_norm):
    d = PatchDiscriminator(norm=norm, spectral_norm=spectral_norm, rngs=_rngs())
    d.train()
    l_norm, ab_norm = _inputs(2, 64, 64)

    def loss(model):
        logits = model(l_norm, ab_norm)
        return jnp.mean(_bce_with_logits(logits, jnp.ones_like(logits)))

    grads = nnx.jit(nnx.grad(loss))(d)
    flat = nnx.to_flat_state(grads)
    assert len(flat) == len(nnx.to_flat_state(nnx.state(d, nnx.Param)))
    for path, g in flat:
        g = np.asarray(g[...])
        assert np.all(np.isfinite(g)), path
        assert np.any(g != 0), path


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_bfloat16_forward_close_to_float32(spectral_norm):
    l_norm, ab_norm = _inputs(2, 64, 64)
    d = PatchDiscriminator(spectral_norm=spectral_norm, rngs=_rngs())
    d.eval()
    _, state = nnx.split(d)  # float32 params, shared by both compute dtypes
    outs = {}
    for dtype in (jnp.float32, jnp.bfloat16):
        abstract = nnx.eval_shape(
            lambda: PatchDiscriminator(spectral_norm=spectral_norm, dtype=dtype, rngs=_rngs())
        )
        abstract.eval()
        graphdef, _ = nnx.split(abstract)
        forward = jax.jit(lambda s, l_norm, ab_norm: nnx.merge(graphdef, s)(l_norm, ab_norm))
        outs[dtype] = forward(state, l_norm, ab_norm)
    assert outs[jnp.bfloat16].dtype == jnp.float32
    ref = np.asarray(outs[jnp.float32])
    err = np.abs(np.asarray(outs[jnp.bfloat16]) - ref).max()
    assert err <= 0.03 * np.abs(ref).max(), (err, np.abs(ref).max())


def test_spectral_conv_divides_by_the_largest_singular_value_and_keeps_the_raw_kernel():
    conv = SpectralConv(8, 16, strides=1, use_bias=True, rngs=_rngs())
    raw = np.asarray(conv.kernel[...]).copy()
    x = jax.random.normal(jax.random.key(1), (1, 10, 10, 8))
    for _ in range(50):  # one power iteration per training call converges to sigma_max
        y = conv(x)
    np.testing.assert_array_equal(conv.kernel[...], raw)
    sigma = np.linalg.svd(raw.reshape(-1, 16), compute_uv=False)[0]
    expected = jax.lax.conv_general_dilated(
        x, raw / sigma, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    np.testing.assert_allclose(y, expected, rtol=1e-3, atol=1e-4)


def test_spectral_conv_updates_u_in_train_mode_only():
    conv = SpectralConv(8, 16, strides=2, use_bias=False, power_iterations=1, rngs=_rngs())
    conv.kernel[...] = jax.random.normal(jax.random.key(2), conv.kernel.shape)  # u is stale
    x = jnp.ones((1, 8, 8, 8))
    u0 = np.asarray(conv.u[...]).copy()
    conv.eval()
    first, second = conv(x), conv(x)
    np.testing.assert_array_equal(conv.u[...], u0)
    np.testing.assert_array_equal(first, second)
    conv.train()
    conv(x)
    assert not np.allclose(conv.u[...], u0)


def test_bad_arguments_raise_value_errors_naming_the_problem():
    with pytest.raises(ValueError, match="norm must be one of"):
        PatchDiscriminator(norm="layer", rngs=_rngs())
    d = PatchDiscriminator(rngs=_rngs())
    l_norm, ab_norm = _inputs(1, 64, 64)
    with pytest.raises(ValueError, match="share batch and spatial shape"):
        d(l_norm, ab_norm[:, :32])
    with pytest.raises(ValueError, match=r"\[B, H, W, 3\]"):
        d.logits(ab_norm)
