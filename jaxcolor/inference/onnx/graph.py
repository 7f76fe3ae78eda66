"""The generator as an ONNX graph, built node by node from a restored `UNetGenerator`.

Why by hand and not with jax2onnx: jax2onnx 0.17 requires orbax-checkpoint < 0.11.37 while
this package needs 0.12.x; pip then falls back to jax2onnx 0.13, which fails on jax 0.10 at
the first nnx.Conv with explicit padding (its conv primitive passes an unhashable list). The
architecture is fixed and small in vocabulary (conv, depthwise conv, BatchNorm, ReLU, ReLU6,
max-pool, add, concat, bilinear x2, tanh or softmax, optionally one attention block), so
walking the NNX modules and emitting standard ONNX operators needs only the `onnx` package
and gives a graph ONNX Runtime optimises well:

  * BatchNorm is folded into the preceding convolution with its running statistics (eval
    mode), in float64 before the cast to float32: one Conv (+ Relu) per ConvBN(ReLU).
  * Padding is explicit everywhere, as in the Flax modules (never SAME/auto_pad).
    EfficientNet-Lite's TF-SAME convs (`efficientnet.SameConv`) pad by the input's size; the
    generator's sides are multiples of 32, so each of its stride-2 layers sees an even side,
    where TF-SAME's pads depend on nothing else: they are computed once, for an even side.
  * Depthwise convs are grouped ONNX Convs (group = channels); ReLU6 is Clip(0, 6).
  * `generator.upsample2x` (half-pixel bilinear, clamped edges) is ONNX `Resize` with
    mode="linear" and coordinate_transformation_mode="half_pixel": the same two-tap stencil.
  * The gray-input preprocessing (`resnet.gray_input_from_l`: L -> sRGB gray -> the
    encoder's `input_mean`/`input_std` normalisation) is part of the graph, with the colour
    module's formulas and constants, so the ONNX model has the generator's own interface:
    l_norm [B, H, W, 1] in [-1, 1] -> ab / 110 [B, H, W, 2], both float32 NHWC. Inside, the
    graph is NCHW (ONNX's layout).

The graph is always float32, whatever the generator's compute dtype.

Divergence from the NNX model cannot pass silently: the builder reads every variable through
`_Graph.variable` and refuses to finish (`OnnxExportError`) if any variable of the module was
never read, so a layer added to the generator and not here stops the export; the tests
compare the graph's output with the JAX model's for every generator config in
`experiments/configs/`.
"""

from __future__ import annotations

import numpy as np
import onnx
from flax import nnx
from onnx import TensorProto, helper, numpy_helper

from jaxcolor.errors import RunError
from jaxcolor.models import efficientnet, mobilenet, resnet
from jaxcolor.models import generator as generator_lib
from jaxcolor.models import hint_branch
from jaxcolor.inference.onnx import inputs

OPSET = 17
"""ONNX opset of the exported graph (every operator used exists unchanged since opset 13)."""

IR_VERSION = 8
"""The IR version that goes with opset 17, so ONNX Runtime 1.13 and later can load the file
(onnx's default would be its own newest IR, which older runtimes refuse)."""

INPUT_NAME = "l_norm"
HINT_NAME = "hint"  # [B, H, W, 3]: a/110, b/110 where hinted, mask (models/hint_branch.py)
OUTPUT_NAME = "ab_norm"


class OnnxExportError(RunError, ValueError):
    """The module cannot be expressed by this exporter (names the module and the problem)."""


def fold_batchnorm(value, conv: nnx.Conv,
                   bn: nnx.BatchNorm | None) -> tuple[np.ndarray, np.ndarray]:
    """An ONNX Conv's (weight OIHW, bias [O]) equal to `bn(conv(x))` in eval mode.

    bn(z) = (z - mean) * s + beta with s = scale / sqrt(var + eps), so the folded conv has
    weight W * s (per output channel) and bias (b - mean) * s + beta. `value` reads a
    variable as float64 (`_Graph.variable`, which also marks it exported).
    """
    weight = value(conv.kernel).transpose(3, 2, 0, 1)  # HWIO -> OIHW
    bias = value(conv.bias) if conv.bias is not None else np.zeros(weight.shape[0])
    if bn is not None:
        s = value(bn.scale) / np.sqrt(value(bn.var) + bn.epsilon)
        weight = weight * s[:, None, None, None]
        bias = (bias - value(bn.mean)) * s + value(bn.bias)
    return weight.astype(np.float32), bias.astype(np.float32)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(x) for x in v)


