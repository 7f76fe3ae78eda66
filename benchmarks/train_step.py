"""Device-only throughput of the training steps, compile time apart, with model-FLOPs use.

    python -m benchmarks.train_step                                   # gan.py at 224, B 8,16,32
    python -m benchmarks.train_step --batch 64,128,256 --windows 5    # on an accelerator
    python -m benchmarks.train_step --config experiments/configs/demo.py --size 96 --batch 8
    python -m benchmarks.train_step --kinds gan,separate --set model.compute_dtype=bfloat16

For each step kind and batch size, one JSON line: images/s of the compiled step on a
synthetic uint8 batch already on the devices (placed with the batch sharding, as the
pipeline places real ones), the state donated and threaded from call to call as in training.
Compilation (`lower()` then `compile()`) is timed and reported apart; warm-up calls are not
timed; each timed window dispatches `--steps_per_window` steps back to back and blocks only
at its end (no host synchronisation per step); the figure is the median window.

Step kinds:
  pretrain   phase 1, G alone with L1 (`steps.pretrain`)
  gan        the fused GAN step: G update then D update sharing one G forward (`steps.gan`)
  d_pretrain NoGAN's D step against the frozen G (`steps.d_pretrain`)
  separate   the unfused alternative: `steps.d_pretrain` then G's half of the GAN step
             (`steps.gan_generator_update`) as its own program, two programs per
             iteration; images/s counts one batch per D+G pair, comparable with `gan`

FLOPs per image come from XLA's cost analysis of the step lowered for the CPU (before backend
passes, so the same count on every machine; `common.lowered_flops`), divided by the batch;
MFU = FLOPs/image x images/s / the device's dense bf16 peak (null where the peak is
unknown, e.g. CPUs, or the compute dtype is not bf16).
"""

from __future__ import annotations

import argparse
import statistics

import jax

from benchmarks import common, tables

AREA = "train_step"
from jaxcolor.train.setup import setup as training_setup

KINDS = ("pretrain", "gan", "d_pretrain", "separate")


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_config_args(p, default=common.GAN_CONFIG)
    p.add_argument("--batch", default="8,16,32", help="global batch sizes to sweep, comma list")
    p.add_argument("--size", type=int, default=None,
                   help="square crop size (default: the config's data.crop_size)")
    p.add_argument("--kinds", default="pretrain,gan",
                   help=f"step kinds, comma list of {', '.join(KINDS)}")
    p.add_argument("--backbone", default=None, help="shorthand for --set model.backbone=NAME")
    p.add_argument("--steps_per_window", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2, help="untimed calls after compiling")
    common.add_output_args(p, AREA)
    tables.add_args(p, AREA, TABLES)
    p.set_defaults(windows=3)
    args = p.parse_args(argv)
    args.batches = [int(b) for b in args.batch.split(",") if b]
    args.kinds = [k for k in args.kinds.split(",") if k]
    unknown = sorted(set(args.kinds) - set(KINDS))
    if unknown or not args.kinds:
        p.error(f"--kinds: unknown {unknown}; choose from {', '.join(KINDS)}")
    if args.steps_per_window < 1 or not args.batches or min(args.batches) < 1:
        p.error("--steps_per_window and every --batch must be >= 1")
    return args


def make_g_only_step(setup):
    """G's half of the fused GAN step (`steps.gan_generator_update`) as its own jitted,
    state-donating program."""
    from jaxcolor.data import batches
    from jaxcolor.train import steps as steps_lib

    def g_step(ctx, state, batch):
        l_norm, ab_real = batches.prepare_batch(batch)
        state, metrics, _ = steps_lib.gan_generator_update(ctx, state, l_norm, ab_real)
        return state.replace(step=state.step + 1), metrics

    return steps_lib.compile_step(setup.steps.context, g_step, setup.replicated)


