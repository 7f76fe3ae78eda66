"""Training batches put on the devices ahead of the step, off the training thread.

Making a global batch (`pipeline.make_global_batch`) copies this process's uint8 batch into
device memory: a host copy of the whole batch before the transfer starts. Done on the
training thread between two steps it delays the next dispatch and leaves the device idle;
here a background thread does it `depth` batches ahead, so the training thread only takes
ready device arrays and dispatches.

Resuming stays exact: each batch travels with the Grain iterator state *after* it was read,
and `get_state` reports the state after the last batch the trainer took, not after the
batches still waiting in the queue, so a checkpoint restarts the data exactly at the next
step's batch. The object stands in for the Grain iterator in Orbax checkpoints
(`grain.checkpoint.CheckpointSave/CheckpointRestore`: JSON bytes, as for Grain's other
iterators), and the saved files are the same as the plain iterator's.
"""

from __future__ import annotations

import json
import queue
import threading
from typing import Callable

import jax


class _Done:
    """Queued by the producer when it stops: the error it met, if any."""

    def __init__(self, error: BaseException | None = None):
        self.error = error


class DevicePrefetch:
    """An iterator of global device batches made from `iterator` by `to_device` in a
    background thread, `depth` ahead. Starts at the first `next`, after any `set_state`."""

    def __init__(self, iterator, to_device: Callable[[dict], dict[str, jax.Array]], *,
                 depth: int = 2):
        self._iterator, self._to_device, self._depth = iterator, to_device, max(1, depth)
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._state = iterator.get_state()  # after the last batch the trainer took

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, jax.Array]:
        if self._thread is None:
            self._start()
        item = self._queue.get()
        if isinstance(item, _Done):
            self._queue.put(item)  # every later `next` sees it too
            if item.error is not None:
                raise item.error
            raise StopIteration
        self._state, batch = item
        return batch

    def _start(self) -> None:
        self._queue = queue.Queue(maxsize=self._depth)
        self._thread = threading.Thread(target=self._produce, name="device-prefetch",
                                        daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        try:
            while not self._stop.is_set():
                local = next(self._iterator)
                item = (self._iterator.get_state(), self._to_device(local))
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except StopIteration:
            self._queue.put(_Done())
        except BaseException as e:  # reaches the training thread at its next `next`
            self._queue.put(_Done(e))

    # -- Grain's checkpoint protocol (JSON bytes) ------------------------------------------

    def get_state(self) -> bytes:
        return json.dumps(self._state, indent=4).encode()

    def set_state(self, state: bytes) -> None:
        if self._thread is not None:
            raise RuntimeError("DevicePrefetch.set_state after batches were prefetched")
        self._state = json.loads(state)
        self._iterator.set_state(self._state)

    def start_prefetch(self) -> None:
        """Called by Grain's restore; prefetching starts at the first `next`."""

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            while self._thread.is_alive():
                try:  # unblock a producer waiting on a full queue
                    self._queue.get_nowait()
                except queue.Empty:
                    self._thread.join(timeout=0.1)
        close = getattr(self._iterator, "close", None)
        if close is not None:
            close()