def _onnx_pads(conv: nnx.Conv, name: str) -> list[int]:
    """Flax padding -> ONNX pads [top, left, bottom, right]. String padding only where it
    means none: a 1x1 kernel at stride 1 (the attention's convs)."""
    if isinstance(conv, efficientnet.SameConv):
        # For an even side (module docstring): every stride-2 layer of the generator's.
        even = generator_lib.ENCODER_STRIDE
        (top, bottom), (left, right) = conv.pads(even, even)
        return [top, left, bottom, right]
    padding = conv.padding
    if isinstance(padding, str):
        if tuple(conv.kernel_size) == (1, 1) and _pair(conv.strides) == (1, 1):
            return [0, 0, 0, 0]
        raise OnnxExportError(f"{name}: padding {padding!r} on a {conv.kernel_size} conv; "
                              "only explicit padding is exported")
    if isinstance(padding, int):
        return [padding] * 4
    (top, bottom), (left, right) = (_pair(p) for p in padding)
    return [top, left, bottom, right]


class _Graph:
    """Nodes and initializers under unique names; each method returns its output's name."""

    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = set()
        self.read: set[int] = set()  # ids of the module variables exported so far
        self._relu6_bounds: list[str] | None = None  # Clip's min and max, made once

    def variable(self, variable: nnx.Variable) -> np.ndarray:
        """A module variable's value as float64, marked as exported."""
        self.read.add(id(variable))
        return np.asarray(variable[...], np.float64)

    def _unique(self, base: str) -> str:
        name, i = base, 1
        while name in self._names:
            name, i = f"{base}_{i}", i + 1
        self._names.add(name)
        return name

    def const(self, name: str, array) -> str:
        name = self._unique(name)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str, **attrs) -> str:
        out = self._unique(name)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def scalar(self, name: str, value: float) -> str:
        return self.const(name, np.asarray(value, np.float32))

    # -- layers ----------------------------------------------------------------------------

    def conv(self, x: str, conv: nnx.Conv, bn: nnx.BatchNorm | None, name: str, *,
             act: str | None = None) -> str:
        """Conv (grouped for depthwise) with BatchNorm folded in, then `act`: None, "relu"
        or "relu6" (Clip to [0, 6])."""
        if _pair(conv.kernel_dilation) != (1, 1) or _pair(conv.input_dilation) != (1, 1):
            raise OnnxExportError(f"{name}: only undilated convs are exported")
        weight, bias = fold_batchnorm(self.variable, conv, bn)
        y = self.op("Conv", [x, self.const(f"{name}.weight", weight),
                             self.const(f"{name}.bias", bias)], name,
                    kernel_shape=list(weight.shape[2:]), strides=list(_pair(conv.strides)),
                    pads=_onnx_pads(conv, name), group=int(conv.feature_group_count))
        if act == "relu":
            return self.op("Relu", [y], f"{name}.relu")
        if act == "relu6":
            if self._relu6_bounds is None:
                self._relu6_bounds = [self.scalar("relu6_min", 0.0),
                                      self.scalar("relu6_max", 6.0)]
            return self.op("Clip", [y, *self._relu6_bounds], f"{name}.relu6")
        return y

    def conv_bn_relu(self, x: str, module: generator_lib.ConvBNReLU, name: str) -> str:
        return self.conv(x, module.conv, module.bn, name, act="relu")

    def upsample2x(self, x: str, name: str) -> str:
        """`generator.upsample2x`: bilinear x2, half-pixel centres, edges clamped."""
        scales = self.const(f"{name}.scales", np.array([1, 1, 2, 2], np.float32))
        return self.op("Resize", [x, "", scales], name, mode="linear",
                       coordinate_transformation_mode="half_pixel")


