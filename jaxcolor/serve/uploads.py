"""A request's form -> what to colourise (`read_order`), and the answer's bytes (`encode`).

`POST /api/colorize` takes multipart/form-data with these fields and no others:

  image    the photo file: any format `jaxcolor colorize` reads
  hints    optional: a JSON list of hints for this photo, in the format of
           `jaxcolor.inference.hints` (the photo's own pixel coordinates)
  format   optional: png (default) or jpg
  preview  optional: a whole number of pixels; the result is at most that long on its long
           side (the photo is downscaled first, never enlarged; hints are scaled with it).
           The network sees the render size either way, so a preview costs G's pass plus a
           small compose; without it, the result has the photo's full size

Limits, each refused before the work it would cost: the body's bytes (counted as they
arrive, whatever Content-Length says) and the photo's pixels (read from its header, before
decoding: a small PNG that declares 100000 x 100000 pixels is refused unread).

No name from the client ever reaches the file system: each upload is copied into a private
directory (mode 0700, removed when the server stops) under a name the server makes, decoded
there by `jaxcolor.inference.files.load_photo_file` (exactly as `jaxcolor colorize` decodes
a file: EXIF rotation, ICC profiles, alpha, 16-bit) and deleted. Starlette's form parser
keeps a file part in memory up to 1 MB and beyond that in an anonymous temporary file, which
has no name on disk and is gone when closed.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from starlette.datastructures import UploadFile
from starlette.requests import Request

from jaxcolor.data import images
from jaxcolor.errors import UsageError
from jaxcolor.inference import files
from jaxcolor.inference import hints as hints_lib
from jaxcolor.inference.photo import MIN_SIDE, Photo

FIELDS = ("image", "hints", "format", "preview")
FORMATS = {"png": ".png", "jpg": ".jpg"}
MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg"}
PREVIEW_SIDES = (16, 4096)
"""The smallest and largest `preview` a request may ask for."""
MAX_HINTS_BYTES = 2**20
"""The largest `hints` field: ~15 000 hints."""


class RequestError(UsageError):
    """A request that cannot be served as sent: a missing or bad field (400)."""

    status = 400


class TooLarge(RequestError):
    """An upload over the byte or pixel limit (413)."""

    status = 413


class NotAnImage(RequestError):
    """A body or file that is not an image the decoder can read (415)."""

    status = 415


@dataclasses.dataclass(frozen=True)
class Order:
    """One photo to colourise, read from a request."""

    photo: Photo  # downscaled for a preview
    size: tuple[int, int]  # the uploaded photo's (width, height)
    hints: list[hints_lib.Hint]  # in `photo`'s coordinates
    format: str  # a key of FORMATS


class UploadDir:
    """The private directory where an upload lies while it is decoded (module docstring)."""

    def __init__(self):
        self._dir = tempfile.TemporaryDirectory(prefix="jaxcolor-serve-")
        self._names = itertools.count()  # next() is atomic: threads never share a name

    def decode(self, upload, label: str, max_pixels: int) -> Photo:
        """The photo in the binary file `upload`, decoded as `jaxcolor colorize` decodes."""
        path = Path(self._dir.name) / f"upload-{next(self._names)}"
        try:
            with open(path, "xb") as copy:
                shutil.copyfileobj(upload, copy)
            return _decode(path, label, max_pixels)
        finally:
            path.unlink(missing_ok=True)

    def close(self) -> None:
        self._dir.cleanup()


def _decode(path: Path, label: str, max_pixels: int) -> Photo:
    try:
        with Image.open(path) as image:  # reads the header only
            width, height = image.size
    except Image.DecompressionBombError as e:
        raise TooLarge(f"{label}: too large ({e})") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise NotAnImage(f"{label}: not an image (no decoder recognises the file)") from None
    if width * height > max_pixels:
        raise TooLarge(f"{label}: {width}x{height} = {width * height} pixels exceeds the "
                       f"limit of {max_pixels}")
    try:
        return files.load_photo_file(path, max_pixels)
    except images.ImageDecodeError as e:
        raise NotAnImage(f"{label}: {e.reason}") from None


def limit_body(request: Request, max_bytes: int) -> Request:
    """The request with its body counted as it arrives: `TooLarge` past `max_bytes` (and at
    once when Content-Length says so)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(f"the upload is {int(declared)} bytes, over the limit of {max_bytes}")
    seen = 0

    async def receive():
        nonlocal seen
        message = await request.receive()
        seen += len(message.get("body", b""))
        if seen > max_bytes:
            raise TooLarge(f"the upload is over the limit of {max_bytes} bytes")
        return message

    return Request(request.scope, receive)


