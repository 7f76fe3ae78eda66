"""`jaxcolor serve`: flags refused before anything starts (exit 2), and the command itself
in a subprocess: the URL it prints (with a token beyond loopback), the API behind it, and a
clean stop on Ctrl-C (exit status 130, as every command interrupted)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys

import httpx2
import pytest

from jaxcolor import cli
from tests.support import REPO, trained_workdir


def error_line(capsys) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("flags, message", [
    (["--best"], "error: --step and --best choose among a run's checkpoints"),
    (["--checkpoint=run", "--token=short"], "error: --token must be at least 8"),
    (["--checkpoint=run", "--port=70000"], "error: --port must be 0..65535, got 70000"),
    (["--checkpoint=run", "--queue=0"], "error: --queue must be >= 1, got 0"),
])
def test_bad_flags_are_usage_errors(capsys, flags, message):
    assert cli.main(["serve", *flags]) == 2
    assert error_line(capsys).startswith(message)


def test_a_port_in_use_fails_before_the_model_loads(capsys, tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        code = cli.main(["serve", f"--checkpoint={tmp_path / 'no-such-run'}", f"--port={port}"])
    assert code == 2
    assert error_line(capsys).startswith(f"error: cannot listen on 127.0.0.1:{port}: ")


@pytest.mark.slow
def test_beyond_loopback_the_printed_url_carries_a_token_the_api_checks(tmp_path_factory):
    workdir = trained_workdir(tmp_path_factory)
    # stderr goes to a file, not a pipe nobody reads while the server runs: a full pipe
    # would block the server's logging, and with it the server.
    log = tmp_path_factory.mktemp("serve") / "stderr.txt"
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "jaxcolor", "serve", f"--checkpoint={workdir}",
             "--backend=jax", "--host=0.0.0.0", "--port=0"], cwd=REPO, stdout=subprocess.PIPE,
            stderr=stderr, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    try:
        lines = []
        while not (found := re.search(r"jaxcolor studio: http://\S+:(\d+)/#token=(\S+)",
                                      "".join(lines))):
            line = process.stdout.readline()
            assert line, log.read_text()
            lines.append(line)
        port, token = found.groups()
        health = f"http://127.0.0.1:{port}/api/health"
        assert httpx2.get(health, timeout=60).status_code == 401
        answer = httpx2.get(health, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert answer.status_code == 200 and answer.json()["model"] == "infer_tiny_run step 3"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130, log.read_text()[-3000:]
        assert log.read_text().strip().splitlines()[-1] == "interrupted"
    finally:
        process.kill()
        process.stdout.close()


def test_a_signal_stop_exits_130_even_when_the_reraised_interrupt_is_lost(monkeypatch):
    """uvicorn re-raises Ctrl-C once it has shut down, but asyncio's teardown can swallow
    that KeyboardInterrupt (CI saw exit 0): the status comes from the server's own state."""
    import uvicorn

    from jaxcolor.cli import common
    from jaxcolor.serve import app

    class Colorizer:
        step, render_size, backend = 3, 64, "jax"

        def colorize(self, image):
            return image

    class Server:
        def __init__(self, config):
            self.started = self.should_exit = False

        def run(self, sockets):  # serves, then a signal arrives and the re-raise is lost
            self.started = self.should_exit = True
            self.sockets = sockets

    monkeypatch.setattr(common, "load_colorizer", lambda args: Colorizer())
    monkeypatch.setattr(app, "create_app", lambda colorizer, settings: None)
    monkeypatch.setattr(uvicorn, "Server", Server)
    assert cli.main(["serve", "--checkpoint=run", "--port=0"]) == 130