def _block(g: _Graph, x: str, block, name: str) -> str:
    """A torchvision BasicBlock / Bottleneck (resnet.py): convs, shortcut, add, relu."""
    if isinstance(block, resnet.Bottleneck):
        y = g.conv(x, block.conv1, block.bn1, f"{name}.conv1", act="relu")
        y = g.conv(y, block.conv2, block.bn2, f"{name}.conv2", act="relu")
        y = g.conv(y, block.conv3, block.bn3, f"{name}.conv3")
    elif isinstance(block, resnet.BasicBlock):
        y = g.conv(x, block.conv1, block.bn1, f"{name}.conv1", act="relu")
        y = g.conv(y, block.conv2, block.bn2, f"{name}.conv2")
    else:
        raise OnnxExportError(f"{name}: unsupported ResNet block {type(block).__name__}")
    shortcut = x
    if block.downsample is not None:
        conv, bn = block.downsample
        shortcut = g.conv(x, conv, bn, f"{name}.downsample")
    return g.op("Relu", [g.op("Add", [y, shortcut], f"{name}.add")], f"{name}.relu")


def _resnet(g: _Graph, x: str, encoder: resnet.ResNet) -> list[str]:
    """resnet.ResNet(return_features=True): [stem, layer1, layer2, layer3, layer4]."""
    stem = g.conv(x, encoder.conv1, encoder.bn1, "encoder.conv1", act="relu")
    y = g.op("MaxPool", [stem], "encoder.maxpool", kernel_shape=[3, 3], strides=[2, 2],
             pads=[1, 1, 1, 1])
    features = [stem]
    for s, stage in enumerate((encoder.layer1, encoder.layer2, encoder.layer3, encoder.layer4)):
        for i, block in enumerate(stage):
            y = _block(g, y, block, f"encoder.layer{s + 1}.{i}")
        features.append(y)
    return features


def _mobilenet(g: _Graph, x: str, encoder: mobilenet.MobileNetV2) -> list[str]:
    """mobilenet.MobileNetV2(return_features=True): the outputs of `encoder.taps`."""
    features = []
    for i, layer in enumerate(encoder.features):
        name = f"encoder.features.{i}"
        if isinstance(layer, mobilenet.InvertedResidual):
            *activated, project, bn = layer.conv
            y = x
            for j, (conv, norm) in enumerate(activated):
                y = g.conv(y, conv, norm, f"{name}.conv.{j}", act="relu6")
            y = g.conv(y, project, bn, f"{name}.conv.project")
            x = g.op("Add", [x, y], f"{name}.add") if layer.use_residual else y
        else:
            conv, bn = layer
            x = g.conv(x, conv, bn, name, act="relu6")
        if i in encoder.taps:
            features.append(x)
    return features


def _efficientnet(g: _Graph, x: str, encoder: efficientnet.EfficientNetLite) -> list[str]:
    """efficientnet.EfficientNetLite(return_features=True): the stem, then `encoder.taps`."""
    x = g.conv(x, encoder._conv_stem, encoder._bn0, "encoder._conv_stem", act="relu6")
    features = [x]
    for i, block in enumerate(encoder._blocks):
        name = f"encoder._blocks.{i}"
        y = x
        if block._expand_conv is not None:
            y = g.conv(y, block._expand_conv, block._bn0, f"{name}._expand_conv", act="relu6")
        y = g.conv(y, block._depthwise_conv, block._bn1, f"{name}._depthwise_conv", act="relu6")
        y = g.conv(y, block._project_conv, block._bn2, f"{name}._project_conv")
        x = g.op("Add", [x, y], f"{name}.add") if block.use_residual else y
        if i in encoder.taps:
            features.append(x)
    return features


def _encoder(g: _Graph, l_nchw: str, encoder, hint_nchw: str | None = None) -> list[str]:
    """The encoder's 5 feature maps from L (with the hinted pixels in colour when a hint map
    is given), its own input normalisation included."""
    mean, std = type(encoder).input_mean, type(encoder).input_std
    x = (inputs.gray_input(g, l_nchw, mean, std) if hint_nchw is None
         else inputs.colour_input(g, l_nchw, hint_nchw, mean, std))
    for cls, build in ((resnet.ResNet, _resnet), (mobilenet.MobileNetV2, _mobilenet),
                       (efficientnet.EfficientNetLite, _efficientnet)):
        if isinstance(encoder, cls):
            return build(g, x, encoder)
    raise OnnxExportError(f"encoder: unsupported {type(encoder).__name__}")


