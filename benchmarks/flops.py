"""FLOPs per image of G and D, forward and per training step, from XLA's cost analysis.

    python -m benchmarks.flops                       # gan.py (ResNet-101 U-Net, 224) and demo.py
    python -m benchmarks.flops --config experiments/configs/gan.py --size 512 --steps ''

Everything is lowered from abstract values (`jax.eval_shape` of the model and state
initialisation, `jax.ShapeDtypeStruct` inputs) for the CPU and never compiled, so nothing of
a ResNet-101 is allocated: XLA's cost analysis of the lowered programs gives the FLOPs (a
multiply-add counts as 2; `common.lowered_flops`). One JSON line per (config, figure):

  flops/g_forward   G in eval mode, L -> ab (what inference runs)
  flops/d_forward   D on (L, ab) -> patch logits
  flops/<kind>_step a whole training step (pretrain, gan, d_pretrain), optimiser included

`value` is GFLOP per image (the program's FLOPs divided by `--batch`). Multiply by a
throughput in images/s for the FLOP/s a step needs, and divide by a device's peak for the
model-FLOPs utilisation that throughput implies (`implied_tflops` at `--target` images/s).
The count is taken before any backend pass, so it is the same on every machine (a GPU's
compiled program hides its cuDNN convolutions from the analysis).
"""

from __future__ import annotations

import argparse

import jax

from benchmarks import common, tables

AREA = "flops"

STEP_KINDS = ("pretrain", "gan", "d_pretrain")


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", action="append", default=None,
                   help="config file[:variant], repeatable (default: gan.py and demo.py)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="FIELD=VALUE", help="override a field of every config (repeatable)")
    p.add_argument("--size", type=int, default=None,
                   help="square input size (default: each config's data.crop_size)")
    p.add_argument("--batch", type=int, default=8, help="batch the programs are compiled for")
    p.add_argument("--steps", default=",".join(STEP_KINDS),
                   help="training steps to count, comma list ('' for forward passes only)")
    p.add_argument("--target", type=float, default=None,
                   help="images/s to turn into implied TFLOP/s (e.g. 2300 for the GAN step)")
    common.add_out_arg(p, AREA)
    tables.add_args(p, AREA, TABLES)
    args = p.parse_args(argv)
    args.configs = args.config or [common.GAN_CONFIG, common.DEMO_CONFIG]
    args.steps = [s for s in args.steps.split(",") if s]
    if set(args.steps) - set(STEP_KINDS):
        p.error(f"--steps: choose from {', '.join(STEP_KINDS)}")
    return args


def forward_flops(setup, batch: int, size: int) -> dict[str, float]:
    """FLOPs of one G forward and one D forward (eval mode) over `batch` images."""
    defs, state = setup.defs, setup.abstract_state
    sharding = setup.batch_sharding
    l_norm = jax.ShapeDtypeStruct((batch, size, size, 1), jax.numpy.float32, sharding=sharding)
    ab = jax.ShapeDtypeStruct((batch, size, size, 2), jax.numpy.float32, sharding=sharding)

    def g_forward(params, rest, l_norm):
        return defs.generator(params, rest, train=False)(l_norm)

    def d_forward(params, rest, l_norm, ab):
        return defs.discriminator(params, rest, train=False)(l_norm, ab)

    return {"g_forward": common.lowered_flops(jax.jit(g_forward), state.g_params,
                                              state.g_batch_stats, l_norm),
            "d_forward": common.lowered_flops(jax.jit(d_forward), state.d_params,
                                              state.d_batch_stats, l_norm, ab)}


def step_flops(setup, kind: str, batch: int, size: int) -> float:
    """FLOPs of one training step of `kind` over a batch of `batch` images."""
    abstract_batch = common.synthetic_batch(batch, size, setup.batch_sharding, abstract=True)
    return common.lowered_flops(setup.steps.for_phase(kind), setup.abstract_state,
                                abstract_batch)


def count_params(tree) -> int:
    return int(sum(x.size for x in jax.tree.leaves(tree)))


# ---- BENCHMARKS.md's tables -------------------------------------------------------------

FIGURES = {"g_forward": "G forward", "d_forward": "D forward", "pretrain_step": "pretrain step",
           "gan_step": "GAN step", "d_pretrain_step": "D pretraining step"}
