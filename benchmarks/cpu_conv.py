"""XLA:CPU's slow path for a 3x3 convolution whose input is smaller than its kernel.

    python -m benchmarks.cpu_conv                      # ResNet layer4: 512 -> 512, batch 16
    XLA_FLAGS=--xla_cpu_use_xnnpack=false python -m benchmarks.cpu_conv --sizes 2,4

One JSON line per input side s: milliseconds of one jitted forward of a 3x3, stride 1,
padding 1 convolution over [batch, s, s, channels] (median of `--repeats` calls), and
`operands_swapped`: whether XLA rewrote it with the kernel, now the larger operand, as its
"input" (`dim_labels=01fb_o01i->f01b` in the optimised HLO). It does so for s <= 2, and that
form runs at a small fraction of the FLOP rate of the ordinary path (s >= 3): at s = 2 (a
ResNet's layer4 at 64 px input) one such convolution takes longer than at s = 7. Keep CPU
training crops at multiples of 32 of at least 96 px, so layer4 is at least 3x3.
"""

from __future__ import annotations

import argparse
import statistics
import time

from benchmarks import common, tables

AREA = "cpu_conv"


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1,2,3,4,7", help="input sides, comma list")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--channels", type=int, default=512)
    p.add_argument("--repeats", type=int, default=5)
    common.add_out_arg(p, AREA)
    tables.add_args(p, AREA, TABLES)
    return p.parse_args(argv)


def conv3x3(x, w):
    import jax

    return jax.lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def table(path: str) -> str:
    """Milliseconds per convolution by input side, one row per (batch, channels, XLA_FLAGS):
    the newest line per row and side measured on the CPU; the slowest side in bold."""
    chosen = tables.newest(tables.read(path), lambda r: (
        (r["batch"], r["config"]["channels"], r.get("xla_flags") or ""), r["resolution"])
        if tables.on_quiet_cpu(r) else None)
    sides = sorted({side for _, side in chosen})
    rows = []
    for batch, channels, flags in dict.fromkeys(row for row, _ in chosen):
        cells = tables.bold_max({s: chosen[(batch, channels, flags), s]["value"]
                                 if ((batch, channels, flags), s) in chosen else None
                                 for s in sides}, lambda v: f"{v:.1f}")
        label = f"ms (batch {batch}, {channels} -> {channels} channels, 3x3)"
        rows.append([tables.label(label, flags and f"XLA_FLAGS={flags}"), *cells.values()])
    return tables.markdown(["input side", *map(str, sides)], rows)


TABLES = {"cpu": table}


def main(argv=None) -> list[dict] | None:
    if tables.requested(argv, AREA, TABLES):
        return None
    args = _parse(argv)
    import jax

    results = []
    w = jax.random.normal(jax.random.key(1), (3, 3, args.channels, args.channels)) * 0.01
    for side in [int(s) for s in args.sizes.split(",") if s]:
        x = jax.random.normal(jax.random.key(0), (args.batch, side, side, args.channels))
        compiled = jax.jit(conv3x3).lower(x, w).compile()
        swapped = "01fb_o01i->f01b" in compiled.as_text()
        jax.block_until_ready(compiled(x, w))
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            jax.block_until_ready(compiled(x, w))
            times.append(time.perf_counter() - start)
        result = common.make_result(
            "cpu_conv/3x3_forward", round(1000 * statistics.median(times), 2), "ms",
            batch=args.batch, resolution=side, operands_swapped=swapped,
            windows=[round(1000 * t, 2) for t in times],
            config={"channels": args.channels})
        common.emit(result, args.out)
        results.append(result)
    return results


if __name__ == "__main__":
    main()
