"""A generated photo archive from hell: >= 200 files, every kind of broken, odd or hostile
input a user's folder may hold, each labelled with what a well-behaved tool must do with it.

Kinds (expectation):
  valid       odd but good images (CMYK, 16-bit, palette with transparency, animated GIF and
              WebP, huge EXIF, EXIF rotation, unicode and spaced names, PNG data named .jpg):
              must be processed
  invalid     zero-byte files, random bytes with image extensions, image magic followed by
              garbage, valid headers with absurd dimensions and a real decompression bomb,
              symlink loops and dangling links, a named pipe: must fail with a reason (or,
              for things that are not regular files, may be left out)
  damaged     good images truncated at seeded random offsets: each either processed or
              failed with a reason (a truncated animation may still hold a whole frame)
  unreadable  chmod 000 files: invalid for a normal user, valid for root (root reads them)
Everything is a pure function of the seed. No two files share a name stem in one folder,
so tools that name outputs after inputs (colorize) have no collisions to refuse.
"""

from __future__ import annotations

import dataclasses
import io
import os
import random
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

VALID, INVALID, DAMAGED, UNREADABLE = "valid", "invalid", "damaged", "unreadable"
EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


@dataclasses.dataclass(frozen=True)
class Entry:
    path: Path
    kind: str
    regular: bool = True  # a regular file (not a link, pipe or directory)


def _photo(width: int, height: int, seed: int) -> Image.Image:
    """A smooth colour field: cheap, colourful, compresses like a photo."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (3, 4, 3), np.uint8)
    return Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR)


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _frames(n: int, seed: int, size=(40, 30)) -> list[Image.Image]:
    return [_photo(*size, seed + i) for i in range(n)]


def valid_images() -> dict[str, bytes]:
    """name -> bytes of odd-but-good images."""
    photo = _photo(64, 48, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees
    huge_exif = Image.Exif()
    huge_exif[0x9286] = b"ASCII\0\0\0" + b"x" * 60_000  # UserComment, near the 64 KB limit
    palette = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    sixteen = Image.fromarray((np.asarray(photo.convert("L"), np.uint16) * 257))
    gif_frames, webp_frames = _frames(3, 10), _frames(3, 20)
    return {
        "rgb.jpg": _encode(photo, "JPEG", quality=90),
        "gray.png": _encode(photo.convert("L"), "PNG"),
        "gray_alpha.png": _encode(photo.convert("LA"), "PNG"),
        "rgba.png": _encode(photo.convert("RGBA"), "PNG"),
        "palette_transparency.png": _encode(palette, "PNG", transparency=0),
        "palette_transparency_gif.gif": _encode(palette, "GIF", transparency=0),
        "sixteen_bit.png": _encode(sixteen, "PNG"),
        "cmyk.jpg": _encode(photo.convert("CMYK"), "JPEG"),
        "cmyk_tif.tif": _encode(photo.convert("CMYK"), "TIFF"),
        "animated_gif.gif": _encode(gif_frames[0], "GIF", save_all=True,
                                append_images=gif_frames[1:], duration=100, loop=0),
        "animated_webp.webp": _encode(webp_frames[0], "WEBP", save_all=True,
                                 append_images=webp_frames[1:], duration=100),
        "huge_exif.jpg": _encode(photo, "JPEG", exif=huge_exif.tobytes()),
        "exif_rotated.jpg": _encode(photo, "JPEG", exif=exif.tobytes()),
        "photo_webp.webp": _encode(photo, "WEBP"),
        "photo_bmp.bmp": _encode(photo, "BMP"),
        "photo_tiff.tiff": _encode(photo, "TIFF"),
        "UPPER CASE.JPG": _encode(photo, "JPEG"),
        "png data named.jpg": _encode(photo, "PNG"),
        "фото — 東京 1.jpeg": _encode(_photo(50, 70, 3), "JPEG"),
        "emoji 🎨 palette.png": _encode(_photo(33, 31, 4), "PNG"),
        "  leading and trailing spaces  .png": _encode(_photo(40, 40, 5), "PNG"),
        "sub dir/nested/deep photo.jpg": _encode(_photo(48, 64, 6), "JPEG"),
    }


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def _png(width: int, height: int, idat: bytes, color_type: int = 0) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


def png_bomb(side: int = 20_000) -> bytes:
    """A real decompression bomb: a valid gray PNG of side^2 zero pixels (400 MP for 20000),
    about 400 KB on disk."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte + pixels
    parts = [compressor.compress(row) for _ in range(side)]
    parts.append(compressor.flush())
    return _png(side, side, b"".join(parts))


