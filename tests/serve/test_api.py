"""The studio's API through Starlette's test client: health, the colourised photo (the same
pixels as `jaxcolor colorize`'s decoding and Colorizer give), previews, formats, alpha, and
every refusal as `{"error": ...}` with its status."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from jaxcolor.inference import files
from tests.serve.support import decoded, encoded, gray_photo, post, refused
from tests.support import assert_keeps_lightness


def test_health_names_the_model_and_what_it_takes(client, studio_colorizer):
    body = client.get("/api/health").json()
    assert body["status"] == "ok"
    assert body["model"] == "infer_tiny_run step 3"
    assert body["render_size"] == studio_colorizer.render_size == 32
    assert body["hints"] is True  # every model follows hints (inference.spread)
    assert body["hint_radius"] == 3.0
    assert body["limits"]["max_pixels"] > 0 and body["limits"]["preview"] == [16, 4096]


def test_the_result_is_the_photo_colourised_as_the_command_does(client, studio_colorizer,
                                                                 tmp_path):
    gray = gray_photo(90, 60)
    upload = encoded(gray)
    response = post(client, upload)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert (response.headers["x-image-width"], response.headers["x-image-height"]) == ("90",
                                                                                      "60")
    colour = decoded(response)
    (tmp_path / "photo.png").write_bytes(upload)
    expected = studio_colorizer.colorize_photos([files.load_photo_file(tmp_path / "photo.png",
                                                                       2**20)])[0]
    np.testing.assert_array_equal(colour, expected)
    assert_keeps_lightness(np.dstack([gray] * 3), colour)
    assert np.abs(colour[..., 0].astype(int) - colour[..., 2]).max() > 0  # coloured, not gray


def test_jpeg_and_alpha(client):
    rgba = np.dstack([gray_photo(40, 30)] * 3 + [np.full((30, 40), 200, np.uint8)])
    rgba[:10, :10, 3] = 0
    png = post(client, encoded(rgba))
    assert png.status_code == 200
    np.testing.assert_array_equal(decoded(png)[..., 3], rgba[..., 3])  # alpha kept
    jpg = post(client, encoded(rgba), format="jpg")
    assert jpg.status_code == 200 and jpg.headers["content-type"] == "image/jpeg"
    assert decoded(jpg).shape == (30, 40, 3)  # composited on white, as files are


@pytest.mark.parametrize("preview, size", [(64, (64, 43)), (90, (90, 60)), (500, (90, 60))])
def test_a_preview_is_the_photo_downscaled_never_enlarged(client, preview, size):
    response = post(client, encoded(gray_photo(90, 60)), preview=preview)
    assert response.status_code == 200
    assert Image.open(io.BytesIO(response.content)).size == size
    assert (response.headers["x-image-width"], response.headers["x-image-height"]) == ("90",
                                                                                      "60")


@pytest.mark.parametrize("fields, words", [
    ({"format": "gif"}, ("format must be png or jpg",)),
    ({"preview": "abc"}, ("preview must be a whole number",)),
    ({"preview": "8"}, ("from 16 to 4096",)),
    ({"preview": "99999"}, ("from 16 to 4096",)),
    ({"colour": "red"}, ("unknown field(s) colour",)),
    ({"hints": "[{"}, ("hints: not JSON",)),
    ({"hints": "{}"}, ("hints: expected a list of hints",)),
    ({"hints": '[{"x": 1, "y": 2, "color": "red"}]'}, ("hints[0]: color must be",)),
    ({"hints": '[{"x": 1, "y": 2, "color": "#ff0000", "size": 3}]'}, ("unknown field(s) size",)),
    ({"hints": '[{"x": 90, "y": 2, "color": "#ff0000"}]'}, ("outside the 90x60 photo",)),
])
def test_bad_fields_and_hints_are_400(client, fields, words):
    refused(post(client, encoded(gray_photo(90, 60)), **fields), 400, *words)


def test_a_model_without_hint_inputs_follows_hints_too(client):
    hints = json.dumps([{"x": 45, "y": 30, "color": "#3366cc", "radius": 8}])
    photo = encoded(gray_photo(90, 60))
    hinted, automatic = (post(client, photo, **fields) for fields in ({"hints": hints}, {}))
    assert hinted.status_code == automatic.status_code == 200, hinted.text
    assert np.abs(decoded(hinted).astype(int) - decoded(automatic).astype(int)).max() > 10


def test_the_image_field_must_be_a_file(client):
    text_field = {"image": (None, "not a file")}  # multipart, without a file name
    refused(client.post("/api/colorize", files=text_field), 400, "'image' field must be a file")
    refused(client.post("/api/colorize", files={"image": ("a.png", b"1"), "other": ("b", b"2")}),
            400)


@pytest.mark.parametrize("payload, words", [
    (b"", ("not an image",)),
    (b"GIF89a but not really", ("not an image",)),
    (b"plain text, certainly no photo", ("not an image",)),
])
def test_what_is_not_an_image_is_415(client, payload, words):
    refused(post(client, payload, name="x.png"), 415, "x.png", *words)


def test_a_truncated_photo_is_415_and_names_the_upload_not_a_server_path(client):
    upload = encoded(gray_photo(90, 60))
    message = refused(post(client, upload[:len(upload) // 2], name="dir/scan.png"), 415,
                      "scan.png: ", "truncated")
    assert "dir/" not in message and "/tmp" not in message and "upload-" not in message


def test_a_body_that_is_not_a_form_is_415(client):
    refused(client.post("/api/colorize", content=b"{}",
                        headers={"content-type": "application/json"}), 415, "multipart")


def test_a_photo_too_small_to_colourise_is_400(client):
    refused(post(client, encoded(gray_photo(5, 60))), 400, "at least 8 pixels")


def test_routes_and_methods_that_do_not_exist_answer_in_json(client):
    refused(client.get("/api/nothing"), 404)
    refused(client.get("/api/colorize"), 405)
    refused(client.get("/static/%2e%2e/app.py"), 404)
