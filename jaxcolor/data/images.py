"""Decode any photo file into uint8 sRGB, and the resize + centre crop that makes records.

Used by ingestion (`jaxcolor ingest images`) and by anything else that reads user
photos (the demo data builder, the colourise CLI), so every entry point sees an image the
same way:

  * EXIF orientation is applied (`PIL.ImageOps.exif_transpose`): phone photos come upright.
  * An embedded ICC profile (Display P3 phone photos, Adobe RGB, CMYK press profiles) is
    converted to sRGB, the colour space `jaxcolor.color` assumes. A profile that cannot be
    read is ignored and the pixels are taken as sRGB: the photo is still usable.
  * Grayscale, bilevel and palette images become RGB; CMYK is converted (via its profile when
    it has one).
  * Transparency is composited onto white, as a viewer shows the image on a page. Dropping
    alpha instead would expose whatever colour the transparent pixels happen to store (often
    black or garbage) and teach the model colours nobody sees.
  * 16-bit grayscale (PIL modes I;16*, I) is scaled to 8 bit with v * 255 / 65535, rounded,
    not clipped, so 65535 is white and the full tonal range survives. (16-bit RGB PNGs are
    already reduced to 8 bit by Pillow's decoder.)
  * Oversized files are refused before decoding (a decompression-bomb guard).

Every failure raises `ImageDecodeError`, which names the file and says what is wrong; it
pickles, so worker processes can hand it back.
"""

from __future__ import annotations

import glob
import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from jaxcolor import color
from jaxcolor.errors import MissingPathError, RunError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
"""Suffixes (any case) picked up when a directory is searched for photos."""

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


