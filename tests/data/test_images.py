"""Decoding photo files to uint8 sRGB: formats, modes, orientation, damage, geometry."""

import pickle
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms
from skimage import data as skdata

from jaxcolor import color
from jaxcolor.data import images


@pytest.fixture(scope="module")
def chelsea():
    return skdata.chelsea()[::2, ::2].copy()  # 150 x 226, non-square


def _mean_abs(a, b):
    return np.abs(a.astype(np.int32) - b.astype(np.int32)).mean()


def write_png16_rgb(path, rgb16):
    """A 48-bit RGB PNG (Pillow cannot write one): signature, IHDR, one IDAT, IEND."""
    h, w, _ = rgb16.shape

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in rgb16)
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


# --------------------------------------------------------------------------------------
# Formats and modes.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix, options", [
    (".png", {}), (".bmp", {}), (".tiff", {}), (".webp", {"lossless": True}),
])
def test_lossless_formats_decode_exactly(tmp_path, chelsea, suffix, options):
    path = tmp_path / f"cat{suffix}"
    Image.fromarray(chelsea).save(path, **options)
    rgb = images.load_image_rgb(path)
    assert rgb.dtype == np.uint8 and rgb.shape == chelsea.shape
    np.testing.assert_array_equal(rgb, chelsea)


@pytest.mark.parametrize("suffix", [".jpg", ".webp"])
def test_lossy_formats_decode_close(tmp_path, chelsea, suffix):
    path = tmp_path / f"cat{suffix}"
    Image.fromarray(chelsea).save(path, quality=95)
    rgb = images.load_image_rgb(path)
    assert rgb.shape == chelsea.shape and _mean_abs(rgb, chelsea) < 3


def test_cmyk_jpeg_converts_to_rgb(tmp_path, chelsea):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(chelsea).convert("CMYK").save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    rgb = images.load_image_rgb(path)
    assert rgb.shape == chelsea.shape and _mean_abs(rgb, chelsea) < 4


def test_sixteen_bit_gray_png_is_scaled_not_clipped(tmp_path):
    levels = np.array([0, 257, 257 * 100, 257 * 254, 65534, 65535], np.uint16)
    path = tmp_path / "gray16.png"
    Image.fromarray(np.tile(levels, (4, 1))).save(path)
    assert Image.open(path).mode == "I;16"
    rgb = images.load_image_rgb(path)
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 1, 100, 254, 255, 255])
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])  # gray stays gray


def test_sixteen_to_eight_bit_rounds():
    v = np.arange(0, 65536, 7)
    np.testing.assert_array_equal(images.sixteen_to_eight_bit(v), np.rint(v * 255 / 65535))


def test_sixteen_bit_rgb_png(tmp_path, chelsea):
    path = tmp_path / "rgb16.png"
    write_png16_rgb(path, chelsea.astype(np.uint16) * 257)
    rgb = images.load_image_rgb(path)
    assert np.abs(rgb.astype(int) - chelsea).max() <= 1


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((4, 3, 4), np.uint8)
    rgba[0] = (200, 10, 20, 255)  # opaque: colour kept
    rgba[1] = (0, 0, 0, 0)  # transparent black: shown as white
    rgba[2] = (0, 0, 255, 128)  # half transparent blue over white
    rgba[3] = (12, 34, 56, 0)  # hidden colour never leaks
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    rgb = images.load_image_rgb(path)
    np.testing.assert_array_equal(rgb[0], [[200, 10, 20]] * 3)
    np.testing.assert_array_equal(rgb[1], [[255, 255, 255]] * 3)
    np.testing.assert_allclose(rgb[2], [[127, 127, 255]] * 3, atol=1)
    np.testing.assert_array_equal(rgb[3], [[255, 255, 255]] * 3)


def test_palette_png_and_transparent_gif(tmp_path, chelsea):
    palette = Image.fromarray(chelsea).quantize(64)
    palette.save(tmp_path / "palette.png")
    np.testing.assert_array_equal(images.load_image_rgb(tmp_path / "palette.png"),
                                  np.asarray(palette.convert("RGB")))
    gif = Image.new("P", (4, 2))
    gif.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    gif.putdata([0, 1, 1, 1, 0, 0, 1, 1])
    gif.save(tmp_path / "t.gif", transparency=0)
    rgb = images.load_image_rgb(tmp_path / "t.gif")
    np.testing.assert_array_equal(rgb[0], [[255, 255, 255], [255, 0, 0], [255, 0, 0],
                                           [255, 0, 0]])


