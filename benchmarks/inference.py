"""Colourisation throughput: files on disk to files written, and the network alone.

    python -m benchmarks.inference --checkpoint /runs/demo --synthetic 32
    python -m benchmarks.inference --checkpoint /runs/gan101 --images /photos --render 224,512

For each render size (the side of the square the network sees), three JSON lines:
  inference/end_to_end    images/s of `jaxcolor.colorize.run` (what `python -m
                          jaxcolor.colorize` does): decode each file, render-size L, G in
                          batches, guided upsampling to full size, Lab -> sRGB, encode and
                          write the file (worker threads decode and write while G runs)
  inference/model_host    images/s of `Colorizer.predict_ab` on a host batch of L: the
                          backend's forward with the copies to and from the device
  inference/model_device  images/s of the jitted G forward on a batch already on the
                          device, blocking once per window (the JAX backend's ceiling)
Compilation and the first pass over the files are warm-up and not timed; each figure is the
median of `--windows` windows.

`--synthetic N` writes N gray JPEG photos of `--photo_size` (smooth random shapes) to a
temporary directory. The checkpoint is any training checkpoint (`--checkpoint` takes a run
workdir or its checkpoints/ directory, as `jaxcolor.colorize` does).
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
    p.add_argument("--checkpoint", required=True, help="run workdir or checkpoints directory")
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
    """(median images/s of `colorize.run` over the whole directory after one warm-up pass,
    every window's rate, the number of photos, the share of the cores this process used)."""
    from jaxcolor import colorize

    items, failures, inputs = colorize.discover(str(images_dir), out_dir,
                                                colorize.DEFAULT_MAX_PIXELS)
    planned = colorize.plan(items, inputs, out_dir, "png")

    def window() -> int:
        summary = colorize.run(colorizer, planned, overwrite=True, workers=args.workers,
                               progress=lambda done, total: None, summary=colorize.Summary())
        if summary.failures or failures:
            raise RuntimeError(f"colourising failed: {(failures + summary.failures)[:3]}")
        return summary.done

    window()  # compiles every batch bucket the run needs, fills the page cache
    (rate, rates), cpu = common.cpu_usage(lambda: common.median_rate(window, args.windows))
    return rate, rates, len(planned), cpu["share"]


def restore_forward(checkpoint_path: str):
    """(jitted G forward (variables, l_norm) -> ab_norm, G's variables on the device) of a
    checkpoint, restored as `Colorizer.from_checkpoint` restores it."""
    import ml_collections
    from flax import nnx

    from jaxcolor import infer
    from jaxcolor.train import build, checkpoint

    directory = infer.checkpoint_dir(checkpoint_path)
    step = checkpoint.resolve_step(directory)
    config = ml_collections.ConfigDict(checkpoint.read_config(directory, step))
    abstract = nnx.eval_shape(lambda: build.make_generator(config.model, seed=0))
    abstract.eval()
    graphdef, params, batch_stats = nnx.split(abstract, nnx.Param, ...)
    variables = checkpoint.restore_generator(
        directory, step, {"params": params, "batch_stats": batch_stats})

    @jax.jit
    def forward(variables, l_norm):
        return nnx.merge(graphdef, variables["params"], variables["batch_stats"])(l_norm)

    return forward, jax.device_put(variables), config


def model_rates(colorizer, forward, variables, render: int, args) -> dict:
    """images/s of the forward on a device batch and of `predict_ab` on a host batch."""
    n = args.batch_size
    rng = np.random.default_rng(0)
    L_host = rng.uniform(0, 100, (n, render, render)).astype(np.float32)
    l_dev = jax.device_put(L_host[..., None] / 50.0 - 1.0)
    compiled, compile_s = common.timed(lambda: forward.lower(variables, l_dev).compile())
    jax.block_until_ready(compiled(variables, l_dev))

    def device_window() -> int:
        out = None
        for _ in range(args.model_steps):
            out = compiled(variables, l_dev)
        jax.block_until_ready(out)
        return args.model_steps * n

    colorizer.predict_ab(L_host)  # compile this batch bucket

    def host_window() -> int:
        for _ in range(args.model_steps):
            colorizer.predict_ab(L_host)
        return args.model_steps * n

    (device, device_rates), device_cpu = common.cpu_usage(
        lambda: common.median_rate(device_window, args.windows))
    (host, host_rates), host_cpu = common.cpu_usage(
        lambda: common.median_rate(host_window, args.windows))
    flops = common.compiled_flops(compiled)
    return {"device": device, "device_rates": device_rates, "host": host,
            "host_rates": host_rates, "compile_s": round(compile_s, 3),
            "device_cpu_share": device_cpu["share"], "host_cpu_share": host_cpu["share"],
            "gflops_per_image": float(f"{flops / n / 1e9:.4g}") if flops else None}


def main(argv=None) -> list[dict]:
    args = _parse(argv)
    from jaxcolor import infer

    results = []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="jaxcolor-infer-")))
        if args.synthetic:
            images_dir = write_photos(tmp / "photos", args.synthetic, *args.photo_wh)
        else:
            images_dir = Path(args.images)
        forward, variables, config = restore_forward(args.checkpoint)
        for render in args.renders:
            colorizer = infer.Colorizer.from_checkpoint(
                args.checkpoint, render_size=render, batch_size=args.batch_size)
            rate, rates, count, share = end_to_end_rate(colorizer, images_dir,
                                                        tmp / f"out{render}", args)
            model = model_rates(colorizer, forward, variables, colorizer.render_size, args)
            base = {"batch": args.batch_size, "resolution": colorizer.render_size}
            cfg = {"checkpoint": str(args.checkpoint), "step": colorizer.step,
                   **common.model_summary(config), "upsample": colorizer.upsample,
                   "images": "synthetic" if args.synthetic else str(images_dir),
                   "count": count, "photo_size": args.photo_size if args.synthetic else None,
                   "workers": args.workers, "model_steps": args.model_steps}
            figures = [
                ("inference/end_to_end", rate, rates, {"cpu_share": share}),
                ("inference/model_host", model["host"], model["host_rates"],
                 {"cpu_share": model["host_cpu_share"]}),
                ("inference/model_device", model["device"], model["device_rates"],
                 {"cpu_share": model["device_cpu_share"], "compile_s": model["compile_s"],
                  "gflops_per_image": model["gflops_per_image"]}),
            ]
            for figure, value, windows, extra in figures:
                result = common.make_result(
                    figure, round(value, 2), "images/s", **base, **extra,
                    windows=[round(r, 2) for r in windows], config=cfg)
                common.emit(result, args.out)
                results.append(result)
    return results


if __name__ == "__main__":
    main()
