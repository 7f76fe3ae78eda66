"""`inference.files`: what the pipeline learns of a photo file before decoding it."""

from __future__ import annotations

import os
import threading

import numpy as np
from PIL import Image

from jaxcolor.inference import files


def test_a_photos_area_comes_from_its_header_and_never_blocks(tmp_path):
    """Width x height for the pixel budget; None for what the load will refuse, and at once
    for a named pipe (opening one waits for a writer that never comes)."""
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "photo.png")
    (tmp_path / "notes.jpg").write_bytes(b"not an image")
    os.mkfifo(tmp_path / "pipe.jpg")
    areas = {}
    reader = threading.Thread(target=lambda: areas.update(
        {name: files.photo_area(tmp_path / name) for name in ("photo.png", "notes.jpg",
                                                              "pipe.jpg")}), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert areas == {"photo.png": 1200, "notes.jpg": None, "pipe.jpg": None}