def _attention(g: _Graph, x: str, att: generator_lib.SelfAttention, name: str) -> str:
    """generator.SelfAttention in NCHW: x + gamma * (v @ softmax(q^T k)^T)."""
    flat = g.const(f"{name}.flat_shape", np.array([0, 0, -1], np.int64))  # [B, C, H*W]
    q = g.op("Reshape", [g.conv(x, att.query, None, f"{name}.query"), flat], f"{name}.q")
    k = g.op("Reshape", [g.conv(x, att.key, None, f"{name}.key"), flat], f"{name}.k")
    v = g.op("Reshape", [g.conv(x, att.value, None, f"{name}.value"), flat], f"{name}.v")
    logits = g.op("MatMul", [g.op("Transpose", [q], f"{name}.qT", perm=[0, 2, 1]), k],
                  f"{name}.logits")  # [B, Nq, Nk]
    weights = g.op("Softmax", [logits], f"{name}.softmax", axis=-1)
    attended = g.op("MatMul", [v, g.op("Transpose", [weights], f"{name}.wT", perm=[0, 2, 1])],
                    f"{name}.attended")  # [B, C, Nq]
    attended = g.op("Reshape", [attended, g.op("Shape", [x], f"{name}.shape")],
                    f"{name}.unflat")
    gamma = g.const(f"{name}.gamma", g.variable(att.gamma).astype(np.float32))
    return g.op("Add", [x, g.op("Mul", [attended, gamma], f"{name}.scaled")], f"{name}.out")


def _hint_branch(g: _Graph, hint_nchw: str,
                 branch: hint_branch.HintBranch) -> dict[int, str]:
    """`hint_branch.HintBranch`: per scale it joins, the mask-weighted mean colour and the
    hinted share of each cell (AveragePool), through that scale's 1x1 projection."""
    starts = [g.const(f"hint.slice{i}", np.array([i], np.int64)) for i in (0, 2, 3)]
    channel = g.const("hint.channel_axis", np.array([1], np.int64))
    eps = g.scalar("hint.eps", 1e-6)
    out = {}
    for factor, proj in zip(branch.scales, branch.proj):
        name = f"hints.proj.{len(out)}"
        cells = hint_nchw
        if factor > 1:
            pooled = g.op("AveragePool", [hint_nchw], f"{name}.pool",
                          kernel_shape=[factor, factor], strides=[factor, factor])
            ab = g.op("Slice", [pooled, starts[0], starts[1], channel], f"{name}.ab")
            share = g.op("Slice", [pooled, starts[1], starts[2], channel], f"{name}.share")
            mean = g.op("Div", [ab, g.op("Max", [share, eps], f"{name}.floor")], f"{name}.mean")
            cells = g.op("Concat", [mean, share], f"{name}.cells", axis=1)
        out[factor] = g.conv(cells, proj, None, name)
    return out


def _check_every_variable_read(g: _Graph, model: nnx.Module) -> None:
    """Refuse a graph that left out part of the module (a layer this builder does not know)."""
    missing = [".".join(map(str, path)) for path, variable in nnx.iter_graph(model)
               if isinstance(variable, nnx.Variable) and id(variable) not in g.read]
    if missing:
        listed = ", ".join(missing[:4]) + (", ..." if len(missing) > 4 else "")
        raise OnnxExportError(f"the generator has {len(missing)} variable(s) the ONNX graph does "
                              f"not use ({listed}); jaxcolor.inference.onnx.graph must follow "
                              "the module's change")


