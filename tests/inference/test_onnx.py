"""The generator as an ONNX graph (`jaxcolor.inference.onnx`): it gives the JAX generator's ab.

Random generators (numpy-filled weights and BatchNorm statistics, no training) check the
graph op by op and whole against the eval-mode JAX model, for every generator config the
project ships; a checkpoint of a tiny real training run checks `Colorizer(backend="onnx")`.
The `jaxcolor export` command is tested in tests/cli/test_export_cli.py.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from PIL import Image

onnx = pytest.importorskip("onnx", reason="the ONNX export needs `pip install 'jaxcolor[onnx]'`")
ort = pytest.importorskip("onnxruntime",
                          reason="the ONNX backend needs `pip install 'jaxcolor[onnx]'`")

from jaxcolor import color  # noqa: E402
from jaxcolor.cli import main as jaxcolor_main  # noqa: E402
from jaxcolor.inference.colorizer import Colorizer  # noqa: E402
from jaxcolor.inference.onnx import graph as onnx_graph  # noqa: E402
from jaxcolor.inference.onnx import inputs as onnx_inputs  # noqa: E402
from jaxcolor.inference.onnx.runtime import OnnxGenerator  # noqa: E402
from jaxcolor.models import factory  # noqa: E402
from jaxcolor.models import generator as generator_lib  # noqa: E402
from jaxcolor.models import resnet  # noqa: E402
from tests.support import photo_rgb, trained_workdir  # noqa: E402

WIDTHS = (32, 16, 16, 8, 8)  # decoder widths; the ResNet encoder keeps torchvision's
CONFIGS = sorted((Path(__file__).resolve().parents[2] / "experiments" / "configs").glob("*.py"))


def random_generator(backbone: str, *, attention: bool, widths=WIDTHS, seed: int = 0,
                     colour_head: str = "regression"):
    """An eval-mode UNetGenerator with random weights and random BatchNorm statistics.

    Filled from numpy (no compiled initialisation). Scaled so that nothing saturates, or a
    wrong op could hide behind a flat tanh or an arg-max softmax: residual branches end in
    a small BatchNorm scale (as torchvision's zero_init_residual does, softened), and the
    head and the attention's query/key convs are 10x smaller than He initialisation.
    """
    abstract = nnx.eval_shape(lambda: generator_lib.UNetGenerator(
        backbone, widths, self_attention=attention, colour_head=colour_head,
        rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    rng = np.random.default_rng(seed)
    last_bn = "bn3" if backbone in ("resnet50", "resnet101", "resnet152") else "bn2"

    def fill(path, leaf):
        keys = [str(getattr(k, "key", k)) for k in path]
        name, shape = keys[-1], leaf.shape
        if name == "kernel":
            value = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[:-1])), shape)
            if keys[0] == "head" or "query" in keys or "key" in keys:
                value *= 0.1
        elif name == "scale":
            value = rng.uniform(0.5, 1.5, shape)
            if keys[0] == "encoder" and last_bn in keys:
                value *= 0.2
        elif name == "var":
            value = rng.uniform(0.5, 1.5, shape)
        elif name == "gamma":
            value = np.full(shape, 0.5)
        else:  # biases and BatchNorm means
            value = rng.normal(0.0, 0.2, shape)
        return jnp.asarray(value, leaf.dtype)

    nnx.replace_by_pure_dict(
        state, jax.tree_util.tree_map_with_path(fill, nnx.to_pure_dict(state)))
    model = nnx.merge(graphdef, state)
    model.eval()
    return model


def run_subgraph(build, x_nchw: np.ndarray) -> np.ndarray:
    """Run the nodes `build(graph, input_name) -> output_name` adds, on one NCHW input."""
    g = onnx_graph._Graph()
    out = build(g, "x")
    graph = onnx.helper.make_graph(
        g.nodes, "piece", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, None)],
        [onnx.helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, None)],
        initializer=g.initializers)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)],
                                   ir_version=onnx_graph.IR_VERSION)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x_nchw})[0]


# --------------------------------------------------------------------------------------
# The graph, piece by piece and whole.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 5, 7, 3), (1, 1, 2, 1)])
def test_resize_equals_the_generators_bilinear_upsample_including_edges(shape):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    want = np.asarray(generator_lib.upsample2x(jnp.asarray(x)))
    got = run_subgraph(lambda g, x: g.upsample2x(x, "up"), x.transpose(0, 3, 1, 2))
    np.testing.assert_allclose(got.transpose(0, 2, 3, 1), want, atol=1e-6)


@pytest.mark.parametrize("mean, std", [(resnet.IMAGENET_MEAN, resnet.IMAGENET_STD),
                                       ((0.5,) * 3, (0.5,) * 3)], ids=["imagenet", "lite"])
def test_gray_preprocessing_equals_the_encoders_input(mean, std):
    # Every L, with the two branch points of the colour formulas (L = 8, the sRGB knee).
    L = np.concatenate([np.linspace(0.0, 100.0, 1001), [7.9999, 8.0, 8.0001, 2.83, 2.8]])
    l_norm = color.normalize_l(L.astype(np.float32)).reshape(1, 1, 1, -1)
    want = np.asarray(resnet.gray_input_from_l(jnp.asarray(l_norm).reshape(1, 1, -1, 1),
                                               mean, std))
    got = run_subgraph(lambda g, x: onnx_inputs.gray_input(g, x, mean, std), l_norm)
    np.testing.assert_allclose(got[0, :, 0].T, want[0, 0], atol=1e-5)  # [1, 3, 1, N]


def assert_graph_equals_model(model, l_norm: np.ndarray, *, attention: bool) -> None:
    want = np.asarray(nnx.jit(lambda m, x: m(x))(model, jnp.asarray(l_norm)))
    assert 0.05 < np.abs(want).mean() < 0.8  # neither ~0 nor saturated: the test can fail
    proto = onnx_graph.generator_to_onnx(model)  # symbolic batch, height and width
    ops = {node.op_type for node in proto.graph.node}
    assert "BatchNormalization" not in ops  # folded into the convolutions
    assert ("MatMul" in ops) == attention
    got = OnnxGenerator(proto.SerializeToString())(l_norm)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.parametrize("backbone, attention", [
    ("resnet18", False), ("resnet50", True), ("mobilenet_v2", False),
    ("efficientnet_lite0", True)])
def test_onnx_graph_gives_the_jax_generators_ab(backbone, attention):
    model = random_generator(backbone, attention=attention)
    l_norm = np.random.default_rng(1).uniform(-1, 1, (2, 64, 64, 1)).astype(np.float32)
    assert_graph_equals_model(model, l_norm, attention=attention)


@pytest.mark.parametrize("attention", [False, True], ids=["as_shipped", "self_attention"])
@pytest.mark.parametrize("config_file", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_onnx_graph_equals_every_shipped_generator_config(config_file, attention):
    """The hand-built graph against the NNX generator of each config in experiments/configs
    (its backbone and decoder widths), also with the SAGAN block on: a change to the generator
    that the graph does not follow fails here, not in a user's colours."""
    from jaxcolor import configs

    model_cfg = configs.load(config_file).model
    model = random_generator(factory.backbone(model_cfg),
                             widths=tuple(model_cfg.decoder_widths),
                             attention=attention or bool(model_cfg.self_attention))
    l_norm = np.random.default_rng(2).uniform(-1, 1, (1, 32, 64, 1)).astype(np.float32)
    assert_graph_equals_model(model, l_norm,
                              attention=attention or bool(model_cfg.self_attention))


def test_onnx_graph_gives_the_bins_heads_annealed_mean():
    model = random_generator("efficientnet_lite0", attention=False, colour_head="bins")
    l_norm = np.random.default_rng(3).uniform(-1, 1, (2, 64, 64, 1)).astype(np.float32)
    assert_graph_equals_model(model, l_norm, attention=False)


def test_a_layer_the_graph_does_not_know_stops_the_export():
    model = random_generator("resnet18", attention=False)
    model.refiner = nnx.Conv(2, 2, kernel_size=(1, 1), rngs=nnx.Rngs(0))  # not in the graph
    with pytest.raises(onnx_graph.OnnxExportError, match=r"2 variable\(s\) .*refiner"):
        onnx_graph.generator_to_onnx(model)


# --------------------------------------------------------------------------------------
# The backend, on a checkpoint.
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return trained_workdir(tmp_path_factory)


@pytest.fixture(scope="module")
def jax_colorizer(workdir) -> Colorizer:
    return Colorizer.from_checkpoint(workdir, batch_size=4)


def test_onnx_backend_colours_like_the_jax_backend(workdir, jax_colorizer, tmp_path, capsys):
    onnx_colorizer = Colorizer.from_checkpoint(workdir, batch_size=4, backend="onnx")
    size = onnx_colorizer.render_size
    L = np.random.default_rng(3).uniform(0, 100, (3, size, size)).astype(np.float32)
    np.testing.assert_allclose(onnx_colorizer.predict_ab(L), jax_colorizer.predict_ab(L),
                               atol=1e-4 * color.AB_SCALE)

    rgb = photo_rgb(45, 70)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    assert jaxcolor_main(["colorize", f"--checkpoint={workdir}", "--backend=onnx",
                          f"--input={tmp_path}/photo.png", f"--output={tmp_path}/out"]) == 0
    written = np.asarray(Image.open(tmp_path / "out" / "photo.png"))
    diff = np.abs(written.astype(int) - jax_colorizer.colorize(rgb).astype(int))
    assert diff.max() <= 1  # 8-bit rounding of ab equal to ~1e-4


def test_colorize_defaults_to_onnx_on_cpu_when_installed(workdir, tmp_path, capsys):
    Image.fromarray(photo_rgb(40, 56)).save(tmp_path / "photo.png")
    assert jaxcolor_main(["colorize", f"--checkpoint={workdir}",
                          f"--input={tmp_path}/photo.png", f"--output={tmp_path}/out"]) == 0
    assert "backend onnx" in capsys.readouterr().err
    assert Colorizer.from_checkpoint(workdir, backend="auto").backend == "onnx"
