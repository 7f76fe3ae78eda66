"""What the studio's tests share: photos as upload bytes, and a real server in a thread."""

from __future__ import annotations

import io
import socket
import threading
import time

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
