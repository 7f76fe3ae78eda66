"""Conditional PatchGAN discriminator (pix2pix's `NLayerDiscriminator`).

D sees the grayscale condition and a colouring together, concat(L, ab) in the model's
normalised units (L in [-1, 1], ab / 110), and returns one real/fake logit per overlapping
image patch. With n_layers=3 every logit looks at a 70x70 input patch: big enough to judge
local colour plausibility, small enough that D cannot memorise whole images.

Layer widths, 4x4 kernels, explicit padding of 1, LeakyReLU(0.2), the bias rule and the
N(0, 0.02) kernel initialisation follow junyanz/pytorch-CycleGAN-and-pix2pix, so shapes and
parameter counts match that code.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

NORMS = ("batch", "instance", "none")
"""Accepted values of `PatchDiscriminator(norm=...)`."""

_KERNEL = 4
_PADDING = ((1, 1), (1, 1))  # pix2pix padw = 1; explicit, so output sizes match torch.
_LEAKY_SLOPE = 0.2
_INIT = nnx.initializers.normal(0.02)  # pix2pix init_weights("normal", gain=0.02).


def _l2_normalize(x: jax.Array, epsilon: float) -> jax.Array:
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x), epsilon))


def _power_iteration(matrix: jax.Array, u: jax.Array, steps: int, epsilon: float):
    """Refines u [1, out] towards the leading right singular vector of matrix [in, out].

    Returns (u, v) with v [1, in] the matching left vector, so v @ matrix @ u.T ~ sigma_max.
    """
    for _ in range(steps):
        v = _l2_normalize(u @ matrix.T, epsilon)
        u = _l2_normalize(v @ matrix, epsilon)
    return u, v


class SpectralConv(nnx.Module):
    """A 4x4 convolution reparameterised as W / sigma(W) (Miyato et al., 2018).

    Why not `nnx.SpectralNorm`: in flax 0.12 it writes W / sigma back into the wrapped
    layer's Param on every call (google/flax#5576), so the optimiser steps the normalised
    weight instead of the free one: not the paper's reparameterisation, and the stored
    weight then depends on how often the model was called. Here the Param keeps the raw
    kernel; only the power-iteration vector `u` is state, a BatchStat like BatchNorm's
    running statistics: `train()` updates it, `eval()` reads it without writing, so
    evaluation is deterministic. Gradients reach W through sigma with u and v held
    constant, as in torch's `spectral_norm`.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        strides: int,
        use_bias: bool,
        power_iterations: int = 1,
        epsilon: float = 1e-12,
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        if power_iterations < 1:
            raise ValueError(f"SpectralConv: power_iterations must be >= 1, got {power_iterations}")
        shape = (_KERNEL, _KERNEL, in_features, out_features)
        self.kernel = nnx.Param(_INIT(rngs.params(), shape, jnp.float32))
        self.bias = nnx.Param(jnp.zeros((out_features,), jnp.float32)) if use_bias else None
        self.strides = (strides, strides)
        self.power_iterations = power_iterations
        self.epsilon = epsilon
        self.dtype = dtype
        self.use_running_average = False  # set by Module.train() / Module.eval().
        # Start u close to the singular vector (torch runs 15 iterations at init too), so
        # sigma is accurate from the first training step.
        u = jax.random.normal(rngs.params(), (1, out_features), jnp.float32)
        u, _ = _power_iteration(self.kernel[...].reshape(-1, out_features), u, 15, epsilon)
        self.u = nnx.BatchStat(u)

    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.kernel[...]
        matrix = kernel.reshape(-1, kernel.shape[-1])
        u, v = _power_iteration(matrix, self.u[...], self.power_iterations, self.epsilon)
        u, v = jax.lax.stop_gradient(u), jax.lax.stop_gradient(v)
        if not self.use_running_average:
            self.u[...] = u
        sigma = (v @ matrix @ u.T)[0, 0]
        y = jax.lax.conv_general_dilated(
            x.astype(self.dtype),
            (kernel / sigma).astype(self.dtype),
            window_strides=self.strides,
            padding=_PADDING,
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        if self.bias is not None:
            y = y + self.bias[...].astype(self.dtype)
        return y


class _ConvNormAct(nnx.Module):
    """4x4 convolution, then optional normalisation, then optional LeakyReLU(0.2)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        strides: int,
        norm: str,
        use_bias: bool,
        activation: bool,
        spectral_norm: bool,
        dtype,
        rngs: nnx.Rngs,
    ):
        if spectral_norm:
            self.conv = SpectralConv(
                in_features, out_features, strides=strides, use_bias=use_bias, dtype=dtype,
                rngs=rngs,
            )
        else:
            self.conv = nnx.Conv(
                in_features,
                out_features,
                kernel_size=(_KERNEL, _KERNEL),
                strides=strides,
                padding=_PADDING,
                use_bias=use_bias,
                kernel_init=_INIT,
                dtype=dtype,
                param_dtype=jnp.float32,
                rngs=rngs,
            )
        if norm == "batch":
            # torch BatchNorm2d defaults: its momentum 0.1 is flax's 0.9; eps 1e-5.
            self.norm = nnx.BatchNorm(
                out_features, momentum=0.9, epsilon=1e-5, dtype=dtype, rngs=rngs
            )
        elif norm == "instance":
            # pix2pix: InstanceNorm2d(affine=False, track_running_stats=False).
            self.norm = nnx.InstanceNorm(
                out_features, epsilon=1e-5, use_bias=False, use_scale=False, dtype=dtype,
                rngs=rngs,
            )
        else:
            self.norm = None
        self.activation = activation

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.activation:
            x = jax.nn.leaky_relu(x, _LEAKY_SLOPE)
        return x


class PatchDiscriminator(nnx.Module):
    """PatchGAN over concat(L, ab): float32 logits [B, h, w, 1], one per input patch.

    Args:
      in_channels: channels of the concatenated input (1 for L + 2 for ab).
      base_width: width of the first convolution (pix2pix `ndf`).
      n_layers: number of stride-2 convolutions; 3 gives a 70x70 receptive field and
        h = H / 8 - 2.
      norm: "batch" (pix2pix's default), "instance" (no affine, like pix2pix) or "none".
      spectral_norm: reparameterise every convolution as W / sigma(W) (`SpectralConv`).
      dtype: compute dtype (e.g. jnp.bfloat16); parameters stay float32.
      rngs: parameter initialisation keys.

    Biases follow pix2pix: the first and last convolutions always have one, the middle ones
    only with instance norm (BatchNorm's shift makes a bias redundant; the mean subtraction of
    pix2pix's affine-free instance norm makes it redundant too, but it is kept so that
    parameter counts match). One deviation: with
    norm="none" pix2pix drops the middle biases too (its rule is `use_bias = norm_layer ==
    InstanceNorm2d`), leaving layers that cannot shift their output; here they keep one.
    """

    def __init__(
        self,
        in_channels: int = 3,
        base_width: int = 64,
        n_layers: int = 3,
        *,
        norm: str = "batch",
        spectral_norm: bool = False,
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        if norm not in NORMS:
            raise ValueError(f"PatchDiscriminator: norm must be one of {NORMS}, got {norm!r}")
        if n_layers < 1:
            raise ValueError(f"PatchDiscriminator: n_layers must be >= 1, got {n_layers}")
        self.in_channels = in_channels
        widths = [base_width * min(2**n, 8) for n in range(n_layers + 1)]
        # (in, out, stride, norm, bias, activation) per layer, as pix2pix builds `sequence`.
        middle_bias = norm != "batch"
        specs = [(in_channels, widths[0], 2, "none", True, True)]
        specs += [
            (widths[n - 1], widths[n], 2, norm, middle_bias, True) for n in range(1, n_layers)
        ]
        specs += [
            (widths[n_layers - 1], widths[n_layers], 1, norm, middle_bias, True),
            (widths[n_layers], 1, 1, "none", True, False),  # patch logits, no activation.
        ]
        self.layers = nnx.List(
            [
                _ConvNormAct(
                    cin,
                    cout,
                    strides=stride,
                    norm=layer_norm,
                    use_bias=bias,
                    activation=act,
                    spectral_norm=spectral_norm,
                    dtype=dtype,
                    rngs=rngs,
                )
                for cin, cout, stride, layer_norm, bias, act in specs
            ]
        )

    def logits(self, x: jax.Array) -> jax.Array:
        """Patch logits for an already concatenated input [B, H, W, in_channels]."""
        if x.ndim != 4 or x.shape[-1] != self.in_channels:
            raise ValueError(
                f"PatchDiscriminator: expected input [B, H, W, {self.in_channels}], "
                f"got shape {x.shape}"
            )
        for layer in self.layers:
            x = layer(x)
        return x.astype(jnp.float32)

    def __call__(self, l_norm: jax.Array, ab_norm: jax.Array) -> jax.Array:
        """Patch logits for condition l_norm [B, H, W, 1] and colouring ab_norm [B, H, W, 2]."""
        if l_norm.shape[:-1] != ab_norm.shape[:-1]:
            raise ValueError(
                "PatchDiscriminator: L and ab must share batch and spatial shape, "
                f"got {l_norm.shape} and {ab_norm.shape}"
            )
        return self.logits(jnp.concatenate([l_norm, ab_norm], axis=-1))
