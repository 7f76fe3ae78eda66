r"""Test-only entry point: experiments/run.py's `main`, with faults patched in-process.

  python tests/faults/trainer.py --config=tests/tiny_config.py:faults --workdir=DIR \
      [--fault_nan_at_step=N] [--fault_enospc_at_save=K] [--fault_hang_at_save=K] \
      [--fault_record_indices=FILE] \
      [--fault_emulate_processes=P] [--fault_step_delay=S] [--config.*=...]

Every fault is off by default, so without fault flags this is exactly `run.py`. The library
has no fault hooks of its own: each fault replaces one library function here, before
training starts, and nothing else changes.

  --fault_nan_at_step=N       training step N (1-based) reads an all-zero batch, and the
                              normalisation in the jitted step turns an all-zero batch into
                              NaN: the loss of step N is NaN for real, through G and Adam.
  --fault_enospc_at_save=K    the K-th checkpoint save of this process fails in Orbax's
                              background writer with OSError(ENOSPC), as a full disk would.
  --fault_hang_at_save=K      the K-th checkpoint save of this process never finishes in
                              Orbax's background writer, as a write whose completion is
                              lost (or a stuck mount) would.
  --fault_record_indices=F    append one JSON line {"shard", "step", "index"} per training
                              batch this process reads (read-ahead included).
  --fault_emulate_processes=P this single process reads the P per-process shards and
                              concatenates them in process order, i.e. the global batch that
                              P processes would assemble (reference for multi-process runs).
  --fault_step_delay=S        every training batch takes S more seconds to read, so a test
                              can signal a run of a few steps while it is still training.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import threading
from pathlib import Path

from absl import app, flags

REPO = Path(__file__).resolve().parents[2]


def _load_run_module():
    """experiments/run.py by path (defines its absl flags on import)."""
    spec = importlib.util.spec_from_file_location("jaxcolor_experiments_run",
                                                  REPO / "experiments" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run = _load_run_module()

_NAN_AT = flags.DEFINE_integer("fault_nan_at_step", 0, "1-based step whose batch gives NaN.")
_ENOSPC_AT = flags.DEFINE_integer("fault_enospc_at_save", 0, "K-th save fails with ENOSPC.")
_HANG_AT = flags.DEFINE_integer("fault_hang_at_save", 0, "K-th save never finishes.")
_RECORD = flags.DEFINE_string("fault_record_indices", None, "JSON-lines file of read indices.")
_EMULATE = flags.DEFINE_integer("fault_emulate_processes", 0, "Emulate P processes' batches.")
_DELAY = flags.DEFINE_float("fault_step_delay", 0.0, "Extra seconds per training batch read.")


def _inject_nan(step_1based: int) -> None:
    import jax.numpy as jnp
    import numpy as np

    from jaxcolor.data import batches, pipeline

    read, prepare = pipeline._ReadBatch.__call__, batches.prepare_batch

    def read_zeroing(self, step, batch):  # `step` is the pipeline's 0-based global step
        out = read(self, step, batch)
        if self.augment and step == step_1based - 1:
            out = {**out, "L": np.zeros_like(out["L"]), "ab": np.zeros_like(out["ab"])}
        return out

    def prepare_poisoned(batch):
        l_norm, ab = prepare(batch)
        poisoned = jnp.all(batch["L"] == 0) & jnp.all(batch["ab"] == 0)
        return l_norm * jnp.where(poisoned, jnp.nan, 1.0), ab

    pipeline._ReadBatch.__call__ = read_zeroing
    batches.prepare_batch = prepare_poisoned


def _break_json_write(save_number: int, broken) -> None:
    """On the K-th checkpoint save, the first JSON item write (`config` or `meta`) runs the
    coroutine `broken(directory)` instead: in `JsonCheckpointHandler`'s write, which runs in
    Orbax's background commit thread while the array items are being written."""
    import orbax.checkpoint as ocp

    from jaxcolor.train import checkpoint

    handler = ocp.handlers.JsonCheckpointHandler
    save, write = checkpoint.Checkpointer.save, handler._save_fn
    saves, armed = [0], [False]

    def save_counting(self, state, **kwargs):
        saves[0] += 1
        if saves[0] == save_number:
            armed[0] = True
        return save(self, state, **kwargs)

    async def write_or_break(self, x, directory):
        if armed[0]:
            armed[0] = False
            return await broken(directory)
        return await write(self, x, directory)

    checkpoint.Checkpointer.save = save_counting
    handler._save_fn = write_or_break


async def _enospc(directory) -> None:
    """What `write_text` raises on a full file system."""
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory))


async def _never(directory) -> None:
    """A write whose completion never arrives."""
    import asyncio

    await asyncio.Event().wait()


def _record_indices(path: str) -> None:
    from jaxcolor.data import pipeline

    read = pipeline._ReadBatch.__call__
    lock = threading.Lock()

    def read_recording(self, step, batch):
        out = read(self, step, batch)
        if self.augment:
            line = json.dumps({"shard": self.shard_index, "step": int(step),
                               "index": [int(i) for i in out["index"]]})
            with lock, open(path, "a") as f:
                f.write(line + "\n")
        return out

    pipeline._ReadBatch.__call__ = read_recording


def _slow_reads(seconds: float) -> None:
    import time

    from jaxcolor.data import pipeline

    read = pipeline._ReadBatch.__call__

    def read_slowly(self, step, batch):
        if self.augment:
            time.sleep(seconds)
        return read(self, step, batch)

    pipeline._ReadBatch.__call__ = read_slowly


def _emulate_processes(count: int) -> None:
    """`pipeline.make_train_iterator` returns one iterator over `count` shards' batches."""
    import grain
    import numpy as np

    from jaxcolor.data import pipeline

    make = pipeline.make_train_iterator

    class ProcessConcat(grain.DatasetIterator):
        """Batches of several per-process iterators, concatenated in process order."""

        def __next__(self):
            parts = [next(p) for p in self._parents]
            return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

        def get_state(self):
            return {str(i): p.get_state() for i, p in enumerate(self._parents)}

        def set_state(self, state):
            for i, p in enumerate(self._parents):
                p.set_state(state[str(i)])

    def make_emulated(records, *, global_batch, shard_index=None, shard_count=None, mesh=None,
                      **kwargs):
        del shard_index, shard_count, mesh  # one process stands in for `count`
        built = [make(records, global_batch=global_batch, shard_index=i, shard_count=count,
                      **kwargs) for i in range(count)]
        return ProcessConcat([it for it, _ in built]), built[0][1]

    pipeline.make_train_iterator = make_emulated


def main(argv):
    if _NAN_AT.value:
        _inject_nan(_NAN_AT.value)
    if _ENOSPC_AT.value:
        _break_json_write(_ENOSPC_AT.value, _enospc)
    if _HANG_AT.value:
        _break_json_write(_HANG_AT.value, _never)
    if _RECORD.value:
        _record_indices(_RECORD.value)
    if _EMULATE.value:
        _emulate_processes(_EMULATE.value)
    if _DELAY.value:
        _slow_reads(_DELAY.value)
    run.main(argv)


if __name__ == "__main__":
    app.run(main)
