"""Depthwise convolution that XLA:CPU runs fast: the `conv_general_dilated` of nnx.Conv.

Why: XLA:CPU runs a grouped convolution with one channel per group (MobileNetV2's and
EfficientNet-Lite's depthwise 3x3 and 5x5) far slower than its arithmetic says; its weight
gradient worse still. Measured on this project's 2-core CPU at training shapes (batch 8,
e.g. 64x64x96 3x3 stride 2, 16x16x480 5x5), the grouped conv took 5-20x the forward time
and 4-15x the forward + backward time of the same convolution written as k*k shifted,
strided slices of the padded input, each scaled by its per-channel tap and summed: plain
elementwise work XLA fuses into a few loops, whose gradients are again slices and sums.
On other backends (cuDNN, TPU) the grouped convolution is the fast path and is kept.

`conv_general_dilated` has `jax.lax.conv_general_dilated`'s signature, so an nnx.Conv takes
it as its `conv_general_dilated` argument: the module, its parameters (kernel HWIO with
I = 1) and the ONNX export (a grouped Conv) are unchanged; only how XLA computes it differs.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp


def _is_shiftable(lhs, rhs, padding, lhs_dilation, rhs_dilation, feature_group_count,
                  kwargs) -> bool:
    """Depthwise (one input and one output channel per group), NHWC/HWIO as nnx.Conv lays
    out 2-D inputs, undilated, explicit padding, on the CPU."""
    return (jax.default_backend() == "cpu" and lhs.ndim == 4 and feature_group_count > 1
            and rhs.shape[2] == 1 and rhs.shape[3] == feature_group_count == lhs.shape[3]
            and not isinstance(padding, str)
            and all(d == 1 for d in (*(lhs_dilation or ()), *(rhs_dilation or ())))
            and kwargs.get("preferred_element_type") is None
            and kwargs.get("out_sharding") is None)


def shifted_depthwise(x: jax.Array, kernel: jax.Array, strides: Sequence[int],
                      padding: Sequence[tuple[int, int]]) -> jax.Array:
    """Depthwise conv of NHWC `x` with HWIO `kernel` [kh, kw, 1, C]: the sum over taps
    (i, j) of the padded input's strided window at (i, j) times kernel[i, j], accumulated in
    float32 and returned in x's dtype."""
    kh, kw = kernel.shape[:2]
    sh, sw = strides
    xp = jnp.pad(x, ((0, 0), *[tuple(p) for p in padding], (0, 0)))
    out_h = (xp.shape[1] - kh) // sh + 1
    out_w = (xp.shape[2] - kw) // sw + 1
    taps = kernel.astype(jnp.float32)
    out = jnp.zeros((x.shape[0], out_h, out_w, x.shape[3]), jnp.float32)
    for i in range(kh):
        for j in range(kw):
            window = jax.lax.slice(
                xp, (0, i, j, 0),
                (xp.shape[0], i + (out_h - 1) * sh + 1, j + (out_w - 1) * sw + 1, xp.shape[3]),
                (1, sh, sw, 1))
            out = out + window.astype(jnp.float32) * taps[i, j, 0]
    return out.astype(x.dtype)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         precision=None, **kwargs):
    """`jax.lax.conv_general_dilated`, with depthwise convs on the CPU as shifted sums."""
    if _is_shiftable(lhs, rhs, padding, lhs_dilation, rhs_dilation, feature_group_count,
                     kwargs):
        return shifted_depthwise(lhs, rhs, window_strides, padding)
    return jax.lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count, precision=precision, **kwargs)
