"""Hints through the API: what a request sends is what the model receives (parsed by
`jaxcolor.inference.hints`, moved onto a preview's pixels, riding on `Photo.hints` into
`Colorizer.prepare`), and it changes the colours. The model is the tiny hint-taking one
(`tests.support.hinted_colorizer`); a model without hint inputs follows hints too
(test_api.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from jaxcolor.inference import hints as hints_lib
from jaxcolor.inference.colorizer import Colorizer
from jaxcolor.serve.uploads import scale_hints
from tests.serve.support import decoded, encoded, gray_photo, post
from tests.support import hinted_colorizer

SENT = [{"x": 10, "y": 5, "color": "#3366CC", "radius": 4},
        {"x": 89, "y": 58, "color": "#ffcc00"}]


class HintRecording(Colorizer):
    """A hint-taking model that records (pixels shape, hints) of each photo it prepares."""

    def __init__(self, base: Colorizer):
        super().__init__(base.graphdef, base.variables, base.config, step=base.step,
                         backend="jax")
        self.received = []

    def prepare(self, photo):
        self.received.append((photo.pixels.shape, photo.hints))
        return super().prepare(photo)


@pytest.fixture(scope="module")
def hint_taking():
    return hinted_colorizer()


@pytest.fixture
def hint_model(hint_taking):
    return HintRecording(hint_taking)


def test_the_model_receives_the_hints_as_parsed_from_the_cli_format(make_client, hint_model):
    client = make_client(hint_model)
    assert client.get("/api/health").json()["hints"] is True
    photo = encoded(gray_photo(90, 60))
    response = post(client, photo, hints=json.dumps(SENT))
    assert response.status_code == 200, response.text
    hinted = decoded(response)
    assert hinted.shape == (60, 90, 3)
    (shape, received), = hint_model.received
    assert shape[:2] == (60, 90)
    assert list(received) == hints_lib.parse(SENT, "hints")
    assert received[1].radius == hints_lib.DEFAULT_RADIUS
    automatic = decoded(post(client, photo))
    assert np.abs(hinted.astype(int) - automatic.astype(int)).max() > 2


def test_a_preview_moves_the_hints_onto_its_pixels(make_client, hint_model):
    client = make_client(hint_model)
    response = post(client, encoded(gray_photo(90, 60)), hints=json.dumps(SENT), preview=45)
    assert response.status_code == 200, response.text
    (shape, received), = hint_model.received
    assert shape[:2] == (30, 45)
    assert [(h.x, h.y, h.radius, h.color) for h in received] == [
        (4.75, 2.25, 2.0, "#3366CC"), (44.0, 28.75, 1.5, "#ffcc00")]


def test_no_hints_and_an_empty_list_colour_automatically(make_client, hint_model):
    client = make_client(hint_model)
    answers = [decoded(post(client, encoded(gray_photo(90, 60)), **fields))
               for fields in ({}, {"hints": "[]"})]
    assert [hints for _, hints in hint_model.received] == [(), ()]
    np.testing.assert_array_equal(*answers)


def test_scaling_maps_pixel_centres_and_keeps_hints_inside():
    hints = hints_lib.parse([{"x": 0, "y": 0, "color": "#000000"},
                             {"x": 99, "y": 49, "color": "#000000", "radius": 10}], "h")
    small = scale_hints(hints, (100, 50), (10, 5))
    assert [(h.x, h.y, h.radius) for h in small] == [(0, 0, pytest.approx(0.3)), (9, 4, 1)]
    same = scale_hints(hints, (100, 50), (100, 50))
    assert same == hints
