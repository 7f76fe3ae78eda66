"""What users install: the wheel holds every module of the package, the studio's page (package
data) and the `jaxcolor` command.

An editable install hides a package left out of the wheel (a folder without __init__.py
once dropped all of jaxcolor.train); this builds the wheel as `pip wheel` does, from a copy
of the source tree (so stale `build/` output of earlier builds cannot mask a loss), and
compares its modules with the tree. `.ci/wheel_smoke` then uses that wheel as a user would.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATIC = REPO / "jaxcolor" / "serve" / "static"  # the studio's page: package data
_NOT_SOURCE = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__",
                                     ".venv", "venv", ".pytest_cache", "tests", "benchmarks",
                                     "docs", "*.whl")


def _package_modules(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in (root / "jaxcolor").rglob("*.py")
            if "__pycache__" not in p.parts}


def test_the_wheel_holds_every_module_and_the_command(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=_NOT_SOURCE)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
         str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("jaxcolor-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(archive.read(n).decode() for n in names
                            if n.endswith(".dist-info/entry_points.txt"))
    in_wheel = {n for n in names if n.endswith(".py")}
    assert in_wheel == _package_modules(REPO), (
        f"left out of the wheel: {sorted(_package_modules(REPO) - in_wheel)}; "
        f"not in the tree: {sorted(in_wheel - _package_modules(REPO))}")
    static = {p.relative_to(REPO).as_posix() for p in STATIC.iterdir()}
    assert static and static <= set(names), f"the studio's page: {sorted(static - set(names))}"
    assert "jaxcolor = jaxcolor.cli:main" in entry_points
    assert "jaxcolor/models/imagenet_classes.txt" in names  # package data (setup.cfg)


def test_every_package_folder_is_a_package():
    """setuptools' find_packages skips a folder without __init__.py (and all below it)."""
    folders = {p.parent for p in (REPO / "jaxcolor").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert not [f for f in folders if not (f / "__init__.py").is_file()]
