"""Hostile inputs to `colorize` and `ingest`: a generated archive of 200+ broken, odd and
hostile files (tests/faults/hostile.py). No crash, no hang, every file decided in bounded
time, every failure listed with its reason, every valid file processed, the documented
exit status.
"""

from __future__ import annotations

import glob
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jaxcolor.data import images
from tests.faults import faultkit
from tests.faults import hostile

DECODE_SECONDS = 5.0  # per file; a decompression bomb must be refused, not decoded
CLI_TIMEOUT = 600


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    directory = tmp_path_factory.mktemp("hostile") / "archive"
    entries = hostile.build(directory)
    assert len(entries) >= 200
    yield directory, entries
    for entry in entries:  # let pytest clean up
        if entry.kind == hostile.UNREADABLE:
            entry.path.chmod(0o644)


def _cli(*args: str) -> subprocess.CompletedProcess:
    """`jaxcolor SUBCOMMAND ...` in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "jaxcolor", *args], cwd=faultkit.REPO, text=True,
                          capture_output=True, timeout=CLI_TIMEOUT, env=faultkit.trainer_env())


class _Hung(Exception):
    pass


def _raise_hung(signum, frame):
    raise _Hung


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow, on truncated JPEGs
def test_every_file_is_decoded_or_refused_quickly(archive):
    """The decoder both CLIs use: ImageDecodeError with a reason, or pixels; never another
    exception, never longer than DECODE_SECONDS (a hang would hit the 60 s alarm)."""
    _, entries = archive
    previous = signal.signal(signal.SIGALRM, _raise_hung)
    slow, wrong = [], []
    try:
        for entry in entries:
            started = time.perf_counter()
            signal.alarm(60)
            try:
                images.load_image_rgb(entry.path, max_pixels=2**28)
                outcome = hostile.VALID
            except images.ImageDecodeError as e:
                assert e.reason, entry
                outcome = hostile.INVALID
            finally:
                signal.alarm(0)
            if time.perf_counter() - started > DECODE_SECONDS:
                slow.append(entry.path)
            if hostile.expected_kind(entry) not in (outcome, hostile.DAMAGED):
                wrong.append((entry.path, outcome))
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert not slow and not wrong, (slow, wrong)


def _output_exists(out: Path, rel: Path) -> bool:
    """colorize --format=same writes OUT/rel with the input's suffix (or .png for a GIF)."""
    return bool(glob.glob(glob.escape(str(out / rel.parent / rel.stem)) + ".*"))


def test_colorize_processes_every_valid_file_and_lists_every_failure(archive, baseline,
                                                                     tmp_path):
    directory, entries = archive
    out = tmp_path / "out"
    started = time.monotonic()
    proc = _cli("colorize", f"--checkpoint={baseline.workdir}", f"--input={directory}",
                f"--output={out}", "--format=same")
    seconds = time.monotonic() - started

    assert proc.returncode == 1, proc.stderr[-5000:]  # 1: some inputs failed
    assert "Traceback" not in proc.stderr, proc.stderr[-5000:]
    text = proc.stdout + proc.stderr
    summary = re.search(r"done (\d+), failed (\d+)", text)
    assert summary, text[-3000:]
    failed = {line for line in text.splitlines() if line.startswith("failed: ")}
    problems = []
    for entry in entries:
        rel = entry.path.relative_to(directory)
        listed = [line for line in failed if line.startswith(f"failed: {entry.path}: ")]
        reasons = [line[len(f"failed: {entry.path}: "):].strip() for line in listed]
        written = _output_exists(out, rel)
        kind = hostile.expected_kind(entry)
        if kind == hostile.VALID:
            ok = written and not listed
        elif kind == hostile.DAMAGED:
            ok = written != bool(listed)
        elif entry.regular:
            ok = not written and len(listed) == 1 and all(reasons)
        else:  # links and pipes: refused with a reason, or not taken as inputs at all
            ok = not written and all(reasons)
        if not ok:
            problems.append((str(rel), kind, written, listed))
    assert not problems, problems
    assert int(summary.group(1)) == sum(_output_exists(out, e.path.relative_to(directory))
                                        for e in entries)
    assert seconds < CLI_TIMEOUT


def test_ingest_keeps_every_valid_file_and_lists_every_skipped_one(archive, tmp_path):
    directory, entries = archive
    out = tmp_path / "records"
    proc = _cli("ingest", "images", f"--src={directory}", f"--out={out}",
                "--size=32", "--workers=2", "--val_every=0")

    assert proc.returncode == 0, proc.stderr[-5000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-5000:]
    manifest = json.loads((out / "manifest.json").read_text())
    skipped = {Path(s["path"]): s["reason"] for s in manifest["skipped"]}
    assert all(skipped.values()), skipped
    problems = []
    images_found = 0
    for entry in entries:
        kind = hostile.expected_kind(entry)
        is_image_file = entry.regular and entry.path.suffix.lower() in hostile.EXTENSIONS
        images_found += is_image_file
        if kind == hostile.VALID and entry.path in skipped:
            problems.append((entry.path, "valid but skipped", skipped[entry.path]))
        if kind == hostile.INVALID and is_image_file and entry.path not in skipped:
            problems.append((entry.path, "invalid but not listed"))
    assert not problems, problems
    assert manifest["count"] == images_found - len(skipped)  # everything else was ingested