def test_grayscale_and_bilevel(tmp_path):
    gray = skdata.camera()[::8, ::8]
    Image.fromarray(gray).save(tmp_path / "gray.png")
    rgb = images.load_image_rgb(tmp_path / "gray.png")
    np.testing.assert_array_equal(rgb, np.repeat(gray[..., None], 3, -1))
    Image.fromarray(gray > 128).save(tmp_path / "bw.png")
    bw = images.load_image_rgb(tmp_path / "bw.png")
    np.testing.assert_array_equal(bw[..., 1], np.where(gray > 128, 255, 0))


def test_srgb_profile_is_identity_and_broken_profile_ignored(tmp_path, chelsea):
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(chelsea).save(tmp_path / "plain.png")
    Image.fromarray(chelsea).save(tmp_path / "srgb.png", icc_profile=srgb)
    Image.fromarray(chelsea).save(tmp_path / "broken.png", icc_profile=b"not a profile" * 20)
    for name in ("srgb.png", "broken.png"):
        assert Image.open(tmp_path / name).info.get("icc_profile")
        np.testing.assert_array_equal(images.load_image_rgb(tmp_path / name), chelsea)
    rgba = Image.fromarray(np.dstack([chelsea, np.full(chelsea.shape[:2], 255, np.uint8)]))
    rgba.save(tmp_path / "rgba_srgb.png", icc_profile=srgb)  # alpha and a profile together
    np.testing.assert_array_equal(images.load_image_rgb(tmp_path / "rgba_srgb.png"), chelsea)


def _srgb_profile_with_red_and_green_swapped():
    """An RGB profile whose red primary is sRGB green and vice versa (tag offsets swapped)."""
    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    count = struct.unpack(">I", icc[128:132])[0]
    entry = {bytes(icc[132 + 12 * i:136 + 12 * i]): 132 + 12 * i for i in range(count)}
    r, g = entry[b"rXYZ"], entry[b"gXYZ"]
    icc[r + 4:r + 12], icc[g + 4:g + 12] = icc[g + 4:g + 12], icc[r + 4:r + 12]
    return bytes(icc)


def test_embedded_profile_is_converted_to_srgb(tmp_path):
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0] = (200, 0, 0)
    rgb[1] = (0, 0, 90)
    Image.fromarray(rgb).save(tmp_path / "swapped.png",
                              icc_profile=_srgb_profile_with_red_and_green_swapped())
    out = images.load_image_rgb(tmp_path / "swapped.png")
    np.testing.assert_allclose(out[0], [[0, 200, 0]] * 3, atol=1)  # its red is sRGB green
    np.testing.assert_allclose(out[1], [[0, 0, 90]] * 3, atol=1)


def test_exif_orientation_is_applied(tmp_path, chelsea):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.jpg"
    Image.fromarray(chelsea).save(path, quality=95, exif=exif.tobytes())
    rgb = images.load_image_rgb(path)
    assert rgb.shape == (chelsea.shape[1], chelsea.shape[0], 3)
    assert _mean_abs(rgb, np.rot90(chelsea, k=-1)) < 3
    assert _mean_abs(rgb, np.rot90(chelsea, k=1)) > 20


def test_min_size_decodes_large_jpeg_at_reduced_scale(tmp_path):
    path = tmp_path / "big.jpg"
    Image.fromarray(skdata.astronaut()).save(path)  # 512 x 512
    assert images.load_image_rgb(path, min_size=100).shape == (128, 128, 3)  # 1/4 scale
    assert images.load_image_rgb(path, min_size=300).shape == (512, 512, 3)


# --------------------------------------------------------------------------------------
# Damaged and hostile files.
# --------------------------------------------------------------------------------------


