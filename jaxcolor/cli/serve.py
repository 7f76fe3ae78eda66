"""`jaxcolor serve`: the studio, a local web page to colourise photos with a checkpoint.

One process: the model is loaded once and shared by every request (`jaxcolor.serve`). It
listens on 127.0.0.1 unless told otherwise; any other --host needs a token (given, or made
and printed in the URL). The command prints the URL and opens nothing; Ctrl-C stops it once
the requests in progress are answered. Exit status: 2 nothing ran (bad flags, checkpoint, a
port in use), 130 stopped by Ctrl-C.
"""

from __future__ import annotations

import argparse
import socket
import sys

import numpy as np

from jaxcolor import errors
from jaxcolor.cli import common

HELP = "the studio: a local web page to colourise photos, place colour hints, compare, download"
EXAMPLES = common.examples(
    "jaxcolor serve --checkpoint=/runs/gan101",
    "jaxcolor serve --checkpoint=/runs/gan101/checkpoints --best --port=0",
    "jaxcolor serve --checkpoint=/runs/gan101 --host=0.0.0.0 --port=8080")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from jaxcolor.serve.settings import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, DEFAULT_QUEUE

    common.add_checkpoint_flags(parser)
    common.add_colorizer_flags(parser)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: this machine only); any other "
                             "needs a token")
    parser.add_argument("--port", type=int, default=8080, help="port (0: any free one)")
    parser.add_argument("--token", default=None,
                        help="require this token on every API call (default: none on "
                             "loopback, a random one printed in the URL otherwise)")
    parser.add_argument("--max_bytes", type=int, default=DEFAULT_MAX_BYTES,
                        help="largest upload in bytes (413 beyond)")
    parser.add_argument("--max_pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="largest photo in pixels, width x height (413 beyond)")
    parser.add_argument("--queue", type=int, default=DEFAULT_QUEUE,
                        help="requests served at once (503 beyond); memory stays under about "
                             "queue x max_pixels x 12 bytes besides the model")


def run(args: argparse.Namespace) -> int:
    uvicorn = errors.require("uvicorn", "serve")
    for module in ("starlette", "python_multipart"):
        errors.require(module, "serve")
    from PIL import Image

    from jaxcolor.serve import guard
    from jaxcolor.serve.app import create_app
    from jaxcolor.serve.settings import Settings

    common.check_positive(batch_size=args.batch_size, render_size=args.render_size,
                          workers=args.workers, max_bytes=args.max_bytes,
                          max_pixels=args.max_pixels, queue=args.queue)
    if args.checkpoint is None:  # the flags checked before the port is taken
        common.check_no_step(args)
    token = guard.resolve_token(args.host, args.token)
    listener = listen(args.host, args.port)
    Image.MAX_IMAGE_PIXELS = args.max_pixels  # Pillow's own bomb guard, per process
    colorizer = common.load_colorizer(args)
    colorizer.colorize(np.zeros((64, 64), np.uint8))  # compile G before the first visitor
    settings = Settings(host=args.host, token=token, max_bytes=args.max_bytes,
                        max_pixels=args.max_pixels, queue=args.queue, workers=args.workers)
    print(f"checkpoint step {colorizer.step}, render size {colorizer.render_size}, backend "
          f"{colorizer.backend}; Ctrl-C stops the studio", file=sys.stderr, flush=True)
    print(f"jaxcolor studio: {url(args.host, listener, token)}", flush=True)
    config = uvicorn.Config(create_app(colorizer, settings), log_level="warning",
                            limit_concurrency=4 * args.queue + 32, server_header=False)
    server = uvicorn.Server(config)
    server.run(sockets=[listener])  # until Ctrl-C, which it raises again once stopped
    if not server.started:
        raise errors.RunError("the server did not start (see the messages above)")
    # Stopped by a signal: uvicorn re-raises it after shutting down, but asyncio's teardown
    # can swallow the KeyboardInterrupt; raised again here, the stop is reported as every
    # command reports Ctrl-C ("interrupted", exit 130).
    if server.should_exit:
        raise KeyboardInterrupt
    return errors.EXIT_OK


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, opened before the model loads so a busy port fails at once."""
    if not 0 <= port <= 65535:
        raise errors.UsageError(f"--port must be 0..65535, got {port}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host.strip("[]"), port), family=family)
    except OSError as e:
        raise errors.UsageError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


def url(host: str, listener: socket.socket, token: str | None) -> str:
    """The address to open; a token rides in the fragment, which browsers never send on."""
    port = listener.getsockname()[1]
    shown = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/" + (f"#token={token}" if token else "")
