"""Shared helpers for benchmark scripts: timing by median of windows, one JSON line per figure.

Every benchmark prints exactly one JSON line per figure it measures and appends the same line
to `benchmarks/results.jsonl` (or `--out`), so figures quoted in the docs can be traced to a
command, a configuration and the software and hardware that produced them.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

DEFAULT_OUT = Path(__file__).resolve().parent / "results.jsonl"


def add_output_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=str(DEFAULT_OUT),
                        help="JSON-lines file the result is appended to ('' to only print)")
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
            "python": platform.python_version()}


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
