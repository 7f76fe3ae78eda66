"""Colourisation throughput: files on disk to files written, and the network alone.

    python -m benchmarks.inference --checkpoint /runs/demo --synthetic 32
    python -m benchmarks.inference --checkpoint /runs/gan101 --images /photos --render 224,512
    python -m benchmarks.inference --config experiments/configs/gan.py --synthetic 16 \
        --backends jax,onnx

For each render size (the side of the square the network sees) and backend, these lines:
  inference/end_to_end    images/s of `jaxcolor.inference.pipeline.run` (what `jaxcolor
                          colorize` does): decode each file, render-size L, G in
                          batches, guided upsampling to full size, Lab -> sRGB, encode and
                          write the file (worker threads decode and write while G runs)
  inference/model_host    images/s of `Colorizer.predict_ab` on a host batch of L: the
                          backend's forward with the copies to and from the device
  inference/model_device  images/s of the jitted G forward on a batch already on the
                          device, blocking once per window (the JAX backend's ceiling;
                          JAX backend only)
Compilation and the first pass over the files are warm-up and not timed; each figure is the
median of `--windows` windows.

`--synthetic N` writes N gray JPEG photos of `--photo_size` (smooth random shapes) to a
temporary directory. G comes from any training checkpoint (`--checkpoint` takes a run
workdir or its checkpoints/ directory, as `jaxcolor colorize` does) or is initialised at
random from a training config (`--config`, plus `--set` overrides): the cost of colourising
does not depend on the weights. `--backends jax,onnx` times both of `Colorizer`'s backends
(onnx needs `pip install 'jaxcolor[onnx]'`).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path

import jax
import numpy as np
from PIL import Image

from benchmarks import common


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="run workdir or checkpoints directory")
    model.add_argument("--config", help="training config file[:variant]; G at random init")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="FIELD=VALUE", help="override a field of --config (repeatable)")
    p.add_argument("--backends", default="jax", help="comma list of jax, onnx")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="a directory of photos")
    src.add_argument("--synthetic", type=int, metavar="N", help="write N gray JPEGs and use them")
    p.add_argument("--photo_size", default="640x480", help="WxH of --synthetic photos")
    p.add_argument("--render", default="224,512", help="render sizes, comma list")
    p.add_argument("--batch_size", type=int, default=8, help="photos per forward pass")
    p.add_argument("--workers", type=int, default=2, help="threads decoding and writing files")
    p.add_argument("--model_steps", type=int, default=5,
                   help="forward passes per model-only window")
    common.add_output_args(p)
    p.set_defaults(windows=3)
    args = p.parse_args(argv)
    args.renders = [int(r) for r in args.render.split(",") if r]
    args.backends = [b for b in args.backends.split(",") if b]
    unknown = sorted(set(args.backends) - {"jax", "onnx"})
    if unknown or not args.backends:
        p.error(f"--backends {','.join(args.backends)}: choose from jax, onnx")
    if args.overrides and not args.config:
        p.error("--set overrides a --config; a checkpoint's config is fixed")
    try:
        args.photo_wh = tuple(int(v) for v in args.photo_size.lower().split("x"))
        assert len(args.photo_wh) == 2 and min(args.photo_wh) > 0
    except (ValueError, AssertionError):
        p.error(f"--photo_size {args.photo_size}: expected WIDTHxHEIGHT, e.g. 640x480")
    return args


def write_photos(directory: Path, count: int, width: int, height: int, seed: int = 0) -> Path:
    """`count` gray JPEGs: upsampled random blocks plus noise, so they compress like photos
    rather than like flat fields or pure noise."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    for i in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (12, 16), np.uint8))
        smooth = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), np.int16)
        noisy = np.clip(smooth + rng.integers(-8, 9, smooth.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(directory / f"{i:05d}.jpg", quality=90)
    return directory


def end_to_end_rate(colorizer, images_dir: Path, out_dir: Path, args):
    """(median images/s of `pipeline.run` over the whole directory after one warm-up pass,
    every window's rate, the number of photos, the share of the cores this process used)."""
    from jaxcolor.inference import files, pipeline

    items, failures, inputs = files.discover(str(images_dir), out_dir, files.DEFAULT_MAX_PIXELS)
    planned = files.plan(items, inputs, out_dir, "png")

    def window() -> int:
        summary = pipeline.run(colorizer, planned, overwrite=True, workers=args.workers,
                               progress=lambda done, total: None, summary=pipeline.Summary())
        if summary.failures or failures:
            raise RuntimeError(f"colourising failed: {(failures + summary.failures)[:3]}")
        return summary.done

    window()  # compiles every batch bucket the run needs, fills the page cache
    (rate, rates), cpu = common.cpu_usage(lambda: common.median_rate(window, args.windows))
    return rate, rates, len(planned), cpu["share"]


def make_colorizer_factory(args):
    """(render, backend) -> a `Colorizer`, of the checkpoint or of the config at random init."""
    from jaxcolor.inference.colorizer import Colorizer

    if args.checkpoint:
        return lambda render, backend: Colorizer.from_checkpoint(
            args.checkpoint, render_size=render, batch_size=args.batch_size, backend=backend)
    config = common.load_config(args.config)
    common.apply_overrides(config, args.overrides)
    return lambda render, backend: Colorizer.from_config(
        config, render_size=render, batch_size=args.batch_size, backend=backend)


def device_forward(colorizer):
    """(jitted G forward (state, l_norm) -> ab_norm, G's state on the device)."""
    from flax import nnx

    graphdef, state = nnx.split(colorizer.generator())

    @jax.jit
    def forward(state, l_norm):
        return nnx.merge(graphdef, state)(l_norm)

    return forward, jax.device_put(state)


def host_rate(colorizer, render: int, args) -> tuple[float, list[float], float]:
    """(images/s of `predict_ab` on a host batch of L, every window's rate, core share)."""
    L_host = np.random.default_rng(0).uniform(0, 100, (args.batch_size, render, render))
    L_host = L_host.astype(np.float32)
    colorizer.predict_ab(L_host)  # compile this batch bucket / warm ONNX Runtime up

    def window() -> int:
        for _ in range(args.model_steps):
            colorizer.predict_ab(L_host)
        return args.model_steps * args.batch_size

    (rate, rates), cpu = common.cpu_usage(lambda: common.median_rate(window, args.windows))
    return rate, rates, cpu["share"]


def device_rate(colorizer, render: int, args) -> dict:
    """images/s of the jitted forward on a batch already on the device, compile time and
    GFLOP/image from XLA's cost analysis."""
    forward, state = device_forward(colorizer)
    n = args.batch_size
    l_dev = jax.device_put(np.random.default_rng(0).uniform(-1, 1, (n, render, render, 1))
                           .astype(np.float32))
    compiled, compile_s = common.timed(lambda: forward.lower(state, l_dev).compile())
    jax.block_until_ready(compiled(state, l_dev))

    def window() -> int:
        out = None
        for _ in range(args.model_steps):
            out = compiled(state, l_dev)
        jax.block_until_ready(out)
        return args.model_steps * n

    (rate, rates), cpu = common.cpu_usage(lambda: common.median_rate(window, args.windows))
    flops = common.compiled_flops(compiled)
    return {"rate": rate, "rates": rates, "cpu_share": cpu["share"],
            "compile_s": round(compile_s, 3),
            "gflops_per_image": float(f"{flops / n / 1e9:.4g}") if flops else None}


def main(argv=None) -> list[dict]:
    args = _parse(argv)
    make_colorizer = make_colorizer_factory(args)
    results = []

    def record(figure, value, windows, base, cfg, **extra):
        result = common.make_result(figure, round(value, 2), "images/s", **base, **extra,
                                    windows=[round(r, 2) for r in windows], config=cfg)
        common.emit(result, args.out)
        results.append(result)

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="jaxcolor-infer-")))
        if args.synthetic:
            images_dir = write_photos(tmp / "photos", args.synthetic, *args.photo_wh)
        else:
            images_dir = Path(args.images)
        for render in args.renders:
            for backend in args.backends:
                colorizer = make_colorizer(render, backend)
                size = colorizer.render_size
                base = {"batch": args.batch_size, "resolution": size}
                cfg = {"checkpoint": str(args.checkpoint) if args.checkpoint else None,
                       "config": args.config, "overrides": args.overrides,
                       "step": colorizer.step, **common.model_summary(colorizer.config),
                       "backend": backend, "upsample": colorizer.upsample,
                       "images": "synthetic" if args.synthetic else str(images_dir),
                       "photo_size": args.photo_size if args.synthetic else None,
                       "workers": args.workers, "model_steps": args.model_steps}
                rate, rates, count, share = end_to_end_rate(
                    colorizer, images_dir, tmp / f"out{size}-{backend}", args)
                cfg["count"] = count
                record("inference/end_to_end", rate, rates, base, cfg, cpu_share=share)
                rate, rates, share = host_rate(colorizer, size, args)
                record("inference/model_host", rate, rates, base, cfg, cpu_share=share)
                if backend == "jax":
                    dev = device_rate(colorizer, size, args)
                    record("inference/model_device", dev["rate"], dev["rates"], base, cfg,
                           cpu_share=dev["cpu_share"], compile_s=dev["compile_s"],
                           gflops_per_image=dev["gflops_per_image"])
    return results


if __name__ == "__main__":
    main()