def _truncated_jpeg(path):
    Image.fromarray(skdata.astronaut()).save(path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


BROKEN = {
    "empty.jpg": (lambda p: p.write_bytes(b""), "empty file"),
    "notes.png": (lambda p: p.write_text("just some text\n"), "not an image"),
    "half.jpg": (_truncated_jpeg, "truncated"),
    "noise.jpg": (lambda p: p.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8),
                  "cannot identify"),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_files_raise_a_clear_error(tmp_path, name):
    make, reason = BROKEN[name]
    make(tmp_path / name)
    with pytest.raises(images.ImageDecodeError, match=reason) as info:
        images.load_image_rgb(tmp_path / name)
    assert info.value.path == str(tmp_path / name) and str(info.value).startswith(str(tmp_path))


def test_missing_file(tmp_path):
    with pytest.raises(images.ImageDecodeError, match="cannot read file"):
        images.load_image_rgb(tmp_path / "nope.jpg")


def test_decompression_bomb_guard(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", (200, 100)).save(path)
    with pytest.raises(images.ImageDecodeError, match="20000 pixels exceeds the limit of 1000"):
        images.load_image_rgb(path, max_pixels=1000)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)  # the default limit is Pillow's
    with pytest.raises(images.ImageDecodeError, match="decompression-bomb"):
        images.load_image_rgb(path)


def test_decode_error_survives_pickling():
    error = pickle.loads(pickle.dumps(images.ImageDecodeError("/x/a.jpg", "empty file")))
    assert (error.path, error.reason, str(error)) == ("/x/a.jpg", "empty file",
                                                      "/x/a.jpg: empty file")


# --------------------------------------------------------------------------------------
# Geometry and records.
# --------------------------------------------------------------------------------------


def test_resize_short_side_keeps_aspect():
    rgb = np.zeros((100, 300, 3), np.uint8)
    assert images.resize_short_side(rgb, 50).shape == (50, 150, 3)
    assert images.resize_short_side(rgb.transpose(1, 0, 2), 50).shape == (150, 50, 3)
    assert images.resize_short_side(rgb[:10, :20], 40).shape == (40, 80, 3)  # enlarges


def test_resize_and_crop_takes_the_centre():
    rgb = np.zeros((60, 180, 3), np.uint8)
    rgb[:, 50:130] = (255, 0, 0)  # a red middle between black sides
    out = images.resize_and_crop(rgb, 30)  # 30 x 90, then columns 30..60
    assert out.shape == (30, 30, 3)
    assert out[..., 0].min() > 250 and out[..., 1].max() < 5
    shifted = images.resize_and_crop(rgb[:, 40:], 30)  # the red band is now off-centre
    assert shifted[..., 0].min() < 10
    with pytest.raises(ValueError, match="cannot crop 40x40 out of a 30x90"):
        images.center_crop(np.zeros((30, 90, 3)), 40, 40)


def test_load_record_encodes_the_cropped_photo(tmp_path, chelsea):
    path = tmp_path / "cat.png"
    Image.fromarray(chelsea).save(path)
    L8, ab8 = images.load_record(path, 48)
    assert (L8.shape, ab8.shape, L8.dtype, ab8.dtype) == ((48, 48), (48, 48, 2), np.uint8,
                                                          np.uint8)
    expected = images.resize_and_crop(chelsea, 48)
    back = color.rgb01_to_uint8(color.lab_to_rgb_np(color.decode_lab8(L8, ab8)))
    assert _mean_abs(back, expected) < 1.5


def test_find_images(tmp_path):
    for name in ("b.JPG", "a.png", "sub/c.webp", "sub/deeper/d.tiff", "notes.txt", "e.gif"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in images.find_images(tmp_path)]
    assert found == ["a.png", "b.JPG", "e.gif", "sub/c.webp", "sub/deeper/d.tiff"]
    pattern = images.find_images(str(tmp_path / "**" / "*.t*"))
    assert [p.name for p in pattern] == ["notes.txt", "d.tiff"]  # a glob takes any suffix
    assert images.find_images(tmp_path / "a.png") == [tmp_path / "a.png"]
    with pytest.raises(FileNotFoundError, match="no such directory or file"):
        images.find_images(tmp_path / "missing")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("no photos here")
    with pytest.raises(FileNotFoundError, match="docs: no image files"):
        images.find_images(tmp_path / "docs")


def test_find_images_follows_links_to_directories_once_and_ends_a_link_loop(tmp_path):
    archive, elsewhere = tmp_path / "archive", tmp_path / "elsewhere"
    (elsewhere / "roll").mkdir(parents=True)
    (elsewhere / "roll" / "frame.jpg").write_bytes(b"x")
    archive.mkdir()
    (archive / "own.png").write_bytes(b"x")
    (archive / "a_roll").symlink_to(elsewhere / "roll")
    (archive / "b_roll").symlink_to(elsewhere / "roll")  # the same directory, linked twice
    (elsewhere / "roll" / "loop").symlink_to(archive)  # and a loop back to the top
    found = [p.relative_to(archive).as_posix() for p in images.find_images(archive)]
    assert found == ["a_roll/frame.jpg", "own.png"]
