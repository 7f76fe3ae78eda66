"""The studio: `jaxcolor serve`, a local web page and HTTP API around one loaded Colorizer.

    pip install 'jaxcolor[serve]'
    jaxcolor serve --checkpoint=/runs/gan101          # prints http://127.0.0.1:8080/

  app.py      the Starlette application: the page, `GET /api/health`, `POST /api/colorize`,
              errors as JSON with their HTTP status
  engine.py   one model shared by every request: admission (a full queue answers 503), host
              work on a few threads, G in batches on one thread
  uploads.py  a request's form -> what to colourise: limits, decoding as `jaxcolor colorize`
              decodes, hints, the preview; the image bytes of the answer
  guard.py    what every request passes: the Host check, the token, security headers
  static/     the page: plain HTML, CSS and JavaScript modules, no build step, no network

Why Starlette and uvicorn: a small ASGI toolkit whose maintainers keep it current (the
multipart parser with part limits, StaticFiles with path-traversal checks, a test client),
and a server that runs it without a reverse proxy on a laptop. FastAPI's validation layer
would add a second model of the request beside `jaxcolor.inference.hints`, which already is
the one definition of a hint; Flask or a thread-per-request server would block a thread per
waiting upload, where one event loop holds many cheaply while a bounded number are worked on.
The model itself is not asynchronous: `engine` hands photos to threads and to G's one thread.

This layer sits on `inference` (and `data.images` for decoding errors): it never imports
training code or Grain (`tests/test_layers.py`).
"""
