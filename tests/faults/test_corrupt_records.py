"""Damaged records: `experiments/run.py` refuses to start, before compiling anything, with one
line that names the damaged file and what is wrong with it, and exit status 1.

Each case damages one file of a copy of a 4-shard records directory (10 records a shard),
the second or later shard where it matters, so the check must look past the first.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.faults import faultkit

RUN = faultkit.REPO / "experiments" / "run.py"
RECORD_BYTES = 40 * 40 * 3


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip(path: Path, at: bytes, offset: int, mask: int) -> None:
    """XOR one byte of `path`: the byte `offset` into the first occurrence of `at`."""
    data = bytearray(path.read_bytes())
    data[data.index(at) + offset] ^= mask
    path.write_bytes(bytes(data))


def _edit_manifest(directory: Path, edit) -> None:
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def _set_count(manifest, value):
    manifest["count"] = value


def _shrink_shard(manifest):
    """Shard 1 and the total both say 9 records; the shard files still hold 10."""
    manifest["shards"][1]["count"] = 9
    manifest["count"] -= 1


# case -> (damage(directory), damaged file, words the message must contain)
CASES = {
    "truncated shard": (lambda d: _truncate(d / "L-00001.npy"), "L-00001.npy", "truncated"),
    "flipped magic byte in a shard header": (
        lambda d: _flip(d / "ab-00002.npy", b"NUMPY", 0, 0xFF), "ab-00002.npy",
        "not a .npy file"),
    "flipped dtype byte in a shard header": (  # '|u1' -> '|u2': twice the bytes the file has
        lambda d: _flip(d / "ab-00002.npy", b"'|u1'", 3, 0x03), "ab-00002.npy", "truncated"),
    "flipped shape byte in a shard header": (  # (10, 40, 40) -> (00, 40, 40)
        lambda d: _flip(d / "L-00003.npy", b"(10, ", 1, 0x01), "L-00003.npy", "manifest says"),
    "missing stats file": (lambda d: (d / "stats.npy").unlink(), "stats.npy", "missing"),
    "stats of the wrong length": (
        lambda d: np.save(d / "stats.npy", np.load(d / "stats.npy")[:-1]), "stats.npy",
        "39 rows for 40 records"),
    "manifest count disagrees with its shards": (
        lambda d: _edit_manifest(d, lambda m: _set_count(m, 41)), "manifest.json",
        "add up to 40 but count is 41"),
    "manifest shard count disagrees with the shard file": (
        lambda d: _edit_manifest(d, _shrink_shard), "L-00001.npy",
        "shape (10, 40, 40), manifest says (9, 40, 40)"),
    "shard of the wrong shape": (
        lambda d: np.save(d / "ab-00001.npy", np.zeros((10, 40, 40, 3), np.uint8)),
        "ab-00001.npy", "shape (10, 40, 40, 3), manifest says (10, 40, 40, 2)"),
}


@pytest.fixture(scope="module")
def intact(tmp_path_factory) -> Path:
    return faultkit.write_records(tmp_path_factory.mktemp("corrupt") / "intact",
                                  shard_bytes=10 * RECORD_BYTES)


def _run(records: Path, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """run.py as a user runs it; JAX logs every compilation ("Compiling ...")."""
    return subprocess.run(
        [sys.executable, str(RUN), f"--config={faultkit.CONFIG}", f"--workdir={workdir}",
         f"--config.data.train={records}", *args],
        cwd=faultkit.REPO, capture_output=True, text=True, timeout=300,
        env=faultkit.trainer_env(JAX_LOG_COMPILES="1"))


def _error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_records_stop_the_run_before_compiling(case, intact, tmp_path):
    damage, damaged_file, problem = CASES[case]
    records = tmp_path / "records"
    shutil.copytree(intact, records)
    damage(records)

    proc = _run(records, tmp_path / "run")

    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = _error_lines(proc)
    assert len(errors) == 1, proc.stderr[-3000:]
    assert str(records / damaged_file) in errors[0], errors[0]
    assert problem in errors[0], errors[0]
    assert "Traceback" not in proc.stderr
    assert "Compiling" not in proc.stderr + proc.stdout, "compiled before validating the data"
    checkpoints = tmp_path / "run" / "checkpoints"
    assert not checkpoints.exists() or not any(checkpoints.iterdir())


def test_a_failure_after_validation_does_compile(intact, tmp_path):
    """Control for the test above: with intact records, the same run compiles (so "no
    Compiling in the log" there means something), then stops at a later user error."""
    proc = _run(intact, tmp_path / "run", f"--config.model.backbone_weights={tmp_path}/none")

    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Compiling" in proc.stderr
    errors = _error_lines(proc)
    assert len(errors) == 1 and "not an Orbax checkpoint" in errors[0], proc.stderr[-3000:]
