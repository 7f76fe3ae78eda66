"""What the studio's tests share: photos as upload bytes, a request and the checks of its
answer, and a real server in a thread."""

from __future__ import annotations

import io
import socket
import struct
import threading
import time
import zlib

import numpy as np
import uvicorn
from PIL import Image

from tests.support import photo_rgb


def encoded(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    """uint8 pixels as the bytes of an image file."""
    stream = io.BytesIO()
    Image.fromarray(pixels).save(stream, fmt)
    return stream.getvalue()


def gray_photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A gray uint8 photo with structure: the luminance of a colourful test photo."""
    rgb = photo_rgb(height, width, seed)
    return np.asarray(Image.fromarray(rgb).convert("L"))


def png_declaring(width: int, height: int) -> bytes:
    """A ~100-byte PNG whose header declares width x height gray pixels (a bomb's header):
    its one data chunk holds a few rows."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    rows = zlib.compress(b"\x00" * (width + 1) * 4)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0,
                                                              0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


def post(client, image: bytes, name: str = "photo.png", **fields):
    """POST /api/colorize with `image` as the file and `fields` as the form's text fields."""
    return client.post("/api/colorize", files={"image": (name, image, "image/png")},
                       data={k: str(v) for k, v in fields.items()})


def decoded(response) -> np.ndarray:
    """The pixels of an answer's image."""
    return np.asarray(Image.open(io.BytesIO(response.content)))


def refused(response, status: int, *words: str) -> str:
    """Check an error answer: `status`, the API's JSON shape, one line holding `words`."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json"
    message = response.json()["error"]
    assert message and "\n" not in message
    for word in words:
        assert word in message, message
    return message


class LiveServer:
    """uvicorn serving `app` on a free loopback port, in a thread (as `jaxcolor serve` does,
    minus the signal handlers, which belong to the main thread)."""

    def __init__(self, app):
        listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [listener]},
                                       daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)
