"""The quality benchmark's photos: three splits by photo, and the training mixture.

  train       what the models learn from (after the mixture's caps)
  validation  every decision: variant, backbone, weights, schedule, mixture, budget, which
              checkpoint (during training, on its records; afterwards, on the photos)
  test        read once, for the final table (`--read_test`): never ingested, never decided on

The test photos are a folder of their own (the ImageNet sample: 1,000 classes, one photo
each: people, animals, objects). The pool may hold another ImageNet sample (`imagen`: 200
classes, five photos each, other photos than the test's) so that validation, and training,
see photos drawn like the test's; its validation figures can be read on their own
(`benchmarks.quality --val_sources imagen`). Validation is drawn from the training pool by a
hash of each photo's *group* (a CamVid sequence: its frames are near copies of each other,
so a frame may not train while its neighbour validates), at most `per_source` photos of a
source, so that one large source (3,781 photos of clothes) does not make the validation set
its own. Training photos that are near copies of a test photo (the pool's own ImageNet
samples) are dropped. The split does not depend on which other files are present or in what
order they are listed; nothing here changes with the mixture, so every mixture is judged on
the same validation photos.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

GROUPS = {
    "camvid": lambda stem: stem.split("_")[2],  # CamVid_<split>_<sequence>_<frame>
    "imagen": lambda stem: stem.split("_")[0],  # <WordNet id>_<image id>_<label>: a class
}
"""Source -> the group of a photo (its file stem); by default every photo is its own. The
ImageNet-like pool (`imagen`, five photos of each of 200 classes) validates by class, so its
validation photos show classes the model never trained on, as most test photos do."""


@dataclasses.dataclass(frozen=True)
class Photo:
    path: Path
    source: str  # the folder below a pool root it comes from (bsds500, clothing, ...)
    key: str  # root name / relative path: names the photo whatever the machine

    @property
    def group(self) -> str:
        rule = GROUPS.get(self.source)
        return f"{self.source}/{rule(self.path.stem)}" if rule else self.key


def unit_hash(text: str) -> float:
    """A deterministic number in [0, 1) for a name."""
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "big") / 2**64


def pool(roots: list[Path]) -> list[Photo]:
    """Every photo under the roots (each root's subfolders are its sources)."""
    from jaxcolor.data import images

    photos = []
    for root in roots:
        root = Path(root).absolute()
        for path in images.find_images(root):
            rel = path.relative_to(root)
            source = rel.parts[0] if len(rel.parts) > 1 else root.name
            photos.append(Photo(path, source, f"{root.name}/{rel.as_posix()}"))
    return photos


def split(photos: list[Photo], *, fraction: float,
          per_source: int) -> tuple[list[Photo], list[Photo]]:
    """(train, validation): groups whose hash is below `fraction` validate, at most
    `per_source` photos of each source (the lowest hashes), the rest train."""
    chosen: dict[str, list[Photo]] = {}
    for photo in photos:
        if unit_hash(photo.group) < fraction:
            chosen.setdefault(photo.source, []).append(photo)
    val = {p.key for members in chosen.values()
           for p in sorted(members, key=lambda p: unit_hash(p.key))[:per_source]}
    held = {p.group for p in photos if p.key in val}  # a group validates whole or not at all
    return ([p for p in photos if p.group not in held],
            [p for p in photos if p.key in val])


def capped(train: list[Photo], cap: int) -> list[Photo]:
    """The training mixture: at most `cap` photos of each source (the lowest hashes; 0:
    every photo)."""
    out, by_source = [], {}
    for photo in sorted(train, key=lambda p: unit_hash(p.key)):
        by_source[photo.source] = by_source.get(photo.source, 0) + 1
        if not cap or by_source[photo.source] <= cap:
            out.append(photo)
    return sorted(out, key=lambda p: p.key)


def _thumbnail(path: Path) -> np.ndarray | None:
    from jaxcolor.data import images

    try:
        rgb = images.load_image_rgb(path)
    except images.ImageDecodeError:
        return None
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).convert("L").resize((16, 16)), np.float32)


def without_test_copies(train: list[Photo], test: list[Path],
                        tolerance: float = 6.0) -> tuple[list[Photo], list[Photo]]:
    """(kept, dropped): training photos whose 16x16 gray thumbnail is within `tolerance`
    (mean absolute 8-bit difference) of a test photo's: the same photo, resized or
    re-encoded."""
    reference = np.stack([t for t in map(_thumbnail, test) if t is not None])
    kept, dropped = [], []
    for photo in train:
        thumb = _thumbnail(photo.path)
        near = thumb is not None and np.abs(reference - thumb).mean((1, 2)).min() < tolerance
        (dropped if near else kept).append(photo)
    return kept, dropped


def ingest(photos: list[Photo], out: Path, *, size: int, val_every: int) -> Path:
    """The photos as size x size records (once; reused while the list is the same)."""
    from jaxcolor.data import ingest as ingest_lib

    listing = sorted(p.key for p in photos)
    stamp = out / "photos.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == listing:
        return out
    links = out.with_name(out.name + "-photos")
    shutil.rmtree(links, ignore_errors=True)
    for photo in photos:
        (links / photo.key).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(photo.path, links / photo.key)
    summary = ingest_lib.ingest_images(links, out, size=size, val_every=val_every,
                                       overwrite=True)
    print(summary.format(), flush=True)
    stamp.write_text(json.dumps(listing))
    return out


def describe(photos: list[Photo]) -> dict[str, int]:
    """Photos per source."""
    counts: dict[str, int] = {}
    for photo in photos:
        counts[photo.source] = counts.get(photo.source, 0) + 1
    return dict(sorted(counts.items()))
