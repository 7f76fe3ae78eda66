"""The device compose (`jaxcolor.inference.compose`) against the numpy one (`photo.compose`):
the same colours to one 8-bit level on photos with strong edges and out-of-gamut colour, the
input's own lightness, any photo size from one compiled program per tile bucket."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from PIL import Image

from jaxcolor import color
from jaxcolor.inference import compose as compose_lib
from jaxcolor.inference import photo as photo_lib
from jaxcolor.inference.colorizer import DeviceBatch, Prepared

RENDER = 64


def edges_photo(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Hard-edged blocks of very different lightness and colour, plus fine noise."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (5, 7, channels), np.uint8)
    sharp = np.asarray(Image.fromarray(blocks.squeeze()).resize((width, height),
                                                                Image.Resampling.NEAREST))
    noise = rng.integers(-6, 7, sharp.shape)
    return np.clip(sharp.astype(int) + noise, 0, 255).astype(np.uint8)


def saturated_ab(seed: int = 1, render: int = RENDER) -> np.ndarray:
    """Predicted ab [R, R, 2] that leaves the sRGB gamut in many places (|a|, |b| to 110)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(-110, 110, (6, 6, 2)).astype(np.float32)
    return np.stack([np.asarray(Image.fromarray(coarse[..., c]).resize(
        (render, render), Image.Resampling.BILINEAR)) for c in range(2)], -1)


def device_compose(photo: photo_lib.Photo, ab_square, L_square, inner, *, sigma):
    tiles = compose_lib.cut_tiles(photo.pixels)
    meta = compose_lib.tile_meta(0, *photo.size, inner, RENDER)
    out = compose_lib.compose_tiles(*compose_lib.pad_to_bucket(tiles, meta), ab_square[None],
                                    L_square[None], sigma=sigma)
    return compose_lib.assemble(np.asarray(out)[:len(tiles)], *photo.size)


@pytest.mark.parametrize("height, width, channels", [(333, 517, 3), (130, 129, 1),
                                                     (8, 300, 3), (256, 128, 3)])
@pytest.mark.parametrize("upsample", photo_lib.UPSAMPLING)
def test_device_compose_agrees_with_numpy(height, width, channels, upsample):
    photo = photo_lib.Photo(edges_photo(height, width, channels))
    L_square, inner = photo_lib.render_lightness(photo, RENDER)
    ab_square = saturated_ab()
    sigma = photo_lib.BILATERAL_SIGMA if upsample == "bilateral" else None
    want = photo_lib.compose(photo, photo_lib.crop_render(ab_square, inner),
                             photo_lib.crop_render(L_square, inner), upsample=upsample)
    got = device_compose(photo, ab_square, L_square, inner, sigma=sigma)
    assert got.shape == want.shape == (height, width, 3) and got.dtype == np.uint8
    diff = np.abs(got.astype(int) - want.astype(int)).max(-1)
    assert diff.max() <= 2 and (diff <= 1).mean() >= 0.999, (diff.max(), (diff > 1).mean())
    # Many pixels were out of gamut, and lightness is the input's.
    exact = color.lab_to_rgb_np(np.concatenate(
        [photo_lib.lightness(photo.pixels)[..., None],
         np.stack(photo_lib.Upsampler(photo_lib.crop_render(ab_square, inner),
                                      photo_lib.crop_render(L_square, inner), height, width,
                                      sigma=sigma).ab(0, height, photo_lib.lightness(
                                          photo.pixels)), -1)], -1), clip=False)
    assert ((exact < 0) | (exact > 1)).any(-1).mean() > 0.2
    L_in = photo_lib.lightness(photo.pixels)
    assert np.abs(color.rgb_to_lab_np(got)[..., 0] - L_in).max() < 1.0


def test_float_lightness_tiles_compose_like_numpy():
    L = np.asarray(Image.fromarray(edges_photo(90, 150, 1)).convert("F")) / 2.55
    photo = photo_lib.Photo(L.astype(np.float32))
    L_square, inner = photo_lib.render_lightness(photo, RENDER)
    want = photo_lib.compose(photo, photo_lib.crop_render(saturated_ab(), inner),
                             photo_lib.crop_render(L_square, inner))
    got = device_compose(photo, saturated_ab(), L_square, inner,
                         sigma=photo_lib.BILATERAL_SIGMA)
    assert (np.abs(got.astype(int) - want.astype(int)).max(-1) <= 1).mean() >= 0.999


def test_tiles_round_trip_and_meta_rows():
    pixels = np.arange(300 * 200 * 3, dtype=np.uint32).reshape(300, 200, 3).astype(np.uint8)
    tiles = compose_lib.cut_tiles(pixels)
    assert tiles.shape == (3 * 2, 128, 128, 3)
    np.testing.assert_array_equal(compose_lib.assemble(tiles, 300, 200), pixels)
    meta = compose_lib.tile_meta(5, 300, 200, (64, 43), 64)
    assert meta.shape == (6, len(compose_lib.META_FIELDS))
    assert meta[:, 0].tolist() == [5] * 6
    assert meta[:, 1].tolist() == [0, 0, 128, 128, 256, 256]  # row offsets
    assert meta[:, 2].tolist() == [0, 128] * 3  # column offsets
    assert meta[0, 3:].tolist() == [300, 200, 64, 43, 0, 10]
    assert [compose_lib.bucket(n) for n in (1, 2, 3, 5, 64, 65)] == [1, 2, 4, 8, 64, 128]


def test_every_photo_size_reuses_the_programs_of_its_tile_bucket():
    ab = saturated_ab()
    sizes = [(100, 120), (127, 33), (90, 128)]  # one tile each: bucket 1
    before = compose_lib.compose_tiles._cache_size()
    for h, w in sizes:
        photo = photo_lib.Photo(edges_photo(h, w))
        L_square, inner = photo_lib.render_lightness(photo, RENDER)
        device_compose(photo, ab, L_square, inner, sigma=photo_lib.BILATERAL_SIGMA)
    assert compose_lib.compose_tiles._cache_size() - before <= 1


@pytest.mark.parametrize("padded, render", [(False, 96), (True, 160)],
                         ids=["temporal_ab", "generator_ab"])
def test_batches_of_any_length_share_the_programs_of_their_bucket(padded, render):
    """Batches of 1..8 photos of one tile each compile one program per power of two (4),
    not one per length (8): the low-resolution maps are padded like G's batch, whether the
    ab comes padded (G's own) or one row per photo (the temporal colouriser's). (A render
    size of its own each: no program another test compiled.)"""
    photos = [photo_lib.Photo(edges_photo(100, 120, seed=k)) for k in range(8)]
    prepared = [Prepared(p, *_render(p, render), compose_lib.cut_tiles(p.pixels))
                for p in photos]
    before = compose_lib.compose_tiles._cache_size()
    for n in range(1, 9):
        rows = compose_lib.bucket(n) if padded else n
        ab = np.stack([saturated_ab(k, render) for k in range(rows)])
        L = jax.numpy.asarray(np.stack([p.L_render for p in prepared[:n]]))
        batch = DeviceBatch(prepared[:n], ab, L, "bilateral")
        batch.fetch()
        assert batch.finish(n - 1).shape == (100, 120, 3)
    assert compose_lib.compose_tiles._cache_size() - before <= 4


def _render(photo: photo_lib.Photo, render: int) -> tuple[np.ndarray, tuple[int, int]]:
    L, inner = photo_lib.render_lightness(photo, render)
    return L.astype(np.float32), inner
