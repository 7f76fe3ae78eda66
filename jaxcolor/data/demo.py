"""The embedded demo dataset: random crops of the photos that ship with scikit-image.

`ensure_demo_records(dir)` builds a small records set (once; later runs reuse it) so that the
README's first command trains end to end on a fresh machine with nothing downloaded. The
colour photos give many crops at random scales and positions; a few grayscale samples are
added on purpose so the pipeline's colourfulness filter has something to remove.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from absl import logging
from PIL import Image

from jaxcolor import color
from jaxcolor.data.images import load_image_rgb
from jaxcolor.data.records import MANIFEST, RecordsWriter
from jaxcolor.errors import UsageError

COLOUR_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg",
                 "ihc.png", "motorcycle_left.png", "motorcycle_right.png", "retina.jpg",
                 "rocket.jpg")
GRAY_PHOTOS = ("camera.png", "moon.png", "coins.png")


class DemoDataError(UsageError):
    """scikit-image (the source of the demo photos) is missing."""


def sample_photo_dir() -> Path:
    try:
        import skimage.data
    except ImportError:
        raise DemoDataError("the demo trains on scikit-image's bundled photos: install them "
                            "with `pip install 'jaxcolor[demo]'` (or `pip install "
                            "scikit-image`)") from None
    return Path(skimage.data.__file__).parent


def random_crops(rgb: np.ndarray, count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """`count` square crops covering 25-100% of the short side, resized to size x size."""
    h, w = rgb.shape[:2]
    short = min(h, w)
    image = Image.fromarray(rgb)
    out = np.empty((count, size, size, 3), np.uint8)
    for i in range(count):
        side = int(rng.uniform(0.25, 1.0) * short)
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = image.crop((left, top, left + side, top + side))
        out[i] = np.asarray(crop.resize((size, size), Image.Resampling.LANCZOS))
    return out


def ensure_demo_records(directory: str | Path, *, size: int = 80, crops_per_photo: int = 48,
                        val_every: int = 8, seed: int = 0) -> Path:
    """Build the demo records at `directory` unless a complete set is already there."""
    directory = Path(directory)
    if (directory / MANIFEST).is_file():
        return directory
    photo_dir = sample_photo_dir()
    rng = np.random.default_rng(seed)
    source = {"kind": "demo", "photos": list(COLOUR_PHOTOS + GRAY_PHOTOS),
              "crops_per_photo": crops_per_photo, "seed": seed}
    crops = [color.encode_lab8(color.rgb_to_lab_np(random_crops(
                 load_image_rgb(photo_dir / name),
                 crops_per_photo if name in COLOUR_PHOTOS else 4, size, rng)))
             for name in COLOUR_PHOTOS + GRAY_PHOTOS]
    L, ab = (np.concatenate(parts) for parts in zip(*crops))
    # Shuffled, so that every stretch of records mixes the photos: the validation split takes
    # every `val_every`-th record and the probe grid shows its first few.
    order = rng.permutation(len(L))
    with RecordsWriter(directory, size, size, source=source, val_every=val_every) as writer:
        writer.add(L[order], ab[order])
    logging.info("Built demo records at %s (%d crops of %dx%d from scikit-image's photos)",
                 directory, writer.count, size, size)
    return directory
