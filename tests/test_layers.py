"""The house plan's import rules (docs/architecture.md), pinned.

Statically: each layer imports only the layers below it. Dynamically: colourising a photo
from a checkpoint, through the library and through `jaxcolor colorize`, runs in an
interpreter where `jaxcolor.train` and Grain cannot be imported at all and where no jaxcolor
module may import optax (flax.nnx itself imports optax at package import, flax/nnx/helpers.py,
so optax cannot be removed from the interpreter; what is pinned is that jaxcolor's inference
never asks for it).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support import trained_workdir

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "jaxcolor"

GROUND = {"jaxcolor", "jaxcolor.color", "jaxcolor.ab_grid", "jaxcolor.metrics",
          "jaxcolor.errors", "jaxcolor.sharding", "jaxcolor.configs", "jaxcolor.progress",
          "jaxcolor.checkpoints", "jaxcolor.model_file", "jaxcolor.evaluator"}
# What each layer may import from jaxcolor (module-name prefixes), besides itself.
ALLOWED = {
    "ground": GROUND,
    "data": GROUND,
    "models": GROUND,
    "train": GROUND | {"jaxcolor.data", "jaxcolor.models"},
    # Decoding photos, and reading records and their filter statistics for evaluation:
    # modules without Grain or optax.
    "inference": GROUND | {"jaxcolor.models", "jaxcolor.data.images", "jaxcolor.data.records",
                           "jaxcolor.data.stats"},
    # The studio's server: a client of inference, like the command line, but a library
    # layer that nothing below imports.
    "serve": GROUND | {"jaxcolor.inference", "jaxcolor.models", "jaxcolor.data.images",
                       "jaxcolor.data.records", "jaxcolor.data.stats"},
    "cli": set(),  # anything
}


def _is_module(name: str) -> bool:
    path = REPO / Path(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(path: Path) -> set[str]:
    """The jaxcolor modules `path` imports (`from jaxcolor.x import y`: x.y if that is a
    module, else x)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("jaxcolor")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jaxcolor"):
            found |= {f"{node.module}.{a.name}" if _is_module(f"{node.module}.{a.name}")
                      else node.module for a in node.names}
    return found


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else "ground"


FACADE = {"jaxcolor", "jaxcolor.__main__"}  # the package's lazy `Colorizer` and `python -m`


def _allowed(importer: str, imported: str) -> bool:
    layer = _layer(importer)
    if importer in FACADE:
        return True
    if imported.startswith("jaxcolor.cli"):  # nothing imports the command line
        return layer == "cli"
    if layer == "cli" or (layer != "ground" and _layer(imported) == layer):
        return True
    # "jaxcolor" (the package's own __init__) is allowed as itself, not as a prefix.
    return any(imported == a or (a != "jaxcolor" and imported.startswith(a + "."))
               for a in ALLOWED[layer])


def test_each_layer_imports_only_the_layers_below_it():
    wrong = [f"{_module_name(path)} imports {imported}"
             for path in sorted(PACKAGE.rglob("*.py"))
             for imported in sorted(_imports(path))
             if not _allowed(_module_name(path), imported)]
    assert not wrong, "\n".join(wrong)


def test_the_rules_catch_a_wrong_import():
    assert not _allowed("jaxcolor.inference.colorizer", "jaxcolor.train.checkpoint")
    assert not _allowed("jaxcolor.data.pipeline", "jaxcolor.models.factory")
    assert not _allowed("jaxcolor.color", "jaxcolor.data.images")
    assert not _allowed("jaxcolor.train.loop", "jaxcolor.cli.common")
    assert not _allowed("jaxcolor.train.checkpoint", "jaxcolor.inference.restore")
    assert _allowed("jaxcolor.train.checkpoint", "jaxcolor.checkpoints")
    assert _allowed("jaxcolor.inference.evaluation", "jaxcolor.evaluator")
    assert _allowed("jaxcolor.cli.colorize", "jaxcolor.train.loop")
    assert not _allowed("jaxcolor.serve.app", "jaxcolor.train.loop")
    assert not _allowed("jaxcolor.serve.engine", "jaxcolor.data.pipeline")
    assert not _allowed("jaxcolor.inference.files", "jaxcolor.serve.uploads")
    assert _allowed("jaxcolor.serve.uploads", "jaxcolor.inference.files")