def _head(g: _Graph, x: str, model: generator_lib.UNetGenerator) -> str:
    """`UNetGenerator.predict`'s ab: tanh of the regression head, or the bins head's
    annealed mean as softmax(logits / T) over the channels and a 1x1 conv whose kernel is
    the bin centres."""
    out = g.conv(x, model.head, None, "head")
    if model.colour_head == "regression":
        return g.op("Tanh", [out], "tanh")
    scaled = g.op("Mul", [out, g.scalar("inverse_temperature", 1.0 / model.temperature)],
                  "head.anneal")
    probs = g.op("Softmax", [scaled], "head.softmax", axis=1)
    centres = np.asarray(generator_lib.bin_centres(), np.float32).T[:, :, None, None]
    return g.op("Conv", [probs, g.const("head.centres", centres)], "head.mean",
                kernel_shape=[1, 1])


def generator_to_onnx(model: generator_lib.UNetGenerator, *, height: int | None = None,
                      width: int | None = None, batch: int | None = None,
                      metadata: dict[str, str] | None = None) -> onnx.ModelProto:
    """The ONNX model of `model` in eval mode (BatchNorm running statistics).

    `height`, `width`, `batch`: fixed input dimensions, or None for a symbolic one
    (H and W must then still be multiples of 32 at run time). `metadata` goes into the
    model's metadata_props (e.g. the checkpoint step and the run config).
    """
    for side in (height, width):
        if side is not None and (side < 1 or side % generator_lib.ENCODER_STRIDE):
            raise OnnxExportError(f"input height/width must be positive multiples of "
                                  f"{generator_lib.ENCODER_STRIDE}, got {height}x{width}")
    g = _Graph()
    l_nchw = g.op("Transpose", [INPUT_NAME], "l_nchw", perm=[0, 3, 1, 2])
    hint_nchw = None
    if model.hints is not None:
        hint_nchw = g.op("Transpose", [HINT_NAME], "hint_nchw", perm=[0, 3, 1, 2])
    s2, s4, s8, s16, s32 = _encoder(g, l_nchw, model.encoder,
                                    hint_nchw if model.hint_encoder else None)
    x = g.conv_bn_relu(s32, model.bridge, "bridge")
    joined = {} if model.hints is None else _hint_branch(g, hint_nchw, model.hints)
    at_bridge, *extras = (joined.get(scale) for scale in hint_branch.SCALES)
    if at_bridge is not None:
        x = g.op("Add", [x, at_bridge], "bridge.hint")
    skips = (s16, s8, s4, s2, l_nchw)
    for i, (block, skip, extra) in enumerate(zip(model.decoder, skips, extras)):
        name = f"decoder.{i}"
        up = g.upsample2x(x, f"{name}.upsample")
        if block.skip_proj is not None:
            skip = g.conv_bn_relu(skip, block.skip_proj, f"{name}.skip_proj")
        x = g.op("Concat", [up, skip], f"{name}.concat", axis=1)
        x = g.conv_bn_relu(x, block.conv1, f"{name}.conv1")
        if extra is not None:
            x = g.op("Add", [x, extra], f"{name}.hint")
        x = g.conv_bn_relu(x, block.conv2, f"{name}.conv2")
        if i == 0 and model.attention is not None:
            x = _attention(g, x, model.attention, "attention")
    ab = _head(g, x, model)
    _check_every_variable_read(g, model)
    g.nodes.append(helper.make_node("Transpose", [ab], [OUTPUT_NAME], name=OUTPUT_NAME,
                                    perm=[0, 2, 3, 1]))

    dims = [batch or "batch", height or "height", width or "width"]
    inputs = [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [*dims, 1])]
    if model.hints is not None:
        inputs.append(helper.make_tensor_value_info(HINT_NAME, TensorProto.FLOAT, [*dims, 3]))
    graph = helper.make_graph(
        g.nodes, "jaxcolor_generator", inputs,
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [*dims, 2])],
        initializer=g.initializers)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                   producer_name="jaxcolor", ir_version=IR_VERSION,
                                   doc_string="jaxcolor U-Net generator: l_norm (L / 50 - 1) "
                                              "[B, H, W, 1] -> ab / 110 [B, H, W, 2], NHWC")
    helper.set_model_props(onnx_model, dict(metadata or {}))
    onnx.checker.check_model(onnx_model)
    return onnx_model
