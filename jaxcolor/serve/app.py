"""The studio's Starlette application: `create_app(colorizer, settings)`.

  GET  /                 the page (static/index.html; the rest of it under /static/)
  GET  /api/health       {"status": "ok", "model", "render_size", "hints" (true: every
                          model follows hints, `inference.spread`), "hint_radius",
                          "limits": {"max_bytes", "max_pixels", "preview": [min, max]}}
  POST /api/colorize     multipart form (`jaxcolor.serve.uploads`) -> the image bytes,
                          with the uploaded photo's size in X-Image-Width / X-Image-Height

Errors are `{"error": "one line"}` with the status each kind of error carries: 400 a bad
field or hint, 401 a missing or wrong token, 413
over a limit, 415 not an image, 503 the queue is full (with Retry-After), 500 a bug (logged
with its traceback by the server; the request alone fails). Every request is independent:
the server keeps no state between them, so nothing one client sends reaches another.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from jaxcolor.errors import JaxcolorError, UsageError
from jaxcolor.inference.colorizer import Colorizer
from jaxcolor.inference.hints import DEFAULT_RADIUS
from jaxcolor.inference.photo import InputImageError
from jaxcolor.serve import guard, uploads
from jaxcolor.serve.engine import Engine
from jaxcolor.serve.settings import Settings

STATIC = Path(__file__).resolve().parent / "static"
RETRY_AFTER_S = 1

log = logging.getLogger(__name__)


def create_app(colorizer: Colorizer, settings: Settings = Settings()) -> Starlette:
    """The studio around `colorizer`; its engine starts and stops with the app's lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        engine = Engine(colorizer, capacity=settings.queue, workers=settings.workers)
        upload_dir = uploads.UploadDir()
        try:
            yield {"engine": engine, "uploads": upload_dir}
        finally:
            await anyio.to_thread.run_sync(engine.close)
            upload_dir.close()

    app = Starlette(
        routes=[Route("/", _page, methods=["GET"]),
                Route("/api/health", _health, methods=["GET"]),
                Route("/api/colorize", _colorize, methods=["POST"]),
                Mount("/static", StaticFiles(directory=STATIC), name="static")],
        middleware=[Middleware(guard.Guard, token=settings.token,
                               hosts=guard.allowed_hosts(settings.host))],
        exception_handlers={JaxcolorError: _error, HTTPException: _http_error,
                            ClientDisconnect: _disconnected, Exception: _bug},
        lifespan=lifespan)
    app.state.colorizer, app.state.settings = colorizer, settings
    return app


def model_name(colorizer: Colorizer) -> str:
    """The run a colouriser comes from, as the page shows it: "gan101 step 40000"."""
    directory = colorizer.directory
    if directory is None:
        return f"untrained step {colorizer.step}"
    run = directory.parent if directory.name == "checkpoints" else directory
    return f"{run.name} step {colorizer.step}"


# ---- routes -----------------------------------------------------------------------------


async def _page(_request: Request) -> Response:
    return FileResponse(STATIC / "index.html")


async def _health(request: Request) -> Response:
    colorizer, settings = request.app.state.colorizer, request.app.state.settings
    return JSONResponse({
        "status": "ok", "model": model_name(colorizer), "render_size": colorizer.render_size,
        "hints": True, "hint_radius": DEFAULT_RADIUS,
        "limits": {"max_bytes": settings.max_bytes, "max_pixels": settings.max_pixels,
                   "preview": list(uploads.PREVIEW_SIDES)}},
        headers={"Cache-Control": "no-store"})


async def _colorize(request: Request) -> Response:
    settings = request.app.state.settings
    engine: Engine = request.state.engine
    with engine.admit():
        order = await uploads.read_order(uploads.limit_body(request, settings.max_bytes),
                                         request.state.uploads, settings.max_pixels,
                                         engine.on_host)
        pixels = await engine.colorize(order.photo, order.hints)
        data = await engine.on_host(uploads.encode, pixels, order.format)
    width, height = order.size
    return Response(data, media_type=uploads.MEDIA_TYPES[order.format],
                    headers={"X-Image-Width": str(width), "X-Image-Height": str(height),
                             "Cache-Control": "no-store"})


# ---- errors -----------------------------------------------------------------------------


async def _error(_request: Request, error: JaxcolorError) -> Response:
    client_side = isinstance(error, (UsageError, InputImageError))
    status = getattr(error, "status", 400 if client_side else 500)
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    if status == 500:
        log.error("colourising failed: %s", error)
    return guard.json_error(str(error), status, headers)


async def _http_error(_request: Request, error: HTTPException) -> Response:
    """Starlette's own refusals (404, 405, a malformed multipart body) in the API's shape."""
    return guard.json_error(str(error.detail), error.status_code, error.headers)


async def _disconnected(_request: Request, _error: ClientDisconnect) -> Response:
    return guard.json_error("the upload was cut short", 400)


async def _bug(_request: Request, error: Exception) -> Response:
    """Anything else is a bug: the server logs its traceback (Starlette re-raises it to
    uvicorn after this answer) and goes on serving."""
    return guard.json_error(f"internal error ({type(error).__name__}); see the server's log",
                            500)
