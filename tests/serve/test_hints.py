"""Hints through the API: what a request sends is what `Colorizer.colorize` receives (parsed
by `jaxcolor.inference.hints`, moved onto a preview's pixels), for a model with hint inputs.

No trained model has hint inputs yet, so the tiny model poses as one (`HintTaking`): it
records the hints it is given and colours automatically. The real model's refusal of hints is
in test_api.py (400).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from jaxcolor.inference import hints as hints_lib
from jaxcolor.inference.colorizer import Colorizer
from jaxcolor.serve.uploads import scale_hints
from tests.serve.support import decoded, encoded, gray_photo, post

SENT = [{"x": 10, "y": 5, "color": "#3366CC", "radius": 4},
        {"x": 89, "y": 58, "color": "#ffcc00"}]


class HintTaking(Colorizer):
    """The tiny model with `takes_hints`: records (pixels shape, hints) of each call."""

    def __init__(self, base: Colorizer):
        super().__init__(base.graphdef, base.variables, base.config, step=base.step,
                         backend="jax")
        self.received = []

    @property
    def takes_hints(self) -> bool:
        return True

    def colorize(self, image_or_images, hints=None):
        self.received.append((np.asarray(image_or_images).shape, hints))
        return super().colorize(image_or_images)


@pytest.fixture
def hint_model(studio_colorizer):
    return HintTaking(studio_colorizer)


def test_the_model_receives_the_hints_as_parsed_from_the_cli_format(make_client, hint_model):
    client = make_client(hint_model)
    assert client.get("/api/health").json()["hints"] is True
    response = post(client, encoded(gray_photo(90, 60)), hints=json.dumps(SENT))
    assert response.status_code == 200, response.text
    assert decoded(response).shape == (60, 90, 3)
    (shape, received), = hint_model.received
    assert shape == (60, 90, 3)
    assert received == hints_lib.parse(SENT, "hints")
    assert received[1].radius == hints_lib.DEFAULT_RADIUS


def test_a_preview_moves_the_hints_onto_its_pixels(make_client, hint_model):
    client = make_client(hint_model)
    response = post(client, encoded(gray_photo(90, 60)), hints=json.dumps(SENT), preview=45)
    assert response.status_code == 200, response.text
    (shape, received), = hint_model.received
    assert shape == (30, 45, 3)
    assert [(h.x, h.y, h.radius, h.color) for h in received] == [
        (4.75, 2.25, 2.0, "#3366CC"), (44.0, 28.75, 1.5, "#ffcc00")]


def test_no_hints_take_the_batched_path(make_client, hint_model):
    client = make_client(hint_model)
    for fields in ({}, {"hints": "[]"}):
        assert post(client, encoded(gray_photo(90, 60)), **fields).status_code == 200
    assert hint_model.received == []


def test_scaling_maps_pixel_centres_and_keeps_hints_inside():
    hints = hints_lib.parse([{"x": 0, "y": 0, "color": "#000000"},
                             {"x": 99, "y": 49, "color": "#000000", "radius": 10}], "h")
    small = scale_hints(hints, (100, 50), (10, 5))
    assert [(h.x, h.y, h.radius) for h in small] == [(0, 0, pytest.approx(0.3)), (9, 4, 1)]
    same = scale_hints(hints, (100, 50), (100, 50))
    assert same == hints
