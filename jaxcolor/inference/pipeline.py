"""Colourise a stream of inputs on every core and the device at once: `process`.

Three stages overlap, so that while batch k runs on the device, the photos of batch k+1 are
decoded and batch k-1 is written:

  workers (threads)   decode a job's input and prepare it for the network (render-size L,
                      tiles for the device compose): `Job.load`, `Colorizer.prepare`
  this thread         cut the stream into batches (`batch_size` photos, or fewer when their
                      pixels reach `CHUNK_PIXELS`), `Colorizer.submit` batch k (returns while
                      the device works), then `fetch` batch k-1's results
  workers (threads)   finish each photo (host compose where it runs on the host, alpha) and
                      hand it to `Job.finish` (encode and write, or measure)

Threads, not processes: Pillow's decoders, encoders and resampling, numpy and JAX release
the GIL for their work, and threads share the decoded photos without copying (the figures
are in BENCHMARKS.md).

Memory stays bounded whatever the number and size of the inputs. A job is admitted (its
load started) only while the photos in flight, from their load to their outcome, hold at
most `PIXEL_BUDGET` full-resolution pixels with it; a photo larger than the budget runs
alone, and admission waits by giving back the oldest outcome, finishing the batch on the
device, or sending the batch being formed, in that order (the last only ever for a photo
larger than the budget less a batch, so batches are the same in every run). A job tells
its size before it is decoded (`Job.area`: an image header, a film's frame size); one that
cannot is counted once decoded, so the budget may then be passed by the loads in progress,
one photo per worker at most. Within it, at most `AHEAD_BATCHES` batches' worth of photos
are decoded ahead and as many wait to be finished, and a batch holds at most
`CHUNK_PIXELS` pixels.

Outcomes come back in the order of the jobs, whatever finished first; a job whose input
cannot be read, coloured or finished becomes a failed outcome with the reason, and the rest
go on. A batch that fails on the device is retried photo by photo, so one bad photo costs
only itself.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import os
from typing import Any, Callable, Iterable, Iterator

from jaxcolor.inference.colorizer import Colorizer

CHUNK_PIXELS = 2**27  # full-resolution pixels in one batch, whatever the batch size
PIXEL_BUDGET = 2**29  # full-resolution pixels of the photos in flight (four batches' worth)
AHEAD_BATCHES = 2  # batches decoded ahead of the device, and waiting to be finished
COLORIZE_ERRORS = (ValueError, MemoryError, RuntimeError)  # RuntimeError: XLA out of memory


def default_workers() -> int:
    """Every core: decoding and encoding are the host's share of the work."""
    return os.cpu_count() or 1


@dataclasses.dataclass(frozen=True)
class Job:
    """One input. `load` (in a worker) decodes it: a `Photo`, or (Photo, extra); `finish`
    (in a worker) takes the colour photo (uint8 RGB or RGBA) and the extra, and returns the
    job's value (e.g. the path written, or the metrics). `area` (in this thread, before the
    load) gives the photo's pixel count cheaply, so the pixel budget can admit the job
    before its pixels exist (see the module docstring)."""

    label: str
    load: Callable[[], Any]
    finish: Callable[[Any, Any], Any]
    area: Callable[[], int | None] | None = None  # pixels, read without decoding (or None)


@dataclasses.dataclass(frozen=True)
class Outcome:
    job: Job
    value: Any = None
    exception: BaseException | None = None  # why the job failed, if it did

    @property
    def ok(self) -> bool:
        return self.exception is None

    @property
    def error(self) -> str | None:
        """The reason to report, when the job failed."""
        return None if self.exception is None else reason(self.exception)


def reason(e: BaseException) -> str:
    """What to tell the user about a failure: the error's own reason, or its message."""
    return getattr(e, "reason", None) or str(e) or type(e).__name__


class _Failed:
    """A queued result that is already known: the job failed with `exception`."""

    def __init__(self, exception: BaseException):
        self.exception = exception


def process(colorizer: Colorizer, jobs: Iterable[Job], *, workers: int | None = None,
            read_errors: tuple[type[BaseException], ...] = (Exception,),
            finish_errors: tuple[type[BaseException], ...] = (Exception,)) -> Iterator[Outcome]:
    """Outcomes of `jobs`, in their order (see the module docstring). `read_errors` and
    `finish_errors` are what counts as a failure of that job rather than a bug."""
    workers = max(1, workers or default_workers())
    pool = concurrent.futures.ThreadPoolExecutor(workers)
    order: dict[int, int] = {}  # id(job) -> its place in `jobs`

    def numbered():
        for i, job in enumerate(jobs):
            order[id(job)] = i
            yield job

    try:
        run = _Run(colorizer, pool, workers, read_errors, finish_errors)
        yield from _in_order(run.outcomes(numbered()), order)
    finally:  # also when the caller stops early: queued work is dropped, running work ends
        pool.shutdown(wait=True, cancel_futures=True)


def _in_order(outcomes: Iterator[Outcome], order: dict[int, int]) -> Iterator[Outcome]:
    """`outcomes` in job order. A job whose input cannot be read fails before the photos
    ahead of it are coloured; it waits here (a failure holds no pixels) until they are out."""
    waiting: dict[int, Outcome] = {}
    expected = 0
    for outcome in outcomes:
        waiting[order.pop(id(outcome.job))] = outcome
        while expected in waiting:
            yield waiting.pop(expected)
            expected += 1


_RELEASE = object()
"""What `_Run._prepared` yields when the next job does not fit the pixel budget."""


def _busy(loading) -> int:
    """Loads still queued or running: at most one per worker, so that what is decoded ahead
    is bounded by the pixel budget, not by how fast the workers outrun this thread."""
    return sum(not future.done() for _, future, _ in loading)


