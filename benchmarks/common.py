"""Shared helpers for benchmark scripts: timing by median of windows, one JSON line per figure.

Every benchmark prints exactly one JSON line per figure it measures and appends the same line
to its area's file, `benchmarks/results/AREA.jsonl` (or `--out`), so figures quoted in the docs
can be traced to a command, a configuration and the software and hardware that produced them;
`benchmarks.tables` turns those lines back into BENCHMARKS.md's tables.

Also here: loading a training config by path with `FIELD=VALUE` overrides (the benchmarks'
`--config`/`--set`), the training setup exactly as the loop builds it (`train.setup`),
synthetic device batches, FLOPs from XLA's cost
analysis, and a small table of accelerator peaks for model-FLOPs utilisation.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

RESULTS = Path(__file__).resolve().parent / "results"
"""One JSON-lines file per area (quality.jsonl, video.jsonl, ...): every figure of
BENCHMARKS.md, committed."""


def results_file(area: str) -> Path:
    """`benchmarks/results/AREA.jsonl`: where a script's lines go by default, and what its
    `--table` reads, so a measurement and the table quoting it meet in one committed file."""
    return RESULTS / f"{area}.jsonl"


def add_out_arg(parser: argparse.ArgumentParser, area: str) -> None:
    """`--out`, defaulting to the area's committed results file."""
    parser.add_argument("--out", default=str(results_file(area)),
                        help="JSON-lines file the results are appended to ('' to only print; "
                        "default: %(default)s)")


def add_output_args(parser: argparse.ArgumentParser, area: str) -> None:
    """`--out` (see `add_out_arg`) and `--windows`."""
    add_out_arg(parser, area)
    parser.add_argument("--windows", type=int, default=5,
                        help="timed windows; the figure is their median")


def environment() -> dict[str, Any]:
    """Software versions and the devices JAX sees (imports jax lazily)."""
    import jax
    import jaxlib

    devices = jax.devices()
    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__,
            "device_kind": devices[0].device_kind, "device_count": len(devices),
            "process_count": jax.process_count(), "host": platform.node(),
            "python": platform.python_version(), "cpu_count": os.cpu_count(),
            # Other processes on a small shared machine move CPU figures: record the load.
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "xla_flags": os.environ.get("XLA_FLAGS", "")}


def median_rate(run_window: Callable[[], int], windows: int) -> tuple[float, list[float]]:
    """Runs `run_window` (returns how many items it processed) `windows` times.

    Returns the median items/s and every window's rate. The median, not the mean, so one
    window disturbed by another process or a page-cache miss does not move the figure.
    """
    if windows < 1:
        raise ValueError(f"windows={windows}: need at least one timed window")
    rates = []
    for _ in range(windows):
        start = time.perf_counter()
        items = run_window()
        rates.append(items / (time.perf_counter() - start))
    return statistics.median(rates), rates


