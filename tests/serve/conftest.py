"""The studio's fixtures: the tiny trained model (`tests.support.trained_workdir`) and apps
around it, through Starlette's test client or a real uvicorn server."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from jaxcolor.inference.colorizer import Colorizer
from jaxcolor.serve.app import create_app
from jaxcolor.serve.settings import Settings
from tests.serve.support import LiveServer
from tests.support import trained_workdir


@pytest.fixture(scope="session")
def studio_colorizer(tmp_path_factory) -> Colorizer:
    return Colorizer.from_checkpoint(trained_workdir(tmp_path_factory), backend="jax")


@pytest.fixture
def make_client(studio_colorizer):
    """make_client(colorizer=None, **settings) -> a started test client (lifespan run)."""
    started = []

    def make(colorizer: Colorizer | None = None, **settings) -> TestClient:
        app = create_app(colorizer or studio_colorizer, Settings(**settings))
        client = TestClient(app, base_url="http://127.0.0.1")
        client.__enter__()
        started.append(client)
        return client

    yield make
    for client in reversed(started):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


@pytest.fixture
def live_server(studio_colorizer):
    """live_server(colorizer=None, **settings) -> a started `LiveServer`."""
    started = []

    def start(colorizer: Colorizer | None = None, **settings) -> LiveServer:
        server = LiveServer(create_app(colorizer or studio_colorizer, Settings(**settings)))
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()