def absurd_headers() -> dict[str, bytes]:
    """Valid-looking headers that promise absurd dimensions, followed by little data."""
    bmp_header = (b"BM" + struct.pack("<IHHI", 1000, 0, 0, 54)
                  + struct.pack("<IiiHHIIiiII", 40, 200_000, 200_000, 1, 24, 0, 0, 0, 0, 0, 0))
    gif = (b"GIF89a" + struct.pack("<HH", 65_535, 65_535) + b"\x00\x00\x00"
           + b"\x2c" + struct.pack("<HHHH", 0, 0, 65_535, 65_535) + b"\x00\x02\x02\x44\x01\x00;")
    sof = struct.pack(">BHHHB", 8, 65_500, 65_500, 1, 1) + b"\x01\x11\x00"  # 1 component
    jpeg = (b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof
            + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + b"\x00" * 64 + b"\xff\xd9")
    tiff = _tiff_header(1_000_000, 1_000_000)
    return {
        "absurd_png_gray.png": _png(1_000_000, 1_000_000, zlib.compress(b"\0" * 1001)),
        "absurd_png_rgb.png": _png(70_000, 70_000, zlib.compress(b"\0" * 100), color_type=2),
        "absurd_bmp.bmp": bmp_header + b"\0" * 100,
        "absurd_gif.gif": gif,
        "absurd_jpeg.jpg": jpeg,
        "absurd_tiff.tif": tiff,
        "bomb_400MP.png": png_bomb(),
    }


def _tiff_header(width: int, height: int) -> bytes:
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1),
               (262, 3, 1, 1), (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, height),
               (279, 4, 1, min(width * height, 2**32 - 1))]
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHII", tag, typ, count, value) for tag, typ, count, value in entries)
    return b"II*\x00" + struct.pack("<I", 8 + 64) + b"\0" * 64 + ifd + b"\0\0\0\0"


MAGICS = {".jpg": b"\xff\xd8\xff\xe0", ".png": b"\x89PNG\r\n\x1a\n", ".gif": b"GIF89a",
          ".bmp": b"BM", ".tif": b"II*\x00", ".webp": b"RIFF\x00\x01\x00\x00WEBPVP8 "}


def build(directory: Path, seed: int = 0, *, truncations: int = 4, random_files: int = 60,
          magic_garbage: int = 24) -> list[Entry]:
    """Write the archive into `directory` (created); returns every entry with its kind."""
    rng = random.Random(seed)
    directory.mkdir(parents=True)
    entries: list[Entry] = []

    def write(name: str, data: bytes, kind: str) -> Path:
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        entries.append(Entry(path, kind))
        return path

    valid = valid_images()
    for name, data in valid.items():
        write(name, data, VALID)
    for name, data in valid.items():  # truncated at random offsets (never at the very end)
        stem, ext = os.path.splitext(Path(name).name)
        for k in range(truncations):
            cut = rng.randrange(0, len(data) - 1)
            write(f"truncated/{stem}{ext}.cut{k}_{cut}{ext}", data[:cut],
                  INVALID if cut < 16 else DAMAGED)
    for ext in EXTENSIONS:
        write(f"empty/zero_{ext[1:]}{ext}", b"", INVALID)
    for k in range(random_files):
        ext = EXTENSIONS[k % len(EXTENSIONS)]
        write(f"random/noise{k:02d}{ext}", rng.randbytes(rng.randrange(1, 6000)), INVALID)
    for k in range(magic_garbage):
        ext = list(MAGICS)[k % len(MAGICS)]
        write(f"magic/garbage{k:02d}{ext}", MAGICS[ext] + rng.randbytes(rng.randrange(1, 3000)),
              INVALID)
    for name, data in absurd_headers().items():
        write(f"absurd/{name}", data, INVALID)
    for k in range(3):
        path = write(f"locked/no_permission{k}.png", valid["rgb.jpg"], UNREADABLE)
        path.chmod(0)

    links = directory / "links"
    links.mkdir()
    (links / "self_loop.jpg").symlink_to("self_loop.jpg")
    (links / "loop_a.png").symlink_to("loop_b.png")
    (links / "loop_b.png").symlink_to("loop_a.png")
    (links / "dangling.jpg").symlink_to("does_not_exist.jpg")
    (links / "parent_loop").symlink_to("..", target_is_directory=True)
    (links / "zeros.png").symlink_to("/dev/zero")
    for name in ("self_loop.jpg", "loop_a.png", "loop_b.png", "dangling.jpg", "zeros.png"):
        entries.append(Entry(links / name, INVALID, regular=False))
    os.mkfifo(directory / "links" / "pipe.jpg")
    entries.append(Entry(links / "pipe.jpg", INVALID, regular=False))
    (directory / "a directory.jpg").mkdir()
    return entries


def expected_kind(entry: Entry) -> str:
    """UNREADABLE resolves to VALID for root (it reads anything) and INVALID otherwise."""
    if entry.kind == UNREADABLE:
        return VALID if os.geteuid() == 0 else INVALID
    return entry.kind
