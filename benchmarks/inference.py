"""Colourisation throughput: files on disk to files written, where the time goes, evaluation.

    python -m benchmarks.inference --checkpoint /runs/demo --synthetic 32
    python -m benchmarks.inference --checkpoint /runs/gan101 --images /photos --render 224,512
    python -m benchmarks.inference --config experiments/configs/gan.py --synthetic 16 \
        --backends jax,onnx --formats png,jpg

For each render size (the side of the square the network sees) and backend, these lines:
  inference/end_to_end    photos/s of `jaxcolor colorize` (`files.colorize_files`): decode,
                          render-size L, G in batches, compose at full resolution, encode and
                          write, overlapped on every worker and the device; one line per
                          `--formats` entry
  inference/stages        milliseconds per photo of each stage, each timed alone on one
                          thread (the host stages) or the device (blocking per stage): decode,
                          render (L at render size, tiles for the device compose), h2d, g,
                          compose, d2h, encode_write; beside them the end-to-end photos/s and
                          `device_busy_fraction`, the share of the end-to-end wall time the
                          device needs for G and compose (1.0: the device is the bottleneck)
  inference/model_host    photos/s of `Colorizer.predict_ab` on a host batch of L
  inference/model_device  photos/s of G alone on a batch already on the device (JAX backend)
  inference/evaluate      photos/s of `jaxcolor evaluate` (colourise and measure against the
                          gray baseline, paper protocol) on colour versions of the photos
Compilation and the first pass are warm-up and not timed; each throughput is the median of
`--windows` windows. `--synthetic N` writes N gray JPEGs of `--photo_size` (and N colour
ones for evaluation) to a temporary directory. G comes from a checkpoint (`--checkpoint`, a
run workdir or its checkpoints/ directory) or at random from a training config (`--config`,
plus `--set`): the cost of colourising does not depend on the weights.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path

import jax
import numpy as np
from PIL import Image

from benchmarks import common, tables

AREA = "inference"


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="run workdir or checkpoints directory")
    model.add_argument("--config", help="training config file[:variant]; G at random init")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="FIELD=VALUE", help="override a field of --config (repeatable)")
    p.add_argument("--backends", default="jax", help="comma list of jax, onnx")
    p.add_argument("--compose", default="auto", help="auto, device or host")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="a directory of photos")
    src.add_argument("--synthetic", type=int, metavar="N", help="write N photos and use them")
    p.add_argument("--photo_size", default="640x480", help="WxH of --synthetic photos")
    p.add_argument("--render", default="224,512", help="render sizes, comma list")
    p.add_argument("--formats", default="png", help="output formats, comma list of png, jpg")
    p.add_argument("--batch_size", type=int, default=8, help="photos per forward pass")
    p.add_argument("--workers", type=int, default=None, help="pipeline threads (default: cores)")
    p.add_argument("--model_steps", type=int, default=5,
                   help="forward passes per model-only window")
    p.add_argument("--no_evaluate", action="store_true", help="skip inference/evaluate")
    common.add_output_args(p, AREA)
    tables.add_args(p, AREA, TABLES)
    p.set_defaults(windows=3)
    args = p.parse_args(argv)
    args.renders = [int(r) for r in args.render.split(",") if r]
    args.backends = [b for b in args.backends.split(",") if b]
    args.formats = [f for f in args.formats.split(",") if f]
    if set(args.backends) - {"jax", "onnx"} or not args.backends:
        p.error(f"--backends {','.join(args.backends)}: choose from jax, onnx")
    if set(args.formats) - {"png", "jpg"} or not args.formats:
        p.error(f"--formats {','.join(args.formats)}: choose from png, jpg")
    if args.overrides and not args.config:
        p.error("--set overrides a --config; a checkpoint's config is fixed")
    try:
        args.photo_wh = tuple(int(v) for v in args.photo_size.lower().split("x"))
        assert len(args.photo_wh) == 2 and min(args.photo_wh) > 0
    except (ValueError, AssertionError):
        p.error(f"--photo_size {args.photo_size}: expected WIDTHxHEIGHT, e.g. 640x480")
    return args


def write_photos(directory: Path, count: int, width: int, height: int, *, colour: bool = False,
                 seed: int = 0) -> Path:
    """`count` JPEGs: upsampled random blocks plus noise, so they compress like photos rather
    than like flat fields or pure noise; gray, or colour (for evaluation's references)."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    shape = (12, 16, 3) if colour else (12, 16)
    for i in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, shape, np.uint8))
        smooth = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), np.int16)
        noisy = np.clip(smooth + rng.integers(-8, 9, smooth.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(directory / f"{i:05d}.jpg", quality=90)
    return directory


def end_to_end_rate(colorizer, images_dir: Path, out_dir: Path, fmt: str, args):
    """(median photos/s of `colorize_files` over the directory after a warm-up pass, every
    window's rate, the number of photos, the share of the cores this process used)."""
    from jaxcolor.inference import files

    items, failures, inputs = files.discover(str(images_dir), out_dir, files.DEFAULT_MAX_PIXELS)
    planned = files.plan(items, inputs, out_dir, fmt)

    def window() -> int:
        summary = files.colorize_files(colorizer, planned, overwrite=True, workers=args.workers,
                                       progress=lambda done, total: None,
                                       summary=files.Summary())
        if summary.failures or failures:
            raise RuntimeError(f"colourising failed: {(failures + summary.failures)[:3]}")
        return summary.done

    window()  # compiles every batch bucket the run needs, fills the page cache
    (rate, rates), cpu = common.cpu_usage(lambda: common.median_rate(window, args.windows))
    return rate, rates, len(planned), cpu["share"]


def _ms(fn, count: int) -> tuple[object, float]:
    out, seconds = common.timed(fn)
    return out, round(1000 * seconds / count, 3)


def stage_ms(colorizer, paths: list[Path], fmt: str, out_dir: Path) -> dict[str, float | None]:
    """Milliseconds per photo of each stage, timed alone (see the module docstring)."""
    from jaxcolor.inference import compose as compose_lib
    from jaxcolor.inference import files
    from jaxcolor.inference import photo as photo_lib

    n = len(paths)
    photos, ms = _ms(lambda: [files.load_photo_file(p, files.DEFAULT_MAX_PIXELS) for p in paths], n)
    stages = {"decode": ms}
    prepared, stages["render"] = _ms(lambda: [colorizer.prepare(p) for p in photos], n)
    L = np.stack([p.L_render for p in prepared])
    outputs = []
    if colorizer.compose == "device":
        tiles = np.concatenate([p.tiles for p in prepared])
        meta = np.concatenate([compose_lib.tile_meta(i, *p.photo.size, p.inner,
                                                     colorizer.render_size)
                               for i, p in enumerate(prepared)])
        tiles, meta = compose_lib.pad_to_bucket(tiles, meta)
        (L_dev, tiles_dev, meta_dev), stages["h2d"] = _ms(
            lambda: jax.block_until_ready(jax.device_put((L, tiles, meta))), n)
        ab, stages["g"] = _ms(lambda: jax.block_until_ready(colorizer.predict_device(L_dev)), n)
        sigma = photo_lib.BILATERAL_SIGMA if colorizer.upsample == "bilateral" else None
        out, stages["compose"] = _ms(lambda: jax.block_until_ready(compose_lib.compose_tiles(
            tiles_dev, meta_dev, ab, L_dev, sigma=sigma)), n)
        host, stages["d2h"] = _ms(lambda: np.asarray(out), n)
        start = 0
        for p in prepared:
            count = len(p.tiles)
            outputs.append(compose_lib.assemble(host[start:start + count], *p.photo.size))
            start += count
    else:
        ab, stages["g"] = _ms(lambda: colorizer.predict_ab(L), n)
        stages["h2d"] = stages["d2h"] = None  # G's copies are inside `g`; compose is on host
        outputs, stages["compose"] = _ms(lambda: [photo_lib.compose(
            p.photo, photo_lib.crop_render(a, p.inner), photo_lib.crop_render(p.L_render, p.inner),
            upsample=colorizer.upsample, threads=1) for p, a in zip(prepared, ab)], n)
    _, stages["encode_write"] = _ms(lambda: [files.save_image(o, out_dir / f"{i}.{fmt}")
                                             for i, o in enumerate(outputs)], n)
    return stages


def warm_stages(colorizer, paths, fmt, out_dir) -> dict:
    """`stage_ms` after one untimed pass (compilation, page cache)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stage_ms(colorizer, paths, fmt, out_dir)
    return stage_ms(colorizer, paths, fmt, out_dir)


def make_colorizer_factory(args):
    """(render, backend) -> a `Colorizer`, of the checkpoint or of the config at random init."""
    from jaxcolor.inference.colorizer import Colorizer

    kwargs = {"batch_size": args.batch_size, "compose": args.compose}
    if args.checkpoint:
        return lambda render, backend: Colorizer.from_checkpoint(
            args.checkpoint, render_size=render, backend=backend, **kwargs)
    config = common.load_config(args.config)
    common.apply_overrides(config, args.overrides)
    return lambda render, backend: Colorizer.from_config(config, render_size=render,
                                                         backend=backend, **kwargs)


def host_rate(colorizer, render: int, args) -> tuple[float, list[float], float]:
    """(photos/s of `predict_ab` on a host batch of L, every window's rate, core share)."""
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
    """photos/s of G on a batch already on the device, and GFLOP/photo (`lowered_flops`)."""
    from jaxcolor.inference.colorizer import forward

    n = args.batch_size
    L_dev = jax.device_put(np.random.default_rng(0).uniform(0, 100, (n, render, render))
                           .astype(np.float32))
    jax.block_until_ready(colorizer.predict_device(L_dev))  # compile

    def window() -> int:
        out = None
        for _ in range(args.model_steps):
            out = colorizer.predict_device(L_dev)
        jax.block_until_ready(out)
        return args.model_steps * n

    (rate, rates), cpu = common.cpu_usage(lambda: common.median_rate(window, args.windows))
    variables = colorizer.variables
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                            (variables["params"], variables["batch_stats"]))
    flops = common.lowered_flops(forward, colorizer.graphdef, *abstract,
                                 jax.ShapeDtypeStruct(L_dev.shape, L_dev.dtype))
    return {"rate": rate, "rates": rates, "cpu_share": cpu["share"],
            "gflops_per_image": float(f"{flops / n / 1e9:.4g}")}


def evaluate_rate(colorizer, photos_dir: Path, args) -> tuple[float, list[float], int]:
    """photos/s of `evaluation.evaluate` (paper protocol) over the colour photos."""
    from jaxcolor.data import images
    from jaxcolor.inference import evaluation

    paths = images.find_images(photos_dir)
    jobs = evaluation.photo_jobs(paths, evaluation.Protocol("paper"))

    def window() -> int:
        report = evaluation.evaluate(colorizer, jobs, max_images=None, sheet=0,
                                     workers=args.workers)
        return len(report.per_image)

    window()
    rate, rates = common.median_rate(window, args.windows)
    return rate, rates, len(paths)


# ---- BENCHMARKS.md's tables -------------------------------------------------------------

BACKENDS = {"jax": "JAX", "onnx": "ONNX Runtime"}
CPU_COLUMNS = {("model_host", "jax"): "JAX model", ("model_device", "jax"): "JAX G, device batch",
               ("model_host", "onnx"): "ONNX Runtime model",
               ("model_host", "torch"): "PyTorch model (yardstick)",
               ("end_to_end", "jax"): "JAX end to end", ("end_to_end", "onnx"): "ONNX end to end"}
STAGES = {"decode": "decode", "render": "render", "h2d": "h2d", "g": "G", "compose": "compose",
          "d2h": "d2h", "encode_write": "encode+write"}


def _defaults(line: dict) -> tuple[str, str]:
    """(output format, compose) of a line; lines from before either flag existed wrote PNG
    and composed on the host."""
    return line["config"].get("format") or "png", line["config"].get("compose") or "host"


def cpu_table(path: str) -> str:
    """images/s on a quiet CPU per (G's encoder, render size, batch, XLA_FLAGS and --set): G
    on a host batch per backend (`model_host`), JAX's G on a device batch (`model_device`),
    the PyTorch yardstick (torch_reference.jsonl beside FILE) and end to end to PNG with the
    host compose per backend: the newest line of each."""
    def key(line):
        figure = line["figure"].split("/")[-1]
        torch = line["figure"].startswith("torch_reference/")
        column = (figure, "torch" if torch else line["config"].get("backend") or "jax")
        if not tables.on_quiet_cpu(line) or column not in CPU_COLUMNS or \
                _defaults(line) != ("png", "host"):
            return None
        return (tables.model_name(line), line["resolution"], line["batch"],
                tables.setting(line)), column

    yardstick = tables.sibling(path, "torch_reference")
    lines = tables.read(path) + (tables.read(yardstick) if yardstick.exists() else [])
    chosen = tables.newest(lines, key)
    rows = [[", ".join(filter(None, map(str, row))),
             *(tables.num(chosen[row, c]["value"]) if (row, c) in chosen else "" for c in
               CPU_COLUMNS)]
            for row in sorted({row for row, _ in chosen})]
    return tables.markdown(["G, render, batch", *CPU_COLUMNS.values()], rows)


def stages_table(path: str) -> str:
    """Milliseconds per photo of each stage, each timed alone (`inference/stages`), and the
    end-to-end photos/s of the same run, per (device, backend, compose, output format, render
    size, batch, XLA_FLAGS and --set): the newest line of each, in the order first measured."""
    def key(line):
        if line["figure"] != "inference/stages":
            return None
        config = line["config"]
        return (line["device_kind"], BACKENDS[config["backend"]], *_defaults(line),
                line["resolution"], line["batch"], tables.setting(line))

    rows = []
    for (device, backend, fmt, compose, render, batch, setting), r in tables.newest(
            tables.read(path), key).items():
        label = f"{backend}, {compose} compose, {fmt.upper()}, render {render}, batch {batch}"
        rows.append([tables.label(label, setting, f"({device})"),
                     *(tables.num(r["stage_ms"][s], 2) if r["stage_ms"][s] is not None else "-"
                       for s in STAGES), tables.num(r["end_to_end_images_per_s"])])
    return tables.markdown(["ms per photo", *STAGES.values(), "end to end photos/s"], rows)


TABLES = {"cpu": cpu_table, "stages": stages_table}


def main(argv=None) -> list[dict] | None:
    if tables.requested(argv, AREA, TABLES):
        return None
    args = _parse(argv)
    make_colorizer = make_colorizer_factory(args)
    results = []

    def record(figure, value, windows, base, cfg, unit="images/s", **extra):
        result = common.make_result(figure, round(value, 3), unit, **base, **extra,
                                    windows=[round(r, 2) for r in windows], config=cfg)
        common.emit(result, args.out)
        results.append(result)

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="jaxcolor-infer-")))
        if args.synthetic:
            images_dir = write_photos(tmp / "photos", args.synthetic, *args.photo_wh)
            colour_dir = write_photos(tmp / "colour", args.synthetic, *args.photo_wh,
                                      colour=True, seed=1)
        else:
            images_dir = colour_dir = Path(args.images)
        paths = sorted(p for p in images_dir.rglob("*") if p.is_file())[:args.batch_size]
        for render in args.renders:
            for backend in args.backends:
                colorizer = make_colorizer(render, backend)
                size = colorizer.render_size
                base = {"batch": args.batch_size, "resolution": size}
                cfg = {"checkpoint": str(args.checkpoint) if args.checkpoint else None,
                       "config": args.config, "overrides": args.overrides,
                       "step": colorizer.step, **common.model_summary(colorizer.config),
                       "backend": backend, "compose": colorizer.compose,
                       "upsample": colorizer.upsample,
                       "images": "synthetic" if args.synthetic else str(images_dir),
                       "photo_size": args.photo_size if args.synthetic else None,
                       "workers": args.workers, "model_steps": args.model_steps}
                device = None
                if backend == "jax":
                    device = device_rate(colorizer, size, args)
                    record("inference/model_device", device["rate"], device["rates"], base,
                           cfg, cpu_share=device["cpu_share"],
                           gflops_per_image=device["gflops_per_image"],
                           flops_source=common.FLOPS_SOURCE)
                rate, rates, share = host_rate(colorizer, size, args)
                record("inference/model_host", rate, rates, base, cfg, cpu_share=share)
                for fmt in args.formats:
                    rate, rates, count, share = end_to_end_rate(
                        colorizer, images_dir, tmp / f"out{size}-{backend}-{fmt}", fmt, args)
                    record("inference/end_to_end", rate, rates, base,
                           {**cfg, "format": fmt, "count": count}, cpu_share=share)
                    stages = warm_stages(colorizer, paths, fmt, tmp / f"stages-{fmt}")
                    busy = sum(stages[k] or 0 for k in ("h2d", "g", "compose", "d2h"))
                    busy = busy if colorizer.compose == "device" else stages["g"]
                    record("inference/stages", sum(v or 0 for v in stages.values()), [],
                           base, {**cfg, "format": fmt, "count": len(paths)},
                           unit="ms/photo (sum of stages)", stage_ms=stages,
                           end_to_end_images_per_s=round(rate, 3),
                           device_busy_fraction=round(busy * rate / 1000, 3))
                if not args.no_evaluate:
                    rate, rates, count = evaluate_rate(colorizer, colour_dir, args)
                    record("inference/evaluate", rate, rates, base,
                           {**cfg, "protocol": "paper", "count": count})
    return results


if __name__ == "__main__":
    main()
