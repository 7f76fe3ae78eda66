"""The embedded demo dataset: random crops of the photos that ship with scikit-image.

`ensure_demo_records(dir)` builds a small records set (once; later runs reuse it) so that the
README's first command trains end to end on a fresh machine with nothing downloaded. The
colour photos give many crops at random scales and positions; a few grayscale samples are
added on purpose so the pipeline's colourfulness filter has something to remove.

Validation holds out whole photos (`HELD_OUT`), never crops of training photos: crops of a
photo the model trained on measure memorisation, and `samples.png` would show it. The
records are laid out so that the format's validation split (every `val_every`-th record)
is exactly the held-out photos' crops, and the training split every other crop.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from absl import logging
from PIL import Image

from jaxcolor import color
from jaxcolor.data.images import load_image_rgb
from jaxcolor.data.records import MANIFEST, RecordsWriter
from jaxcolor.errors import require

COLOUR_PHOTOS = ("astronaut.png", "hubble_deep_field.jpg", "ihc.png", "motorcycle_left.png",
                 "motorcycle_right.png", "retina.jpg", "rocket.jpg")
GRAY_PHOTOS = ("camera.png", "moon.png", "coins.png")
HELD_OUT = ("chelsea.png", "coffee.png")  # validation only: a cat and a cup never trained on


def sample_photo_dir() -> Path:
    """The folder of scikit-image's bundled photos (the demo's training data)."""
    return Path(require("skimage.data", "demo").__file__).parent


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


def held_out_count(train: int, val_every: int) -> int:
    """How many validation crops make every `val_every`-th of all records one of them."""
    val = 1
    while val != -(-(train + val) // val_every):
        val += 1
    return val


def ensure_demo_records(directory: str | Path, *, size: int = 80, crops_per_photo: int = 48,
                        val_every: int = 8, seed: int = 0) -> Path:
    """Build the demo records at `directory` unless a complete set is already there."""
    directory = Path(directory)
    if (directory / MANIFEST).is_file():
        return directory
    photo_dir = sample_photo_dir()
    rng = np.random.default_rng(seed)

    def crops(names, count):
        return [color.encode_lab8(color.rgb_to_lab_np(random_crops(
            load_image_rgb(photo_dir / name), count, size, rng))) for name in names]

    train = crops(COLOUR_PHOTOS, crops_per_photo) + crops(GRAY_PHOTOS, 4)
    n_train = sum(len(L) for L, _ in train)
    n_val = held_out_count(n_train, val_every)
    val = crops(HELD_OUT, -(-n_val // len(HELD_OUT)))
    (L_train, ab_train), (L_val, ab_val) = (
        [np.concatenate(parts) for parts in zip(*group)] for group in (train, val))
    # Shuffled within each split (the probe grid shows the first validation crops, which
    # then mix the held-out photos), then interleaved: record i is validation iff
    # i % val_every == 0, as the format's split reads it.
    val_order, train_order = rng.permutation(len(L_val))[:n_val], rng.permutation(n_train)
    is_val = np.arange(n_train + n_val) % val_every == 0
    L = np.empty((n_train + n_val, size, size), np.uint8)
    ab = np.empty((n_train + n_val, size, size, 2), np.uint8)
    L[is_val], ab[is_val] = L_val[val_order], ab_val[val_order]
    L[~is_val], ab[~is_val] = L_train[train_order], ab_train[train_order]
    source = {"kind": "demo", "photos": list(COLOUR_PHOTOS + GRAY_PHOTOS),
              "held_out": list(HELD_OUT), "crops_per_photo": crops_per_photo, "seed": seed}
    with RecordsWriter(directory, size, size, source=source, val_every=val_every) as writer:
        writer.add(L, ab)
    logging.info("Built demo records at %s (%d crops of %dx%d from scikit-image's photos; "
                 "validation: %d crops of %s, held out)", directory, writer.count, size, size,
                 n_val, ", ".join(HELD_OUT))
    return directory