async def read_order(request: Request, uploads: UploadDir, max_pixels: int, on_host) -> Order:
    """Parse and check the form (module docstring); `on_host` runs decoding off the loop."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "multipart/form-data":
        raise NotAnImage("expected multipart/form-data with the photo in the 'image' field")
    async with request.form(max_files=1, max_fields=len(FIELDS),
                            max_part_size=MAX_HINTS_BYTES) as form:
        unknown = sorted(set(form) - set(FIELDS))
        if unknown:
            raise RequestError(f"unknown field(s) {', '.join(unknown)}; the fields are "
                               f"{', '.join(FIELDS)}")
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            raise RequestError("the 'image' field must be a file (the photo)")
        fmt = _text(form, "format", "png")
        if fmt not in FORMATS:
            raise RequestError(f"format must be png or jpg, got {fmt!r}")
        preview = _preview(_text(form, "preview", None))
        hints_json = _text(form, "hints", None)
        label = _label(upload.filename)
        photo = await on_host(uploads.decode, upload.file, label, max_pixels)
    height, width = photo.size
    hints = _hints(hints_json, width, height)
    if preview is not None and max(width, height) > preview:
        photo = await on_host(downscale, photo, preview)
        hints = scale_hints(hints, (width, height), photo.size[::-1])
    return Order(photo, (width, height), hints, fmt)


def _text(form, field: str, default: str | None) -> str | None:
    value = form.get(field, default)
    if isinstance(value, UploadFile):
        raise RequestError(f"the {field!r} field must be text, not a file")
    return value


def _label(filename: str | None) -> str:
    """How messages name the upload: its file name without folders (never used as a path)."""
    return (filename or "").replace("\\", "/").rsplit("/", 1)[-1][:200] or "the upload"


def _preview(value: str | None) -> int | None:
    if value is None:
        return None
    low, high = PREVIEW_SIDES
    if not value.strip().isdigit() or not low <= int(value) <= high:
        raise RequestError(f"preview must be a whole number of pixels from {low} to {high}, "
                           f"got {value[:40]!r}")
    return int(value)


def _hints(text: str | None, width: int, height: int) -> list[hints_lib.Hint]:
    if text is None:
        return []
    try:
        entries = json.loads(text)
    except ValueError as e:
        raise hints_lib.HintError(f"hints: not JSON ({e})") from None
    hints = hints_lib.parse(entries, "hints")
    hints_lib.check_inside(hints, width, height, "hints")
    return hints


def downscale(photo: Photo, long_side: int) -> Photo:
    """The photo (and its alpha) resized so its long side is `long_side`, aspect kept."""
    height, width = photo.size
    scale = long_side / max(height, width)
    size = (max(MIN_SIDE, round(width * scale)), max(MIN_SIDE, round(height * scale)))

    def resize(plane: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(plane).resize(size, Image.Resampling.LANCZOS,
                                                         reducing_gap=3.0))

    return Photo(resize(photo.pixels), None if photo.alpha is None else resize(photo.alpha))


def scale_hints(hints: list[hints_lib.Hint], size: tuple[int, int],
                new_size: tuple[int, int]) -> list[hints_lib.Hint]:
    """Hints placed on a (width, height) photo, moved onto the same photo resized to
    `new_size` (pixel centres map to pixel centres; the radius scales with the width)."""
    sx, sy = new_size[0] / size[0], new_size[1] / size[1]
    return [dataclasses.replace(h, x=min(max((h.x + 0.5) * sx - 0.5, 0), new_size[0] - 1),
                                y=min(max((h.y + 0.5) * sy - 0.5, 0), new_size[1] - 1),
                                radius=h.radius * sx) for h in hints]


def encode(pixels: np.ndarray, fmt: str) -> bytes:
    """The answer's image bytes, encoded as `jaxcolor colorize` writes its files."""
    stream = io.BytesIO()
    files.encode_image(pixels, FORMATS[fmt], stream)
    return stream.getvalue()