class ImageDecodeError(RunError, ValueError):
    """A file could not be turned into an RGB image. `path` and `reason` say which and why."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(str(path), reason)  # args = (path, reason): pickles and unpickles
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


# --------------------------------------------------------------------------------------
# Finding photos.
# --------------------------------------------------------------------------------------


def _walk(root: Path):
    """Every file below `root`, following links to directories (a photo archive assembled
    from links is the user's archive), each real directory once (a link loop ends)."""
    seen = set()
    for directory, subdirectories, names in os.walk(root, followlinks=True):
        real = os.path.realpath(directory)
        if real in seen:
            subdirectories.clear()
            continue
        seen.add(real)
        subdirectories.sort()  # which of two links to one directory is kept: the first by name
        yield from (Path(directory) / name for name in names)


def find_images(src: str | os.PathLike) -> list[Path]:
    """The photo files `src` names, sorted by path (the order records are written in).

    `src` is a directory (searched recursively for `IMAGE_EXTENSIONS`, through links to
    directories), a glob pattern (every matching file, whatever its suffix: the user chose
    them) or a single file.
    Raises `MissingPathError` (a FileNotFoundError) when nothing matches.
    """
    src = str(src)
    path = Path(src)
    if path.is_dir():
        files = [p for p in _walk(path) if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
        if not files:
            raise MissingPathError(f"{src}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in "
                                    "this directory or below")
    elif path.is_file():
        files = [path]
    else:
        files = [Path(p) for p in glob.glob(src, recursive=True) if os.path.isfile(p)]
        if not files:
            raise MissingPathError(f"{src}: no such directory or file, and no file matches it "
                                    "as a glob pattern")
    return sorted(files, key=str)


# --------------------------------------------------------------------------------------
# Decoding.
# --------------------------------------------------------------------------------------


def load_image_rgb(path: str | os.PathLike, *, min_size: int | None = None,
                   max_pixels: int | None = None) -> np.ndarray:
    """Decode a photo file to uint8 sRGB [H, W, 3], upright (see the module docstring).

    min_size: the caller only needs the short side to be at least this long. JPEGs are then
      decoded at a reduced scale (DCT scaling, up to 8x faster) that keeps both sides
      >= min_size; other formats decode at full size.
    max_pixels: refuse larger images (default `PIL.Image.MAX_IMAGE_PIXELS`, ~89 MP).
    Raises ImageDecodeError for empty, truncated, corrupt, oversized or non-image files.
    """
    path = Path(path)
    try:
        size_bytes = path.stat().st_size
    except OSError as e:
        raise ImageDecodeError(path, f"cannot read file ({e.strerror or e})") from None
    if size_bytes == 0:
        raise ImageDecodeError(path, "empty file (0 bytes)")
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if limit is not None and width * height > limit:
                    raise ImageDecodeError(path, f"too large: {width}x{height} = "
                                                 f"{width * height} pixels exceeds the limit of "
                                                 f"{limit} (decompression-bomb guard)")
                if min_size is not None and image.format == "JPEG":
                    image.draft(None, (min_size, min_size))
                image.load()
                rgb = _to_srgb(ImageOps.exif_transpose(image))
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError(path, "not an image, or a damaged one (Pillow cannot identify "
                                     "its format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageDecodeError(path, f"too large (decompression-bomb guard): {e}") from None
    except Exception as e:  # Pillow's decoders raise many types for damaged data
        raise ImageDecodeError(path, f"corrupt, truncated or unsupported ({type(e).__name__}: "
                                     f"{e})") from None
    return np.asarray(rgb, dtype=np.uint8)


def _to_srgb(image: Image.Image) -> Image.Image:
    """Any Pillow image -> mode RGB in sRGB (ICC profile honoured, alpha on white)."""
    icc = image.info.get("icc_profile")
    if image.mode != "CMYK":  # CMYK goes through its profile as it is
        image = to_rgb(image)
    if icc:
        converted = _icc_to_srgb(image, icc)
        if converted is not None:
            return converted
    return to_rgb(image)


def _icc_to_srgb(image: Image.Image, icc: bytes) -> Image.Image | None:
    """Convert through the embedded profile; None when the profile is unusable."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(
            image, source, ImageCms.createProfile("sRGB"),
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


def to_rgb(image: Image.Image) -> Image.Image:
    """Pillow image in any mode -> mode RGB, ignoring colour profiles.

    Alpha is composited onto white; 16-bit gray is scaled (not clipped) to 8 bit.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _SIXTEEN_BIT_MODES:
        return Image.fromarray(sixteen_to_eight_bit(np.asarray(image))).convert("RGB")
    if mode == "F":
        raise ValueError("32-bit float images are not supported (their value range is unknown)")
    if has_alpha(image):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def has_alpha(image: Image.Image) -> bool:
    """Whether a Pillow image carries transparency (alpha band or a transparent palette)."""
    return image.mode in _ALPHA_MODES or (image.mode == "P" and "transparency" in image.info)


def sixteen_to_eight_bit(values: np.ndarray) -> np.ndarray:
    """16-bit intensities (0..65535) -> uint8 with rounding: 0 -> 0, 257k -> k, 65535 -> 255."""
    v = np.clip(np.asarray(values, np.int64), 0, 65535)
    return ((v * 255 + 32767) // 65535).astype(np.uint8)


# --------------------------------------------------------------------------------------
# Geometry.
# --------------------------------------------------------------------------------------


def resize_short_side(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 [H, W, C] so the short side is `size`, keeping the aspect ratio.

    Lanczos resampling: antialiased when shrinking, sharp when enlarging.
    """
    h, w = rgb.shape[:2]
    scale = size / min(h, w)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    if (new_h, new_w) == (h, w):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((new_w, new_h), Image.Resampling.LANCZOS))


def center_crop(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """The central height x width window of [H, W, ...] (H >= height, W >= width)."""
    h, w = rgb.shape[:2]
    if h < height or w < width:
        raise ValueError(f"cannot crop {height}x{width} out of a {h}x{w} image")
    top, left = (h - height) // 2, (w - width) // 2
    return rgb[top:top + height, left:left + width]


def resize_and_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    """Short side to `size`, then the centred size x size square: the records' geometry."""
    return center_crop(resize_short_side(rgb, size), size, size)


# --------------------------------------------------------------------------------------
# One record.
# --------------------------------------------------------------------------------------


def load_record(path: str | os.PathLike, size: int, *,
                max_pixels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A photo file -> one record in the storage encoding: (L8 [size, size], ab8 [size, size, 2]).

    Module-level and pickle-friendly so ingestion can run it in worker processes.
    """
    rgb = resize_and_crop(load_image_rgb(path, min_size=size, max_pixels=max_pixels), size)
    return color.encode_lab8(color.rgb_to_lab_np(rgb))
