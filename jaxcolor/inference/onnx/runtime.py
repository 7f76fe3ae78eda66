"""ONNX Runtime backend of the generator forward pass, for fast colourisation on CPU.

`OnnxGenerator` has the JAX generator's interface: l_norm (L / 50 - 1) float32
[B, H, W, 1] -> ab / 110 float32 [B, H, W, 2], on numpy arrays. It runs either a file
written by `jaxcolor export` or a graph built on the fly from a restored generator
(`from_generator`, what `Colorizer(backend="onnx")` does), so the two backends always use
the same weights.

Why a second backend: XLA:CPU runs this ResNet U-Net markedly slower than ONNX Runtime's
CPU kernels do (see BENCHMARKS.md), and CPU is where most users colourise.

`onnx` and `onnxruntime` are optional (`pip install 'jaxcolor[onnx]'`); they are imported
only when a session is made (`jaxcolor.errors.require`).
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np

from jaxcolor.errors import RunError, require


class OnnxBackendError(RunError, ValueError):
    """An input or model does not fit the ONNX backend (names the model and the problem)."""


def available() -> bool:
    """Whether onnx and onnxruntime are installed (without importing them)."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


def session_options(threads: int | None = None):
    """CPU session options: `threads` intra-op threads (None: ONNX Runtime's default, one per
    physical core), no inter-op parallelism (this graph is one chain), all graph
    optimisations (conv + relu / add fusion, NCHWc layouts)."""
    ort = require("onnxruntime", "onnx")
    options = ort.SessionOptions()
    if threads is not None:
        if threads < 1:
            raise OnnxBackendError(f"threads must be >= 1, got {threads}")
        options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


class OnnxGenerator:
    """An ONNX Runtime CPU session of an exported generator.

    Args:
      model: path of an .onnx file, or the serialised model bytes.
      threads: intra-op threads (None: ONNX Runtime's default).
      name: how error messages refer to the model (default: the path, or "<in memory>").

    Attributes:
      batch, height, width: the model's fixed input dimensions, None where symbolic.
      metadata: the model's metadata_props (export writes the step and the run config).
    """

    def __init__(self, model: str | os.PathLike | bytes, *, threads: int | None = None,
                 name: str | None = None):
        ort = require("onnxruntime", "onnx")
        self.name = name or (str(model) if not isinstance(model, bytes) else "<in memory>")
        source = model if isinstance(model, bytes) else os.fspath(model)
        try:
            self._session = ort.InferenceSession(source, session_options(threads),
                                                 providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/NoSuchFile types
            raise OnnxBackendError(f"{self.name}: ONNX Runtime cannot load the model "
                                   f"({type(e).__name__}: {e})") from None
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if not 1 <= len(inputs) <= 2 or len(outputs) != 1 or len(inputs[0].shape) != 4 \
                or inputs[0].shape[3] != 1 or (len(inputs) == 2 and inputs[1].shape[3] != 3):
            raise OnnxBackendError(f"{self.name}: not a jaxcolor generator (expected an input "
                                   "[B, H, W, 1], optionally hints [B, H, W, 3], and one output)")
        self._input = inputs[0].name
        self._hint = inputs[1].name if len(inputs) == 2 else None
        fixed = [d if isinstance(d, int) else None for d in inputs[0].shape[:3]]
        self.batch, self.height, self.width = fixed
        self.metadata = dict(self._session.get_modelmeta().custom_metadata_map)

    @classmethod
    def from_generator(cls, generator, *, height: int | None = None, width: int | None = None,
                       threads: int | None = None) -> "OnnxGenerator":
        """A session of a restored `UNetGenerator` (eval-mode statistics), built in memory."""
        require("onnx", "onnx")
        from jaxcolor.inference.onnx import graph

        model = graph.generator_to_onnx(generator, height=height, width=width)
        return cls(model.SerializeToString(), threads=threads)

    @property
    def takes_hints(self) -> bool:
        return self._hint is not None

    def __call__(self, l_norm: np.ndarray, hint: np.ndarray | None = None) -> np.ndarray:
        """ab / 110 float32 [n, H, W, 2] for l_norm float32 [n, H, W, 1] (and for a model
        with hint inputs the hint map [n, H, W, 3]; none given: no hints). A model with a
        fixed batch size runs the batch in slices of that size (zero-padding the last)."""
        if hint is not None and not self.takes_hints:
            raise OnnxBackendError(f"{self.name}: the model takes no colour hints")
        x = np.ascontiguousarray(l_norm, np.float32)
        if x.ndim != 4 or x.shape[3] != 1:
            raise OnnxBackendError(f"{self.name}: expected l_norm [B, H, W, 1], got {x.shape}")
        for got, want, what in ((x.shape[1], self.height, "height"),
                                (x.shape[2], self.width, "width")):
            if want is not None and got != want:
                raise OnnxBackendError(f"{self.name}: the model was exported for input {what} "
                                       f"{want}, got {got} (export again with --render_size)")
        feeds = {self._input: x}
        if self.takes_hints:
            feeds[self._hint] = (np.zeros(x.shape[:3] + (3,), np.float32) if hint is None
                                 else np.ascontiguousarray(hint, np.float32))
        if self.batch is None or x.shape[0] == self.batch:
            return self._run(feeds)
        n, b = x.shape[0], self.batch
        slices = []
        for i in range(0, n, b):
            part = {k: v[i:i + b] for k, v in feeds.items()}
            short = b - len(part[self._input])
            if short:  # the last slice, zero-padded to the model's batch
                part = {k: np.concatenate([v, np.zeros((short,) + v.shape[1:], v.dtype)])
                        for k, v in part.items()}
            slices.append(self._run(part))
        return np.concatenate(slices)[:n]

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self._session.run(None, feeds)[0]
