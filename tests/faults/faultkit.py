"""Shared pieces of the fault tests: tiny records, the trainer as a subprocess that can be
killed, and readers for what a run leaves on disk (checkpoint steps, restored state, log).

The trainer is `tests/faults/trainer.py` (experiments/run.py's main, faults patched in
on request) with `tests/tiny_config.py:faults`. Every run in a session shares one
persistent XLA compilation cache, so a restarted trainer loads its compiled steps instead
of compiling them again.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jax
import numpy as np

from jaxcolor import configs
from tests import support
from tests.support import REPO

TRAINER = REPO / "tests" / "faults" / "trainer.py"
CONFIG = f"{support.TINY_CONFIG}:faults"
ORBAX_TMP = ".orbax-checkpoint-tmp"  # suffix of a step directory Orbax is still writing
RESUMED = re.compile(r"Resumed from (\S+)/(\d+)")


GRAY = slice(3, None, 8)  # records 3, 11, 19, 27, 35 are gray: the training filter drops them


def write_records(directory: Path, *, shard_bytes: int | None = None) -> Path:
    """40 records of 40x40: 8 validation (every 5th, 35 among them), 32 training of which
    4 are gray, so training keeps 28 (14 a process when there are two)."""
    return support.write_records(directory, size=40, gray=GRAY, shard_bytes=shard_bytes)


def tiny_config(**phases):
    """tests/tiny_config.py:faults (`phases` overrides config.phases)."""
    config = configs.load(CONFIG)
    config.phases.update(phases)
    return config


def total_steps(**phases) -> int:
    p = tiny_config(**phases).phases
    return p.pretrain_steps + p.d_pretrain_steps + p.gan_steps


def trainer_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1", **extra)
    return env


class Trainer:
    """`trainer.py` in a subprocess; stdout and stderr collected line by line as it runs."""

    def __init__(self, workdir: Path, records: Path, cache: Path, *args: str,
                 env: dict[str, str] | None = None):
        self.workdir = Path(workdir)
        argv = [sys.executable, str(TRAINER), f"--config={CONFIG}", f"--workdir={workdir}",
                f"--config.data.train={records}", f"--config.compilation_cache={cache}", *args]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, cwd=REPO, env=env or trainer_env(), text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        """The first output line matching `pattern`; fails if the trainer exits first."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            lines = self.lines[:]
            for line in lines[seen:]:
                if m := regex.search(line):
                    return m
            seen = len(lines)
            if self.proc.poll() is not None and not self._reader.is_alive() \
                    and len(self.lines) == seen:
                raise AssertionError(f"trainer exited ({self.proc.returncode}) before "
                                     f"{pattern!r}:\n{self.tail()}")
            time.sleep(0.01)
        raise AssertionError(f"no {pattern!r} within {timeout} s:\n{self.tail()}")

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"trainer still running after {timeout} s:\n{self.tail()}")
        self._reader.join(10)
        return rc

    def kill(self) -> None:
        """kill -9, and wait until it is gone."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._reader.join(10)

    def tail(self, n: int = 40) -> str:
        return "".join(self.lines[-n:])


def run_trainer(workdir: Path, records: Path, cache: Path, *args: str, timeout: float = 600,
                env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run the trainer to the end: (exit code, output)."""
    trainer = Trainer(workdir, records, cache, *args, env=env)
    rc = trainer.wait(timeout)
    return rc, trainer.output


def checkpoint_dirs(workdir: Path) -> tuple[list[int], list[str]]:
    """(complete checkpoint steps, names of partially written step directories)."""
    directory = Path(workdir) / "checkpoints"
    if not directory.is_dir():
        return [], []
    names = [p.name for p in directory.iterdir() if p.is_dir()]
    return sorted(int(n) for n in names if n.isdigit()), sorted(n for n in names if ORBAX_TMP in n)


def partial_checkpoints(workdir: Path) -> set[tuple[str, int]]:
    """(name, inode) of every partially written step directory: a save of the same step
    started again after a restart has the same name but is a new directory."""
    directory = Path(workdir) / "checkpoints"
    found = set()
    for name in checkpoint_dirs(workdir)[1]:
        try:
            found.add((name, (directory / name).stat().st_ino))
        except FileNotFoundError:  # renamed into place (complete) or cleaned up meanwhile
            pass
    return found


def resumed_steps(output: str) -> list[int]:
    return [int(m.group(2)) for m in RESUMED.finditer(output)]


def restore_state(workdir: Path, step: int) -> dict:
    """The `state` item of checkpoint `step` as a plain tree of numpy arrays, whatever the
    devices and processes that wrote it."""
    import orbax.checkpoint as ocp

    path = Path(workdir).absolute() / "checkpoints" / str(step) / "state"
    with ocp.PyTreeCheckpointer() as checkpointer:
        saved = checkpointer.metadata(path).item_metadata.tree
        as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), saved)
        return checkpointer.restore(path, args=ocp.args.PyTreeRestore(restore_args=as_numpy))


def all_finite(tree) -> bool:
    return all(np.all(np.isfinite(x)) for x in jax.tree.leaves(tree)
               if np.issubdtype(np.asarray(x).dtype, np.floating))
