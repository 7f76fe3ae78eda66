"""The demo records hold out whole photos for validation: no validation crop comes from a
photo the demo trains on."""

import numpy as np
import pytest

from jaxcolor import color
from jaxcolor.data import demo, records


@pytest.mark.parametrize("train, val_every", [(68, 8), (348, 8), (100, 20), (7, 3)])
def test_held_out_count_makes_every_kth_record_a_validation_one(train, val_every):
    val = demo.held_out_count(train, val_every)
    assert np.sum(np.arange(train + val) % val_every == 0) == val


def test_validation_is_exactly_the_held_out_photos_crops(tmp_path, monkeypatch):
    pytest.importorskip("skimage")
    names = demo.COLOUR_PHOTOS + demo.GRAY_PHOTOS + demo.HELD_OUT
    assert not set(demo.HELD_OUT) & set(demo.COLOUR_PHOTOS + demo.GRAY_PHOTOS)
    # Each "photo" is one flat gray level, so every crop's lightness names its photo.
    level = {name: 10 + 17 * i for i, name in enumerate(names)}
    monkeypatch.setattr(demo, "load_image_rgb",
                        lambda path: np.full((30, 40, 3), level[path.name], np.uint8))
    directory = demo.ensure_demo_records(tmp_path / "demo", size=16, crops_per_photo=5,
                                         val_every=4)
    recs = records.Records(directory)
    L, _ = recs.read(np.arange(len(recs)))
    # Map each record's (constant) L8 back to the photo whose gray level gives it.
    L8_of = {name: int(color.encode_lab8(color.rgb_to_lab_np(
        np.full((1, 1, 3), lv, np.uint8)))[0][0, 0]) for name, lv in level.items()}
    source = {v: k for k, v in L8_of.items()}
    assert len(source) == len(names)
    val = {source[int(L[i, 0, 0])] for i in recs.split("val")}
    train = {source[int(L[i, 0, 0])] for i in recs.split("train")}
    assert val == set(demo.HELD_OUT)
    assert train == set(demo.COLOUR_PHOTOS + demo.GRAY_PHOTOS)
    assert len(recs.split("train")) == 5 * len(demo.COLOUR_PHOTOS) + 4 * len(demo.GRAY_PHOTOS)
    assert recs.manifest.source["held_out"] == list(demo.HELD_OUT)
