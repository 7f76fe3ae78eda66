"""Threads or processes for the host side of colourising: how each stage scales with workers.

    python -m benchmarks.host_workers --photos 32 --photo_size 640x480 --workers 2

Times the host stages of `jaxcolor colorize` on synthetic 640x480 photos, one photo per
task: decoding a JPEG, rendering the L the network sees (Lanczos resize + lightness), the
numpy compose at full resolution, encoding PNG and JPEG. Each runs serially, on a thread
pool and on a process pool of `--workers`; one JSON line per stage with the photos/s of each
and the speed-ups over serial. Threads scale where the library releases the GIL (Pillow's
codecs and resampling, numpy); where a stage did not, processes would (the pipeline uses
threads: BENCHMARKS.md has the figures behind that choice).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import multiprocessing
import time

import numpy as np
from PIL import Image

from benchmarks import common

AREA = "host_workers"

RENDER = 224


def _photo(seed: int, width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (12, 16, 3), np.uint8))
    smooth = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), np.int16)
    return np.clip(smooth + rng.integers(-8, 9, smooth.shape), 0, 255).astype(np.uint8)


def _jpeg(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def decode(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.size[0]


def render(rgb: np.ndarray) -> int:
    from jaxcolor.inference import photo

    return photo.render_lightness(photo.Photo(rgb), RENDER)[0].size


def compose(rgb: np.ndarray) -> int:
    from jaxcolor.inference import photo

    p = photo.Photo(rgb)
    L_square, inner = photo.render_lightness(p, RENDER)
    ab = np.random.default_rng(0).uniform(-40, 40, (RENDER, RENDER, 2)).astype(np.float32)
    out = photo.compose(p, photo.crop_render(ab, inner), photo.crop_render(L_square, inner),
                        threads=1)
    return out.size


def encode_png(rgb: np.ndarray) -> int:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG", compress_level=1)
    return buffer.tell()


def encode_jpeg(rgb: np.ndarray) -> int:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=95, subsampling=0)
    return buffer.tell()


def _rate(fn, tasks, pool=None) -> float:
    start = time.perf_counter()
    if pool is None:
        for task in tasks:
            fn(task)
    else:
        list(pool.map(fn, tasks))
    return len(tasks) / (time.perf_counter() - start)


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", type=int, default=32)
    p.add_argument("--photo_size", default="640x480", help="WxH")
    p.add_argument("--workers", type=int, default=2)
    common.add_output_args(p, AREA)
    p.set_defaults(windows=3)
    args = p.parse_args(argv)
    width, height = (int(v) for v in args.photo_size.lower().split("x"))
    rgbs = [_photo(i, width, height) for i in range(args.photos)]
    stages = {"decode_jpeg": (decode, [_jpeg(x) for x in rgbs]), "render": (render, rgbs),
              "compose_numpy": (compose, rgbs), "encode_png": (encode_png, rgbs),
              "encode_jpeg": (encode_jpeg, rgbs)}
    results = []
    context = multiprocessing.get_context("spawn")  # as ingestion does: JAX threads and fork
    with concurrent.futures.ThreadPoolExecutor(args.workers) as threads, \
            concurrent.futures.ProcessPoolExecutor(args.workers, mp_context=context) as procs:
        for name, (fn, tasks) in stages.items():
            for pool in (None, threads, procs):  # warm-up: imports, pool start, caches
                _rate(fn, tasks[:args.workers], pool)
            rates = {kind: np.median([_rate(fn, tasks, pool) for _ in range(args.windows)])
                     for kind, pool in (("serial", None), ("threads", threads),
                                        ("processes", procs))}
            result = common.make_result(
                f"host_workers/{name}", round(float(rates["threads"]), 2), "photos/s",
                resolution=None, serial=round(float(rates["serial"]), 2),
                processes=round(float(rates["processes"]), 2),
                thread_speedup=round(float(rates["threads"] / rates["serial"]), 3),
                process_speedup=round(float(rates["processes"] / rates["serial"]), 3),
                config={"photos": args.photos, "photo_size": args.photo_size,
                        "workers": args.workers})
            common.emit(result, args.out)
            results.append(result)
    return results


if __name__ == "__main__":
    main()
