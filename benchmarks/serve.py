"""The studio under load: N clients at once against one `jaxcolor serve` process.

    python -m benchmarks.serve --checkpoint /runs/gan101
    python -m benchmarks.serve --checkpoint /runs/demo --clients 1,8 --sizes 640x480,1920x1080

The server runs as users run it (`python -m jaxcolor serve`, its own process, on a free
loopback port); for each number of `--clients`, that many threads each post `--requests`
photos of one size, in one of two modes, and every scenario is one JSON line (`common.emit`,
into benchmarks/results/serve.jsonl):

  serve/preview_WxH   the page's recolour: `preview` (long side `--preview`) as PNG
  serve/full_WxH      the download: the full-size result as PNG

value: the median latency in ms; beside it p95_ms, photos_per_s (requests done / wall time),
errors (any answer but 200; must be 0, else the script exits 1) and peak_rss_mb (the server
process's peak resident memory so far, VmHWM). Targets on 2 cores, with the starter model
and one client (a person at the page): a preview p50 <= 300 ms, a full 1024x768 result p50
<= 1000 ms (`target_ms`, `met`); with the tiny test model the figures are only a smoke.
Photos are synthetic gray JPEGs (smooth random fields plus grain): their content does not
change the cost. Before each scenario one round of the same concurrent requests is sent
untimed (it compiles G's batch shapes).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import io
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks import common, tables

AREA = "serve"
TARGET_MS = {("preview", None): 300, ("full", (1024, 768)): 1000}  # for one client


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="run workdir or checkpoints directory")
    p.add_argument("--backend", default="auto", help="the server's --backend")
    p.add_argument("--clients", default="1,4", help="clients posting at once, comma list")
    p.add_argument("--requests", type=int, default=8, help="photos each client posts")
    p.add_argument("--sizes", default="640x480,1024x768,1920x1080", help="WxH, comma list")
    p.add_argument("--modes", default="preview,full", help="comma list of preview, full")
    p.add_argument("--preview", type=int, default=1024, help="the preview's long side")
    p.add_argument("--queue", type=int, default=None,
                   help="server --queue (default: the most --clients)")
    common.add_out_arg(p, AREA)
    tables.add_args(p, AREA, TABLES)
    args = p.parse_args(argv)
    try:
        args.sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
        assert all(len(s) == 2 and min(s) >= 8 for s in args.sizes)
    except (ValueError, AssertionError):
        p.error(f"--sizes {args.sizes}: expected WIDTHxHEIGHT[,...], e.g. 640x480")
    args.modes = args.modes.split(",")
    try:
        args.clients = [int(c) for c in args.clients.split(",")]
    except ValueError:
        p.error(f"--clients {args.clients}: expected a comma list of numbers, e.g. 1,4")
    args.queue = args.queue or max(args.clients)
    if set(args.modes) - {"preview", "full"}:
        p.error(f"--modes {','.join(args.modes)}: choose from preview, full")
    if min(*args.clients, args.requests) < 1:
        p.error("--clients and --requests must be >= 1")
    return args


class Server:
    """`python -m jaxcolor serve` in a subprocess, on a free loopback port."""

    def __init__(self, args):
        command = [sys.executable, "-m", "jaxcolor", "serve", f"--checkpoint={args.checkpoint}",
                   f"--backend={args.backend}", "--port=0",
                   f"--queue={args.queue}"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        found = re.search(r"http://([^:/]+):(\d+)/", line)
        if not found:
            self.process.kill()
            raise RuntimeError(f"the server did not start: {line!r}")
        self.host, self.port = found.group(1), int(found.group(2))

    def peak_rss_mb(self) -> float | None:
        """The server's peak resident memory (Linux: VmHWM), in MiB."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        kib = re.search(r"VmHWM:\s+(\d+) kB", status)
        return round(int(kib.group(1)) / 1024, 1) if kib else None

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def photo_bytes(width: int, height: int, seed: int) -> bytes:
    """A gray JPEG that compresses like a photo: smooth random blocks plus grain."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (12, 16), np.uint8))
    smooth = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), np.int16)
    noisy = np.clip(smooth + rng.integers(-8, 9, smooth.shape), 0, 255).astype(np.uint8)
    stream = io.BytesIO()
    Image.fromarray(noisy).save(stream, "JPEG", quality=90)
    return stream.getvalue()


def multipart(photo: bytes, fields: dict[str, str]) -> tuple[bytes, str]:
    """A multipart/form-data body with the photo as `image`, and its content type."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
             .encode() for name, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
                 f'filename="photo.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()
                 + photo + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), \
        f"multipart/form-data; boundary={boundary}"


