"""One Colorizer shared by every request of the studio: `Engine`.

A request is *admitted* before its body is read, or refused at once with 503 (`Busy`) when
`capacity` requests are already in the house: what the server holds (uploads, decoded photos,
results waiting to be encoded) is bounded by `capacity` requests of at most the size limits,
however many clients call at once.

An admitted photo goes through the Colorizer's three stages (`Colorizer.prepare` / `submit`
+ `fetch` / `finish`) as `jaxcolor colorize` sends it, so the studio's colours are the
command's:

  host threads   decode, `prepare` (render-size L), and after G `finish` (full-resolution
                 compose) and encode; at most `workers` at once (anyio's thread pool with a
                 limiter), the event loop never blocks on pixels
  model thread   the only caller of G: it takes whatever photos are waiting, up to the
                 Colorizer's batch size, and runs them as one batch (batches form by
                 themselves under load and cost nothing when a photo comes alone); a batch
                 that fails is retried photo by photo, so one bad photo fails only its own
                 request

A photo's colour hints ride on it (`Photo.hints`): `prepare` rasterises them, and hinted
photos are batched like any other (every model follows hints: `inference.spread`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import queue
import threading
from typing import Any, Callable

import anyio
import numpy as np

from jaxcolor.errors import RunError
from jaxcolor.inference.colorizer import Colorizer
from jaxcolor.inference.hints import Hint
from jaxcolor.inference.photo import Photo


class Busy(RunError):
    """Every place in the queue is taken: the client should try again shortly."""

    status = 503


_STOP = object()


class Engine:
    """Admission, host threads and the model thread around `colorizer` (module docstring).

    Create it inside the event loop that serves the requests (anyio's limiter belongs to
    it); `close` stops the model thread.
    """

    def __init__(self, colorizer: Colorizer, *, capacity: int, workers: int):
        self.colorizer = colorizer
        self.capacity = capacity
        self._admitted = 0
        self._host = anyio.CapacityLimiter(workers)
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="jaxcolor-model", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def admit(self):
        """Hold one of the `capacity` places for the duration of a request, or raise `Busy`.
        Only the event loop's thread calls this, so a plain counter is enough."""
        if self._admitted >= self.capacity:
            raise Busy(f"busy: {self.capacity} requests are being served; try again shortly")
        self._admitted += 1
        try:
            yield
        finally:
            self._admitted -= 1

    async def on_host(self, fn: Callable[..., Any], *args) -> Any:
        """`fn(*args)` on one of the host threads."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._host)

    async def colorize(self, photo: Photo, hints: list[Hint]) -> np.ndarray:
        """The colour photo (uint8 RGB, or RGBA with the photo's alpha) at the photo's size."""
        if hints:
            photo = dataclasses.replace(photo, hints=tuple(hints))
        prepared = await self.on_host(self.colorizer.prepare, photo)
        batch, index = await self._on_model(prepared)
        return await self.on_host(batch.finish, index)

    def close(self) -> None:
        """Stop the model thread once the photos already queued are done."""
        self._jobs.put(_STOP)
        self._thread.join()

    # -- the model thread -------------------------------------------------------------------

    async def _on_model(self, item) -> Any:
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._jobs.put((item, future))
        return await asyncio.wrap_future(future)

    def _serve(self) -> None:
        while True:
            waiting = self._take()
            if waiting is None:
                return
            self._run_batch(waiting)

    def _take(self) -> list | None:
        """The next job, and those waiting behind it up to a batch; None to stop."""
        first = self._jobs.get()
        if first is _STOP:
            return None
        waiting = [first]
        while len(waiting) < self.colorizer.batch_size:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                self._jobs.put(_STOP)  # stop after this batch
                break
            waiting.append(job)
        return waiting

    def _run_batch(self, jobs: list) -> None:
        """G on the prepared photos of `jobs`; each future gets (batch, its index) for
        `finish`. A failed batch is retried photo by photo."""
        try:
            batch = self.colorizer.submit([prepared for prepared, _ in jobs])
            batch.fetch()
        except Exception as e:  # noqa: BLE001 - the request answers with it
            if len(jobs) > 1:
                for job in jobs:
                    self._run_batch([job])
            else:
                _fail(jobs[0][1], e)
            return
        for index, (_, future) in enumerate(jobs):
            if future.set_running_or_notify_cancel():
                future.set_result((batch, index))


def _fail(future: concurrent.futures.Future, error: Exception) -> None:
    if future.set_running_or_notify_cancel():
        future.set_exception(error)