def _compile(fn, state, batch) -> tuple[object, dict]:
    lowered, lower_s = common.timed(lambda: fn.lower(state, batch))
    compiled, compile_s = common.timed(lowered.compile)
    return compiled, {"lower_s": round(lower_s, 3), "compile_s": round(compile_s, 3)}


def step_flops(config, kind: str, batch_size: int, size: int) -> float:
    """FLOPs of one iteration of `kind` (both programs for "separate"), counted on the CPU
    lowering (`common.lowered_flops`), so MFU means the same on every backend."""
    cpu = common.cpu_setup(config)
    batch = common.synthetic_batch(batch_size, size, cpu.batch_sharding, abstract=True)
    programs = ([cpu.steps.d_pretrain, make_g_only_step(cpu)] if kind == "separate"
                else [cpu.steps.for_phase(kind)])
    return sum(common.lowered_flops(p, cpu.abstract_state, batch) for p in programs)


def measure(setup, state, kind: str, batch_size: int, size: int,
            args) -> tuple[object, dict]:
    """Compile `kind` for this batch, warm up, time the windows. Returns the threaded state
    (the input state is donated) and the figures."""
    batch = common.synthetic_batch(batch_size, size, setup.batch_sharding)
    if kind == "separate":
        programs = [setup.steps.d_pretrain, make_g_only_step(setup)]
    else:
        programs = [setup.steps.for_phase(kind)]
    compiled, costs = [], []
    for fn in programs:
        c, cost = _compile(fn, state, batch)
        compiled.append(c)
        costs.append(cost)

    def run(iterations: int):
        nonlocal state
        for _ in range(iterations):
            for c in compiled:
                state, _ = c(state, batch)
        return state

    jax.block_until_ready(run(args.warmup))

    def window() -> int:
        jax.block_until_ready(run(args.steps_per_window))
        return args.steps_per_window * batch_size

    (rate, rates), cpu = common.cpu_usage(lambda: common.median_rate(window, args.windows))
    flops_per_image = step_flops(setup.config, kind, batch_size, size) / batch_size
    return state, {
        "rate": rate, "rates": rates,
        "lower_s": round(sum(c["lower_s"] for c in costs), 3),
        "compile_s": round(sum(c["compile_s"] for c in costs), 3),
        "flops_per_image": flops_per_image,
        "cpu_s_per_image": cpu["cpu_s"] / (args.windows * args.steps_per_window * batch_size),
        "cpu_share": cpu["share"],
    }


# ---- BENCHMARKS.md's tables -------------------------------------------------------------

STEP_NAMES = {"pretrain": "L1 pretraining", "gan": "GAN, fused",
              "separate": "GAN, separate D and G steps", "d_pretrain": "D pretraining"}


def _step(line: dict) -> tuple:
    """The measured step: (crop, config, encoder, kind) sorts demo.py's rows first."""
    return (line["resolution"], tables.config_name(line), tables.model_name(line),
            list(STEP_NAMES).index(line["figure"].removeprefix("train_step/")))


def cpu_table(path: str) -> str:
    """Device-only images/s per step and batch on the CPU, with compile seconds and achieved
    GFLOP/s over the batches: the newest line per (config, crop, step, batch) measured with
    no XLA_FLAGS and no --set; the fastest batch of a row in bold."""
    def key(line):
        wanted = on_default_cpu(line) and line["figure"].startswith("train_step/")
        return (_step(line), line["batch"]) if wanted else None

    chosen = tables.newest(tables.read(path), key)
    batches = sorted({batch for _, batch in chosen})
    rows = []
    for step in sorted({step for step, _ in chosen}):
        lines = {b: chosen[step, b] for b in batches if (step, b) in chosen}
        crop, name, model, kind = step
        cells = tables.bold_max({b: lines[b]["value"] if b in lines else None for b in batches},
                                tables.num)
        rows.append([f"{name}, {model} ({crop})", list(STEP_NAMES.values())[kind],
                     *cells.values(),
                     tables.span([r["compile_s"] for r in lines.values()], lambda v: f"{v:.1f}"),
                     tables.span([1000 * r["achieved_tflops"] for r in lines.values()],
                                 lambda v: f"{v:.0f}")])
    return tables.markdown(["Config (crop)", "Step", *(f"Batch {b}" for b in batches),
                            "compile s", "achieved GFLOP/s"], rows)


