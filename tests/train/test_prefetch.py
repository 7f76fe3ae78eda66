"""`train.prefetch.DevicePrefetch`: batches made ahead in a thread, in order, with the
iterator state of what the trainer actually took (so a checkpoint resumes exactly)."""

import threading
import time

import pytest

from jaxcolor.train.prefetch import DevicePrefetch


class Counter:
    """A Grain-like iterator: batch k is {"k": k}; its state is the next k."""

    def __init__(self, stop_at: int | None = None, fail_at: int | None = None):
        self.k, self.stop_at, self.fail_at = 0, stop_at, fail_at

    def __next__(self):
        if self.k == self.fail_at:
            raise OSError(f"record {self.k}: unreadable")
        if self.k == self.stop_at:
            raise StopIteration
        self.k += 1
        return {"k": self.k - 1}

    def get_state(self):
        return {"k": self.k}

    def set_state(self, state):
        self.k = state["k"]


def on_device(local):
    return {"k": local["k"], "thread": threading.current_thread().name}


def test_batches_arrive_in_order_from_a_background_thread():
    it = DevicePrefetch(Counter(), on_device, depth=2)
    got = [next(it) for _ in range(5)]
    assert [b["k"] for b in got] == [0, 1, 2, 3, 4]
    assert {b["thread"] for b in got} == {"device-prefetch"}
    it.close()


def test_the_state_is_that_of_the_last_batch_taken_not_of_the_queue():
    it = DevicePrefetch(Counter(), on_device, depth=3)
    for _ in range(3):
        next(it)
    time.sleep(0.2)  # the thread has read ahead by now
    state = it.get_state()
    it.close()
    resumed = DevicePrefetch(Counter(), on_device)
    resumed.set_state(state)  # what Grain's CheckpointRestore does
    assert next(resumed)["k"] == 3  # exactly the next step's batch
    resumed.close()


def test_the_saved_state_is_grains_json():
    it = DevicePrefetch(Counter(), on_device)
    next(it)
    assert it.get_state().decode().replace(" ", "").replace("\n", "") == '{"k":1}'
    it.close()


def test_an_error_in_the_thread_reaches_the_trainer_and_the_end_is_the_end():
    failing = DevicePrefetch(Counter(fail_at=2), on_device)
    assert [next(failing)["k"] for _ in range(2)] == [0, 1]
    with pytest.raises(OSError, match="record 2: unreadable"):
        next(failing)
    with pytest.raises(OSError):  # and again: the error is not lost
        next(failing)
    failing.close()
    finite = DevicePrefetch(Counter(stop_at=1), on_device)
    assert list(finite) == [{"k": 0, "thread": "device-prefetch"}]
    finite.close()


def test_close_stops_a_producer_blocked_on_a_full_queue():
    it = DevicePrefetch(Counter(), on_device, depth=1)
    next(it)
    time.sleep(0.2)
    it.close()
    assert not it._thread.is_alive()
    with pytest.raises(RuntimeError, match="after batches were prefetched"):
        it.set_state(b'{"k": 0}')