def cpu_usage(fn: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """(fn(), {"cpu_s": CPU seconds of this process's threads, "share": their fraction of
    all cores over the wall time}). On a shared machine `share` well below 1 means other
    processes took the cores: throughput is then low for that reason, while CPU seconds per
    item stay comparable between runs."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return out, {"cpu_s": round(cpu, 3),
                 "share": round(cpu / max(wall * (os.cpu_count() or 1), 1e-9), 3)}


def make_result(figure: str, value: float, unit: str, *, config: dict[str, Any],
                batch: int | None = None, resolution: int | None = None,
                **extra: Any) -> dict[str, Any]:
    """One benchmark figure with everything needed to reproduce and compare it."""
    return {"figure": figure, "value": value, "unit": unit, "batch": batch,
            "resolution": resolution, **extra, "config": config, **environment(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def emit(result: dict[str, Any], out: str | None) -> None:
    """Prints the result as one JSON line and appends it to `out` (unless empty/None)."""
    line = json.dumps(result, sort_keys=False)
    print(line, flush=True)
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(line + "\n")


# ---- configs -----------------------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent
GAN_CONFIG = str(REPO / "experiments" / "configs" / "gan.py")
DEMO_CONFIG = str(REPO / "experiments" / "configs" / "demo.py")


class BenchmarkArgumentError(ValueError):
    """A benchmark flag names a config, variant or field that does not exist."""


def load_config(spec: str):
    """`path/to/config.py[:variant]` -> its ConfigDict (`jaxcolor.configs.load`)."""
    from jaxcolor import configs

    return configs.load(spec)


def apply_overrides(config, assignments: list[str]) -> None:
    """`["model.backbone=resnet18", "model.decoder_widths=16,16,16,16,16"]` -> fields set in place.

    Each value is parsed as a Python literal (a bare comma list becomes a tuple; anything
    unparsable stays a string), like `--config.model.backbone=resnet18` of experiments/run.py.
    """
    import ast

    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep:
            raise BenchmarkArgumentError(f"--set {assignment}: expected FIELD=VALUE")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        *parents, leaf = key.split(".")
        node = config
        try:
            for name in parents:
                node = node[name]
            if leaf not in node:
                raise KeyError(leaf)
            node[leaf] = value
        except (KeyError, TypeError) as e:
            raise BenchmarkArgumentError(f"--set {assignment}: the config has no field {key} "
                                         f"({type(e).__name__}: {e})") from None


def add_config_args(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--config", default=default,
                        help="training config file, optionally :variant (default: %(default)s)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="FIELD=VALUE", help="override a config field (repeatable), "
                        "e.g. --set model.backbone=resnet18 --set model.compute_dtype=bfloat16")


def model_summary(config) -> dict[str, Any]:
    """The config fields that decide a step's cost, for the JSON line."""
    from jaxcolor.models import factory

    m = config.model
    return {"backbone": factory.backbone(m), "decoder_widths": list(m.decoder_widths),
            "self_attention": bool(m.self_attention), "d_width": int(m.d_width),
            "d_layers": int(m.d_layers), "d_norm": m.d_norm,
            "d_spectral_norm": bool(m.d_spectral_norm), "compute_dtype": m.compute_dtype}


# ---- FLOPs and peak throughput ----------------------------------------------------------

# Dense (no sparsity) peak FLOP/s of bf16 matrix units, from the vendors' data sheets, keyed
# by a substring of `jax.Device.device_kind`. Longest match wins ("H100 PCIe" before "H100").
# Only bf16 is listed: f32 runs on CUDA/TPU cores at other rates that vary with the
# precision XLA picks (TF32 or not), so an f32 MFU would be a guess.
PEAK_BF16_FLOPS = {
    "H100 PCIe": 756e12,
    "H100": 989e12,  # SXM; H100 NVL and PCIe differ
    "H200": 989e12,
    "GH200": 989e12,
    "A100": 312e12,
    "L4": 121e12,
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,  # v5e
    "TPU v5p": 459e12,
    "TPU v5": 459e12,
    "TPU v6 lite": 918e12,  # Trillium (v6e)
}


def peak_flops(device_kind: str, dtype: str) -> float | None:
    """Peak FLOP/s of one device for `dtype` compute, or None where unknown (CPUs, f32)."""
    if dtype != "bfloat16":
        return None
    matches = [k for k in PEAK_BF16_FLOPS if k.lower() in device_kind.lower()]
    return PEAK_BF16_FLOPS[max(matches, key=len)] if matches else None


FLOPS_SOURCE = "xla_cost_analysis_of_the_cpu_lowering"
"""Where FLOP counts come from, written into every JSON line that uses one."""


def lowered_flops(jitted, *abstract_args) -> float:
    """FLOPs of one call of `jitted` on `abstract_args` (`jax.ShapeDtypeStruct`s, placed on
    CPU devices or unplaced), counted by XLA's cost analysis of the program lowered for the
    CPU, before any backend pass: the same count on every machine. Compiled for a GPU, the
    analysis no longer sees convolutions that became cuDNN calls (it read 0.86 GFLOP/image for
    a step that does 92). A multiply-add counts 2 FLOPs."""
    lowered = jitted.trace(*abstract_args).lower(lowering_platforms=("cpu",))
    return float(lowered.cost_analysis()["flops"])


def cpu_setup(config):
    """The training's setup (`jaxcolor.train.setup.setup`) on one CPU device: steps whose
    programs lower for the CPU whatever the machine, for `lowered_flops`."""
    import jax

    from jaxcolor import sharding
    from jaxcolor.train.setup import setup

    return setup(config, sharding.make_mesh(jax.devices("cpu")[:1]))


def compute_dtype_name(config) -> str:
    """The compute dtype a config resolves to on this backend ("float32"/"bfloat16")."""
    import jax.numpy as jnp

    from jaxcolor.models import factory

    return jnp.dtype(factory.compute_dtype(config.model.compute_dtype)).name


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(fn(), seconds)."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


# ---- batches -----------------------------------------------------------------------------


def synthetic_batch(batch: int, size: int, sharding, *, abstract: bool = False,
                    seed: int = 0) -> dict:
    """A pipeline-shaped batch (uint8 L [B,S,S], ab [B,S,S,2], bool flip [B]) placed on the
    devices with the batch sharding, or its abstract description."""
    import jax
    import numpy as np

    shapes = {"L": ((batch, size, size), np.uint8), "ab": ((batch, size, size, 2), np.uint8),
              "flip": ((batch,), np.bool_)}
    if abstract:
        return {k: jax.ShapeDtypeStruct(s, d, sharding=sharding) for k, (s, d) in shapes.items()}
    rng = np.random.default_rng(seed)
    host = {k: (rng.integers(0, 256, s, np.uint8) if d == np.uint8 else rng.random(s) < 0.5)
            for k, (s, d) in shapes.items()}
    return jax.device_put(host, sharding)