_BLOCKED = r"""
import importlib.abc, sys, traceback

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        top = name.split(".")[0]
        if name == "jaxcolor.train" or name.startswith("jaxcolor.train.") or top == "grain":
            raise ImportError(f"{name} is blocked: inference must not need it")
        if top == "optax":
            frame = sys._getframe(1)
            skip = ("importlib", "_frozen")
            while frame and frame.f_globals.get("__name__", "").startswith(skip):
                frame = frame.f_back
            importer = frame.f_globals.get("__name__", "") if frame else ""
            if importer.startswith("jaxcolor"):
                raise ImportError(f"{importer} imports optax: inference must not need it")
        return None

sys.meta_path.insert(0, Block())
"""

_COLORIZE = _BLOCKED + r"""
import numpy as np
from jaxcolor.inference import Colorizer
colorizer = Colorizer.from_checkpoint(sys.argv[1], backend="jax")
rgb = np.random.default_rng(0).integers(0, 256, (40, 56, 3), np.uint8)
out = colorizer.colorize(rgb)
assert out.shape == (40, 56, 3), out.shape
from jaxcolor.cli import main
code = main(["colorize", f"--checkpoint={sys.argv[1]}", f"--input={sys.argv[2]}",
             f"--output={sys.argv[3]}", "--backend=jax"])
assert code == 0, code
leaked = sorted(m for m in sys.modules if m.startswith(("jaxcolor.train", "grain")))
assert not leaked, leaked
print("colourised without training code")
"""


@pytest.mark.slow
def test_colourising_needs_neither_training_code_nor_grain(tmp_path_factory, tmp_path):
    workdir = trained_workdir(tmp_path_factory)
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((30, 40, 3), 120, np.uint8)).save(photo)
    result = subprocess.run(
        [sys.executable, "-c", _COLORIZE, str(workdir), str(photo), str(tmp_path / "out")],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert result.returncode == 0, result.stderr[-4000:]
    assert "colourised without training code" in result.stdout
    assert (tmp_path / "out" / "photo.png").is_file()


_SERVE = _BLOCKED + r"""
import io
import numpy as np
from PIL import Image
from starlette.testclient import TestClient
from jaxcolor.inference import Colorizer
from jaxcolor.serve.app import create_app
app = create_app(Colorizer.from_checkpoint(sys.argv[1], backend="jax"))
photo = io.BytesIO()
Image.fromarray(np.full((30, 40), 120, np.uint8)).save(photo, "PNG")
with TestClient(app, base_url="http://127.0.0.1") as client:
    response = client.post("/api/colorize", files={"image": ("a.png", photo.getvalue())})
assert response.status_code == 200, response.text
leaked = sorted(m for m in sys.modules if m.startswith(("jaxcolor.train", "grain")))
assert not leaked, leaked
print("served without training code")
"""


@pytest.mark.slow
def test_the_studio_needs_neither_training_code_nor_grain(tmp_path_factory, tmp_path):
    workdir = trained_workdir(tmp_path_factory)
    result = subprocess.run([sys.executable, "-c", _SERVE, str(workdir)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert result.returncode == 0, result.stderr[-4000:]
    assert "served without training code" in result.stdout


@pytest.mark.parametrize("statement, blocked", [
    ("import jaxcolor.train.setup", "jaxcolor.train is blocked"),
    ("import jaxcolor.data.pipeline", "grain is blocked"),
    ("exec('import optax', {'__name__': 'jaxcolor.inference.x'})", "jaxcolor.inference.x "
                                                                    "imports optax"),
])
def test_the_block_stops_what_it_should(statement, blocked, tmp_path):
    """The guard of the test above can fail: training code and Grain cannot be imported."""
    result = subprocess.run([sys.executable, "-c", _BLOCKED + statement], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and blocked in result.stderr, result.stderr[-2000:]
