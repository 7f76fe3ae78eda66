"""`inference.pipeline.process`: outcomes in job order whatever finishes first, a bad input
or a failing batch costs only itself, memory stays bounded, and stopping early stops the
work. A stand-in colouriser (no model) makes the timing and the failures controllable."""

from __future__ import annotations

import threading
import time
import types

import numpy as np

from jaxcolor.inference import pipeline
from jaxcolor.inference.photo import InputImageError, Photo


class FakeColorizer:
    """prepare/submit/fetch/finish like `Colorizer`: a photo's "colour" is its pixels + 1;
    a batch holding a photo whose pixels are `poison` fails on the device."""

    def __init__(self, batch_size: int = 4, poison: int | None = None):
        self.batch_size, self.poison = batch_size, poison
        self.batches: list[int] = []

    def prepare(self, photo):
        return types.SimpleNamespace(photo=photo)

    def submit(self, prepared):
        self.batches.append(len(prepared))
        return FakeBatch(list(prepared), self.poison)


class FakeBatch:
    def __init__(self, prepared, poison):
        self.photos, self.poison = [p.photo for p in prepared], poison

    def fetch(self):
        if any(p.pixels[0, 0] == self.poison for p in self.photos):
            raise RuntimeError("RESOURCE_EXHAUSTED: out of memory")

    def finish(self, i):
        return self.photos[i].pixels + 1


def job(k: int, *, delay: float = 0.0, bad: bool = False, log: list | None = None):
    def load():
        if log is not None:
            log.append(k)
        time.sleep(delay)
        if bad:
            raise InputImageError(f"photo {k}: damaged")
        return Photo(np.full((8, 8), k, np.uint8))

    return pipeline.Job(f"photo{k}", load, lambda colour, extra: int(colour[0, 0]))


def test_outcomes_keep_the_order_of_the_jobs():
    rng = np.random.default_rng(0)
    jobs = [job(k, delay=float(rng.uniform(0, 0.02))) for k in range(23)]
    outcomes = list(pipeline.process(FakeColorizer(), jobs, workers=4))
    assert [o.job.label for o in outcomes] == [f"photo{k}" for k in range(23)]
    assert [o.value for o in outcomes] == [k + 1 for k in range(23)]


def test_a_bad_input_costs_only_itself_and_keeps_its_place():
    """A damaged input fails at once, before the photos ahead of it in its batch are
    coloured; its outcome still comes in its place."""
    jobs = [job(k, bad=(k == 5)) for k in range(12)]
    outcomes = list(pipeline.process(FakeColorizer(), jobs, workers=2,
                                     read_errors=(InputImageError,)))
    assert [o.job.label for o in outcomes] == [f"photo{k}" for k in range(12)]
    assert [(o.job.label, o.error) for o in outcomes if not o.ok] == [
        ("photo5", "photo 5: damaged")]
    assert [o.value for o in outcomes if o.ok] == [k + 1 for k in range(12) if k != 5]


def test_a_batch_that_fails_on_the_device_is_retried_photo_by_photo():
    colorizer = FakeColorizer(batch_size=4, poison=13)
    outcomes = list(pipeline.process(colorizer, [job(k) for k in range(10, 18)], workers=2))
    assert [(o.job.label, o.error) for o in outcomes if not o.ok] == [
        ("photo13", "RESOURCE_EXHAUSTED: out of memory")]
    assert [o.value for o in outcomes if o.ok] == [11, 12, 13, 15, 16, 17, 18]
    assert colorizer.batches == [4, 4, 1, 1, 1, 1]  # the failing batch, again one by one


def test_decoding_runs_a_bounded_distance_ahead_and_stops_when_the_caller_does():
    started = []
    jobs = (job(k, log=started) for k in range(1000))  # a generator: a huge archive
    outcomes = pipeline.process(FakeColorizer(batch_size=2), jobs, workers=2)
    first = next(outcomes)
    assert first.value == 1
    time.sleep(0.1)
    assert len(started) <= 2 * pipeline.AHEAD_BATCHES * 2 + 4  # never the whole archive
    outcomes.close()
    settled = len(started)
    time.sleep(0.1)
    assert len(started) == settled  # nothing more is decoded after the caller stopped


def test_work_spreads_over_the_worker_threads():
    seen = set()

    def finish(colour, extra):
        seen.add(threading.current_thread().name)
        time.sleep(0.01)
        return 0

    jobs = [pipeline.Job(f"p{k}", job(k).load, finish) for k in range(16)]
    assert all(o.ok for o in pipeline.process(FakeColorizer(), jobs, workers=3))
    assert len(seen) >= 2 and threading.current_thread().name not in seen


def test_photos_of_unknown_size_are_bounded_once_decoded(monkeypatch):
    monkeypatch.setattr(pipeline, "CHUNK_PIXELS", 3 * 64)  # three 8x8 photos' worth
    monkeypatch.setattr(pipeline, "PIXEL_BUDGET", 12 * 64)
    started = []
    outcomes = pipeline.process(FakeColorizer(batch_size=8), (job(k, log=started)
                                                              for k in range(200)), workers=2)
    assert next(outcomes).value == 1
    time.sleep(0.1)
    # Photos held (loaded, not yet out): the budget's twelve, and one per worker still
    # loading (their size is not known before); count alone would allow two batches of 8
    # ahead.
    assert len(started) - 1 <= 12 + 2, len(started)
    assert [o.value for o in outcomes] == list(range(2, 201))  # and nothing is lost


class InFlight:
    """Pixels of the photos whose load has started and whose outcome is not yet out, seen
    each time a load starts."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pixels, self.photos, self.seen = 0, 0, []

    def job(self, k: int, side: int) -> pipeline.Job:
        def load():
            with self.lock:
                self.pixels += side * side
                self.photos += 1
                self.seen.append((self.pixels, self.photos))
            time.sleep(0.005)  # decoding takes a while: the workers overlap
            return Photo(np.full((side, side), k % 250, np.uint8))

        return pipeline.Job(f"photo{k}", load, lambda colour, extra: side,
                            area=lambda: side * side)

    def out(self, outcome: pipeline.Outcome) -> int:
        with self.lock:
            self.pixels -= outcome.value * outcome.value
            self.photos -= 1
        return outcome.value


def test_the_pixel_budget_bounds_the_photos_in_flight(monkeypatch):
    """Photos of 100..900 pixels against a budget of 1000, four workers: what is in flight,
    from a photo's load to its outcome, never holds more; a photo of 1600 pixels goes
    through alone, and nothing waits for ever."""
    monkeypatch.setattr(pipeline, "PIXEL_BUDGET", 1000)
    rng = np.random.default_rng(0)
    sides = [int(s) for s in rng.integers(10, 31, 60)]
    sides[30] = 40
    flight = InFlight()
    jobs = [flight.job(k, side) for k, side in enumerate(sides)]
    values = []
    worker = threading.Thread(target=lambda: values.extend(
        flight.out(o) for o in pipeline.process(FakeColorizer(batch_size=4), jobs,
                                                workers=4)))
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive() and values == sides
    assert max(photos for _, photos in flight.seen) >= 2  # loads overlapped
    over = [(pixels, photos) for pixels, photos in flight.seen if pixels > 1000]
    assert over == [(1600, 1)], over