def _area(job: Job) -> int:
    """The job's pixels as far as they are known before its load (0: counted once loaded)."""
    return (job.area() if job.area is not None else None) or 0


def _pixels(prepared) -> int:
    """Full-resolution pixels of a prepared photo (height x width)."""
    height, width = prepared.photo.size
    return height * width


class _Run:
    """The state of one `process` call: photos being loaded, the batch being formed, the
    batch on the device, photos being finished, and `held`: the pixels of all of them."""

    def __init__(self, colorizer, pool, workers, read_errors, finish_errors):
        self.colorizer, self.pool = colorizer, pool
        self.read_errors, self.finish_errors = read_errors, finish_errors
        self.ahead, self.workers = AHEAD_BATCHES * max(colorizer.batch_size, workers), workers
        self.batch: list = []  # (job, prepared, extra), waiting for the device
        self.on_device = None  # (batch, submitted): results not fetched yet
        self.finishing: collections.deque = collections.deque()  # (job, result, pixels)
        self.held = 0  # pixels of the jobs admitted and not given back as outcomes

    def _load(self, job: Job):
        loaded = job.load()
        photo, extra = loaded if isinstance(loaded, tuple) else (loaded, None)
        return self.colorizer.prepare(photo), extra

    def outcomes(self, jobs: Iterable[Job]) -> Iterator[Outcome]:
        for entry in self._prepared(jobs):
            if entry is _RELEASE:
                yield from self._release()
                continue
            if entry is not None:
                self.batch.append(entry)
                if (len(self.batch) == self.colorizer.batch_size
                        or sum(_pixels(p) for _, p, _ in self.batch) >= CHUNK_PIXELS):
                    self._advance()
            yield from self._done(keep=self.ahead)
        while self.batch or self.on_device is not None:
            self._advance()
        yield from self._done(keep=0)

    def _prepared(self, jobs: Iterable[Job]) -> Iterator[tuple | None | object]:
        """(job, prepared, extra) in job order, loaded up to `ahead` jobs in advance; None for
        a job whose input failed (queued as its outcome); `_RELEASE` while the next job
        does not fit the pixel budget and nothing is loading."""
        loading = collections.deque()  # (job, future, pixels reserved)
        for job in jobs:
            while loading and (loading[0][1].done() or len(loading) >= self.ahead
                               or _busy(loading) >= self.workers):
                yield self._take(*loading.popleft())
            area = _area(job)
            while self.held and self.held + area > PIXEL_BUDGET:
                yield self._take(*loading.popleft()) if loading else _RELEASE
            self.held += area
            loading.append((job, self.pool.submit(self._load, job), area))
        while loading:
            yield self._take(*loading.popleft())

    def _take(self, job: Job, future, reserved: int) -> tuple | None:
        """(job, prepared, extra) of a loaded job, now held at its real size; a failed load
        is queued as its outcome."""
        try:
            prepared, extra = future.result()
        except self.read_errors as e:
            self.held -= reserved
            self._queue(job, _Failed(e), 0)
            return None
        self.held += _pixels(prepared) - reserved
        return job, prepared, extra

    def _queue(self, job: Job, result, pixels: int) -> None:
        self.finishing.append((job, result, pixels))

    def _release(self) -> Iterator[Outcome]:
        """Give back pixels: the oldest outcome, else the batch on the device (fetched and
        sent to be finished), else the batch being formed (sent to the device)."""
        if self.finishing:
            yield from self._done(keep=len(self.finishing) - 1)
        elif self.on_device is not None:
            self._hand_over(*self.on_device)
            self.on_device = None
        else:
            assert self.batch, f"{self.held} pixels held by no photo"
            self._advance()

    def _advance(self) -> None:
        """Submit the batch being formed to the device, then hand the previous batch's
        photos to the workers to finish."""
        submitted = self._submit(self.batch) if self.batch else None
        if self.on_device is not None:
            self._hand_over(*self.on_device)
        self.on_device = None if submitted is None else (self.batch, submitted)
        self.batch = []

    def _submit(self, batch: list):
        try:
            return self.colorizer.submit([prepared for _, prepared, _ in batch])
        except COLORIZE_ERRORS as e:
            return e

    def _hand_over(self, batch: list, submitted) -> None:
        """Fetch a submitted batch's results; queue each photo's finish in a worker. A batch
        that failed is retried one photo at a time."""
        try:
            if isinstance(submitted, BaseException):
                raise submitted
            submitted.fetch()
        except COLORIZE_ERRORS as e:
            if len(batch) == 1:
                self._queue(batch[0][0], _Failed(e), _pixels(batch[0][1]))
                return
            for one in batch:
                self._hand_over([one], self._submit([one]))
            return
        for i, (job, prepared, extra) in enumerate(batch):
            self._queue(job, self.pool.submit(self._finish, job, submitted, i, extra),
                        _pixels(prepared))

    @staticmethod
    def _finish(job: Job, submitted, i: int, extra):
        return job.finish(submitted.finish(i), extra)

    def _done(self, keep: int) -> Iterator[Outcome]:
        """Outcomes at the front of the queue that are ready; waits for more while more than
        `keep` jobs are queued (0 at the end). Each gives its pixels back."""
        while self.finishing:
            job, result, pixels = self.finishing[0]
            failed = isinstance(result, _Failed)
            if not failed and len(self.finishing) <= keep and not result.done():
                return
            self.finishing.popleft()
            self.held -= pixels
            if failed:
                yield Outcome(job, exception=result.exception)
                continue
            try:
                yield Outcome(job, value=result.result())
            except COLORIZE_ERRORS + self.finish_errors as e:
                yield Outcome(job, exception=e)
