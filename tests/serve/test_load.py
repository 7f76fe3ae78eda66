"""Many clients of one real server (uvicorn in a thread): batches form under load with the
same colours, a full queue answers 503 and the server goes on, and a bad request (garbage,
a cut-off upload, a photo that breaks its batch) fails alone."""

from __future__ import annotations

import concurrent.futures
import socket
import threading
import time

import httpx2
import numpy as np
import pytest

from jaxcolor.inference.colorizer import Colorizer
from tests.serve.support import decoded, encoded, gray_photo, png_declaring, refused

WAIT_S = 120


class Gated(Colorizer):
    """The tiny model whose G waits for `release` (once `entered`), so requests pile up
    behind it; records each batch's size; a photo `poison_width` wide breaks its batch."""

    def __init__(self, base: Colorizer, poison_width: int | None = None):
        super().__init__(base.graphdef, base.variables, base.config, step=base.step,
                         backend="jax")
        self.entered, self.release = threading.Event(), threading.Event()
        self.prepared, self.batches, self.poison_width = [], [], poison_width

    def prepare(self, photo):
        prepared = super().prepare(photo)
        self.prepared.append(photo.size)  # list.append: atomic across the host threads
        return prepared

    def submit(self, prepared):
        self.entered.set()
        assert self.release.wait(WAIT_S)
        self.batches.append(len(prepared))
        if any(p.photo.size[1] == self.poison_width for p in prepared):
            raise RuntimeError("this photo breaks its batch")
        return super().submit(prepared)

    def wait_prepared(self, count: int) -> None:
        deadline = time.monotonic() + WAIT_S
        while len(self.prepared) < count:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.3)  # from prepare into the model's queue


def colorize(server, image: bytes, **fields):
    return httpx2.post(f"{server.url}/api/colorize", files={"image": ("p.png", image)},
                       data={k: str(v) for k, v in fields.items()}, timeout=WAIT_S)


def test_clients_at_once_share_batches_and_get_their_own_colours(live_server,
                                                                  studio_colorizer):
    gated = Gated(studio_colorizer)
    server = live_server(gated, queue=8)
    photos = [encoded(gray_photo(60 + 8 * i, 40, seed=i)) for i in range(6)]
    alone = []
    gated.release.set()
    for photo in photos:
        alone.append(decoded(colorize(server, photo)))
    gated.release.clear()
    gated.entered.clear()
    gated.prepared, gated.batches = [], []
    with concurrent.futures.ThreadPoolExecutor(len(photos)) as pool:
        first = pool.submit(colorize, server, photos[0])
        assert gated.entered.wait(WAIT_S)
        rest = [pool.submit(colorize, server, photo) for photo in photos[1:]]
        gated.wait_prepared(len(photos))
        gated.release.set()
        responses = [first.result()] + [f.result() for f in rest]
    assert [r.status_code for r in responses] == [200] * len(photos)
    assert max(gated.batches) > 1, gated.batches  # the waiting photos went through together
    for response, expected in zip(responses, alone):
        got = decoded(response)
        assert got.shape == expected.shape
        assert np.abs(got.astype(int) - expected).max() <= 1  # batch size moves float rounding


def test_a_full_queue_answers_503_and_the_server_goes_on(live_server, studio_colorizer):
    gated = Gated(studio_colorizer)
    server = live_server(gated, queue=1)
    photo = encoded(gray_photo(60, 40))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(colorize, server, photo)
        assert gated.entered.wait(WAIT_S)
        busy = colorize(server, photo)
        refused(busy, 503, "busy")
        assert busy.headers["retry-after"] == "1"
        assert httpx2.get(f"{server.url}/api/health").status_code == 200  # not queued
        gated.release.set()
        assert waiting.result().status_code == 200
    assert colorize(server, photo).status_code == 200


def test_a_photo_that_breaks_its_batch_fails_alone(live_server, studio_colorizer):
    gated = Gated(studio_colorizer, poison_width=13)
    server = live_server(gated, queue=8)
    good, poison = encoded(gray_photo(60, 40)), encoded(gray_photo(13, 40))
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        first = pool.submit(colorize, server, good)
        assert gated.entered.wait(WAIT_S)
        rest = [pool.submit(colorize, server, photo) for photo in (poison, good, good)]
        gated.wait_prepared(4)
        gated.release.set()
        statuses = [f.result().status_code for f in [first, *rest]]
    assert 3 in gated.batches, gated.batches  # poison and two good ones, then one by one
    assert statuses == [200, 500, 200, 200]


@pytest.mark.parametrize("bad, status", [
    (b"not an image at all", 415), (png_declaring(100_000, 100_000), 413)])
def test_bad_requests_among_good_ones_change_nothing_for_the_good(live_server, bad, status):
    server = live_server(queue=16)
    good = encoded(gray_photo(60, 40))
    expected = decoded(colorize(server, good))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(colorize, server, photo) for photo in [good, bad] * 4]
        responses = [f.result() for f in futures]
    for response in responses[0::2]:
        np.testing.assert_array_equal(decoded(response), expected)
    for response in responses[1::2]:
        refused(response, status)


def test_an_upload_cut_off_midway_frees_its_place(live_server):
    server = live_server(queue=1)
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=WAIT_S) as raw:
        raw.sendall(b"POST /api/colorize HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: multipart/form-data; boundary=b\r\n"
                    b"Content-Length: 100000\r\n\r\n--b\r\nContent-Disposition: form-data; "
                    b"name=\"image\"; filename=\"a.png\"\r\n\r\n" + b"\x89PNG" * 100)
        time.sleep(0.5)  # the server is reading the body: its one place is taken
    deadline = time.monotonic() + WAIT_S
    while (response := colorize(server, encoded(gray_photo(60, 40)))).status_code == 503:
        assert time.monotonic() < deadline  # the place comes back once the cut is seen
        time.sleep(0.1)
    assert response.status_code == 200