def post(server: Server, body: bytes, content_type: str) -> tuple[float, int]:
    """(seconds, HTTP status) of one POST /api/colorize, the answer read whole."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=600)
    started = time.perf_counter()
    try:
        connection.request("POST", "/api/colorize", body, {"Content-Type": content_type})
        response = connection.getresponse()
        response.read()
        return time.perf_counter() - started, response.status
    finally:
        connection.close()


def scenario(server: Server, size: tuple[int, int], mode: str, clients: int, args) -> dict:
    """Every client posts its photos one after another; the figures of all the answers."""
    fields = {"format": "png", **({"preview": str(args.preview)} if mode == "preview" else {})}
    bodies = [multipart(photo_bytes(*size, seed=i), fields) for i in range(clients)]

    def client(i: int, rounds: int) -> list[tuple[float, int]]:
        return [post(server, *bodies[i]) for _ in range(rounds)]

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients), [1] * clients))  # warm-up
        started = time.perf_counter()
        answers = [a for answers in pool.map(client, range(clients), [args.requests] * clients)
                   for a in answers]
        wall = time.perf_counter() - started
    latencies = sorted(1000 * seconds for seconds, _ in answers)
    p50 = statistics.median(latencies)
    target = TARGET_MS.get((mode, None if mode == "preview" else size)) if clients == 1 else None
    return {"p50_ms": round(p50, 1),
            "p95_ms": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 1),
            "photos_per_s": round(len(answers) / wall, 2),
            "errors": sum(status != 200 for _, status in answers), "requests": len(answers),
            "target_ms": target, "met": None if target is None else p50 <= target}


def table(path: str) -> str:
    """p50 (p95) milliseconds per request, by photo size, for 1 and N clients at once, of
    previews and full-size results: the newest line per (clients, kind, size) among the
    lines of the model measured last."""
    lines = tables.read(path)
    model = lines[-1]["config"]["checkpoint"]
    chosen = tables.newest(lines, lambda r: (r["clients"], r["figure"].split("/")[1])
                           if r["config"]["checkpoint"] == model else None)
    sizes = list(dict.fromkeys(name.split("_")[1] for _, name in chosen))
    rows = []
    for clients, kind in dict.fromkeys((c, n.split("_")[0]) for c, n in chosen):
        cells = [chosen.get((clients, f"{kind}_{size}")) for size in sizes]
        rows.append([f"{clients} client{'s' if clients > 1 else ''}, "
                     f"{'preview' if kind == 'preview' else 'full size'}",
                     *(f"{c['value']:.0f} ({c['p95_ms']:.0f})" if c else "" for c in cells)])
    return tables.markdown([f"p50 ms (p95), {Path(model).name}", *sizes], rows)


TABLES = {"latency": table}


def main(argv=None) -> list[dict] | None:
    if tables.requested(argv, AREA, TABLES):
        return None
    args = _parse(argv)
    server = Server(args)
    results = []
    try:
        for clients in args.clients:
            for size in args.sizes:
                for mode in args.modes:
                    figures = scenario(server, size, mode, clients, args)
                    result = common.make_result(
                        f"serve/{mode}_{size[0]}x{size[1]}", figures.pop("p50_ms"), "ms",
                        resolution=max(size), clients=clients, **figures,
                        peak_rss_mb=server.peak_rss_mb(),
                        config={"checkpoint": str(args.checkpoint), "backend": args.backend,
                                "preview": args.preview if mode == "preview" else None,
                                "queue": args.queue})
                    common.emit(result, args.out)
                    results.append(result)
    finally:
        server.close()
    if any(r["errors"] for r in results):
        raise SystemExit(f"{sum(r['errors'] for r in results)} requests failed")
    return results


if __name__ == "__main__":
    main()
