"""The encoder's input as ONNX ops: L as the gray photo it stands for
(`resnet.gray_input_from_l`), or with the hinted pixels in colour (`hint_branch.
colour_input`), each normalised by the encoder's mean/std. The same formulas and float32
constants as `jaxcolor.color`, in NCHW. `g` is `graph._Graph` (its `op`, `scalar`, `const`).
"""

from __future__ import annotations

import numpy as np

from jaxcolor import color


def _lightness(g, l_nchw: str) -> str:
    """color.denormalize_l: L in 0..100 of l_norm."""
    return g.op("Mul", [g.op("Add", [l_nchw, g.scalar("one", 1.0)], "l_plus_1"),
                        g.scalar("fifty", 50.0)], "L")


def _f_inv(g, f: str, name: str) -> str:
    """color.lab_f_inv: f**3 above LAB_DELTA (two products, as there), linear below."""
    cube = g.op("Mul", [g.op("Mul", [f, f], f"{name}_sq"), f], f"{name}_cube")
    linear = g.op("Div", [g.op("Sub", [f, g.scalar("c4_29", 4.0 / 29.0)], f"{name}_minus"),
                          g.scalar("lab_slope", color.LAB_SLOPE)], f"{name}_linear")
    above = g.op("Greater", [f, g.scalar("lab_delta", color.LAB_DELTA)], f"{name}_above")
    return g.op("Where", [above, cube, linear], f"{name}_inv")


def _srgb(g, linear: str, name: str) -> str:
    """color._linear_to_srgb, then clipped to [0, 1]."""
    knee = g.scalar("srgb_knee", color.SRGB_KNEE)
    gamma = g.op("Pow", [g.op("Max", [linear, knee], f"{name}_safe"),
                         g.scalar("inv_2_4", 1.0 / 2.4)], f"{name}_pow")
    curve = g.op("Sub", [g.op("Mul", [gamma, g.scalar("c1_055", 1.055)], f"{name}_scaled"),
                         g.scalar("c0_055", 0.055)], f"{name}_curve")
    toe = g.op("Mul", [linear, g.scalar("c12_92", 12.92)], f"{name}_toe")
    above = g.op("Greater", [linear, knee], f"{name}_above")
    srgb = g.op("Where", [above, curve, toe], f"{name}_srgb")
    return g.op("Clip", [srgb, g.scalar("clip_lo", 0.0), g.scalar("clip_hi", 1.0)],
                f"{name}01")


def _normalised(g, rgb: str, mean, std) -> str:
    """resnet.normalize_rgb (broadcast over [1, 3, 1, 1])."""
    per_channel = lambda v: np.asarray(v, np.float32).reshape(1, 3, 1, 1)  # noqa: E731
    centred = g.op("Sub", [rgb, g.const("input_mean", per_channel(mean))], "rgb_centred")
    return g.op("Div", [centred, g.const("input_std", per_channel(std))], "rgb_input")


def _f_y(g, L: str) -> str:
    return g.op("Div", [g.op("Add", [L, g.scalar("sixteen", 16.0)], "L_plus_16"),
                        g.scalar("c116", 116.0)], "f_y")


def _gray(g, f_y: str) -> str:
    """The gray sRGB [B, 1, H, W] of L (color.gray_rgb_from_l)."""
    y = g.op("Max", [_f_inv(g, f_y, "f_y"), g.scalar("zero", 0.0)], "Y_pos")
    return _srgb(g, y, "gray")


def gray_input(g, l_nchw: str, mean, std) -> str:
    """l_norm [B, 1, H, W] -> the gray photo [B, 3, H, W] (three equal channels, broadcast
    by the normalisation), normalised."""
    return _normalised(g, _gray(g, _f_y(g, _lightness(g, l_nchw))), mean, std)


def colour_input(g, l_nchw: str, hint_nchw: str, mean, std) -> str:
    """l_norm [B, 1, H, W] and the hint map [B, 3, H, W] -> the gray photo with the hinted
    pixels in colour (color.lab_to_rgb of (L, hinted ab) where the mask is set),
    normalised."""
    f_y = _f_y(g, _lightness(g, l_nchw))
    axis = g.const("hint.channel_axis_in", np.array([1], np.int64))
    starts = [g.const(f"hint.in{i}", np.array([i], np.int64)) for i in range(4)]
    a, b, mask = (g.op("Slice", [hint_nchw, starts[i], starts[i + 1], axis], f"hint_{n}")
                  for i, n in enumerate(("a", "b", "mask")))
    scale = g.scalar("ab_scale", color.AB_SCALE)
    f_x = g.op("Add", [f_y, g.op("Div", [g.op("Mul", [a, scale], "a"), g.scalar(
        "c500", 500.0)], "a_500")], "f_x")
    f_z = g.op("Max", [g.op("Sub", [f_y, g.op("Div", [g.op("Mul", [b, scale], "b"), g.scalar(
        "c200", 200.0)], "b_200")], "f_z_raw"), g.scalar("zero", 0.0)], "f_z")
    xyz = g.op("Concat", [_f_inv(g, f, n) for f, n in ((f_x, "f_x"), (f_y, "f_y"),
                                                        (f_z, "f_z"))], "xyz", axis=1)
    matrix = np.asarray(color.XYZ_WHITE_TO_RGB, np.float32).reshape(3, 3, 1, 1)
    linear = g.op("Conv", [xyz, g.const("xyz_to_rgb", matrix)], "linear_rgb",
                  kernel_shape=[1, 1])
    hinted = g.op("Greater", [mask, g.scalar("zero", 0.0)], "hinted")
    rgb = g.op("Where", [hinted, _srgb(g, linear, "colour"), _gray(g, f_y)], "rgb")
    return _normalised(g, rgb, mean, std)