def on_default_cpu(line: dict) -> bool:
    """On the CPU, with no XLA_FLAGS and no --set."""
    return tables.on_quiet_cpu(line) and not tables.setting(line)


def xla_flags_table(path: str) -> str:
    """images/s of one step under each XLA_FLAGS value against none: for the newest
    (config, crop, step, batch) measured with a flag on the CPU, the newest line per
    XLA_FLAGS value (no --set), the default first."""
    lines = [r for r in tables.read(path) if tables.on_quiet_cpu(r) and r["figure"].startswith(
        "train_step/") and not r["config"].get("overrides")]
    flagged = [r for r in lines if r.get("xla_flags")]
    if not flagged:
        return tables.markdown(["XLA_FLAGS", "images/s", "vs default"], [])
    step = (_step(flagged[-1]), flagged[-1]["batch"])
    chosen = tables.newest(lines, lambda r: (r.get("xla_flags") or "")
                           if (_step(r), r["batch"]) == step else None)
    default = chosen.get("")
    rows = [[f"`{flags}`" if flags else "(default)", tables.num(r["value"], 4),
             f"{r['value'] / default['value']:.2f}" if default else ""]
            for flags, r in sorted(chosen.items(), key=lambda item: item[0] != "")]
    crop, name, _, kind = step[0]
    what = f"{name} {list(STEP_NAMES)[kind]} step, crop {crop}, batch {step[1]}"
    return tables.markdown([f"XLA_FLAGS ({what})", "images/s", "vs default"], rows)


TABLES = {"cpu": cpu_table, "xla_flags": xla_flags_table}


def main(argv=None) -> list[dict] | None:
    if tables.requested(argv, AREA, TABLES):
        return None
    args = _parse(argv)
    config = common.load_config(args.config)
    common.apply_overrides(config, args.overrides + (
        [f"model.backbone={args.backbone}"] if args.backbone is not None else []))
    size = int(args.size or config.data.crop_size)
    dtype = common.compute_dtype_name(config)
    setup = training_setup(config)  # what the loop builds before its first step
    device_kind = jax.devices()[0].device_kind
    peak = common.peak_flops(device_kind, dtype)
    devices = jax.device_count()
    state, results = setup.init_state(), []
    for batch_size in args.batches:
        for kind in args.kinds:
            state, m = measure(setup, state, kind, batch_size, size, args)
            achieved = m["flops_per_image"] * m["rate"]
            result = common.make_result(
                f"train_step/{kind}", round(m["rate"], 2), "images/s", batch=batch_size,
                resolution=size,
                step_ms=round(1000 * batch_size / m["rate"], 2),
                compile_s=m["compile_s"], lower_s=m["lower_s"],
                gflops_per_image=float(f'{m["flops_per_image"] / 1e9:.4g}'),
                flops_source=common.FLOPS_SOURCE,
                achieved_tflops=float(f"{achieved / 1e12:.4g}"),
                peak_tflops_per_device=peak / 1e12 if peak else None,
                mfu=round(achieved / (peak * devices), 4) if peak else None,
                cpu_s_per_image=round(m["cpu_s_per_image"], 4), cpu_share=m["cpu_share"],
                windows=[round(r, 2) for r in m["rates"]],
                config={"config": args.config, "overrides": args.overrides, "kind": kind,
                        **common.model_summary(config), "resolved_dtype": dtype,
                        "steps_per_window": args.steps_per_window, "warmup": args.warmup,
                        "window_spread": round(
                            (max(m["rates"]) - min(m["rates"])) / statistics.median(m["rates"]),
                            3)})
            common.emit(result, args.out)
            results.append(result)
    return results


if __name__ == "__main__":
    main()