TARGET_STEPS = {"gan_step": "GAN step (fused)", "pretrain_step": "L1 pretraining"}


def _counted(line: dict) -> tuple | None:
    """The model a FLOP line counted (config, crop, overrides), or None for a line counted
    otherwise than on the CPU lowering (older lines counted XLA:CPU's compiled program)."""
    if line["config"].get("counted_by") != common.FLOPS_SOURCE:
        return None
    return tables.config_name(line), line["resolution"], tables.setting(line)


def _model_label(line: dict) -> str:
    name, crop, setting = _counted(line)
    model = f"{tables.model_name(line)} U-Net + PatchGAN-{line['config']['d_width']}"
    return tables.label(f"{model} ({name}, {crop})", setting)


def _figure(line: dict) -> str:
    return line["figure"].removeprefix("flops/")


def per_image_table(path: str) -> str:
    """GFLOP per image of each model (config, crop, --set overrides) in the order first
    counted: the newest line per model and figure among those counted on the CPU lowering."""
    def key(line):
        model = _counted(line)
        return model and (model, _figure(line))

    models: dict[tuple, dict[str, dict]] = {}
    for (model, figure), line in tables.newest(tables.read(path), key).items():
        models.setdefault(model, {})[figure] = line
    rows = []
    for lines in models.values():
        first = next(iter(lines.values()))
        rows.append([_model_label(first), f"{tables.num(first['g_params'] / 1e6)} M",
                     f"{tables.num(first['d_params'] / 1e6)} M",
                     *(tables.num(lines[f]["value"], 4) if f in lines else "" for f in FIGURES)])
    return tables.markdown(["Model (config, crop)", "G params", "D params", *FIGURES.values()],
                           rows)


def at_target_table(path: str) -> str:
    """What a throughput target asks of an H100 SXM (dense bf16 peak): per model and step
    (the GAN step, then the L1 step), the newest line counted on the CPU lowering that was
    given a --target."""
    peak = common.PEAK_BF16_FLOPS["H100"] / 1e12

    def key(line):
        model = _counted(line)
        wanted = model and line.get("target_images_per_s") and _figure(line) in TARGET_STEPS
        return (list(TARGET_STEPS).index(_figure(line)), model) if wanted else None

    rows = []
    for (_, (name, crop, setting)), r in sorted(tables.newest(tables.read(path), key).items(),
                                                key=lambda item: item[0][0]):
        rows.append([tables.label(f"{TARGET_STEPS[_figure(r)]}, {name} ({crop})", setting),
                     tables.num(r["value"], 4), tables.num(r["target_images_per_s"]),
                     tables.num(r["implied_tflops"]),
                     f"{100 * r['implied_tflops'] / peak:.0f} %"])
    return tables.markdown(["Step (config, crop)", "GFLOP/image", "target images/s",
                            "implied TFLOP/s", f"MFU on an H100 SXM ({peak:.0f} TFLOP/s)"], rows)


TABLES = {"per_image": per_image_table, "at_target": at_target_table}


def main(argv=None) -> list[dict] | None:
    if tables.requested(argv, AREA, TABLES):
        return None
    args = _parse(argv)
    results = []
    for spec in args.configs:
        config = common.load_config(spec)
        common.apply_overrides(config, args.overrides)
        size = int(args.size or config.data.crop_size)
        setup = common.cpu_setup(config)
        counts = forward_flops(setup, args.batch, size)
        for kind in args.steps:
            counts[f"{kind}_step"] = step_flops(setup, kind, args.batch, size)
        params = {"g_params": count_params(setup.abstract_state.g_params),
                  "d_params": count_params(setup.abstract_state.d_params)}
        for figure, flops in counts.items():
            per_image = flops / args.batch
            implied = float(f"{per_image * args.target / 1e12:.4g}") if args.target else None
            result = common.make_result(
                f"flops/{figure}", float(f"{per_image / 1e9:.4g}"),
                "GFLOP/image", batch=args.batch, resolution=size,
                target_images_per_s=args.target, implied_tflops=implied, **params,
                config={"config": spec, "overrides": args.overrides,
                        **common.model_summary(config),
                        "resolved_dtype": common.compute_dtype_name(config),
                        "counted_by": common.FLOPS_SOURCE})
            common.emit(result, args.out)
            results.append(result)
    return results


if __name__ == "__main__":
    main()
