"""BENCHMARKS.md's tables, printed from the committed JSON lines: the parts every script shares.

Each table in BENCHMARKS.md is what `python -m benchmarks.SCRIPT --table [FILE]` prints (with
`--only NAME` where a script has more than one table), and that command stands right above
it; tests/benchmarks/test_tables.py checks the document against the commands, so a figure
edited by hand, or a measurement appended without regenerating its table, fails. Here: the
`--table`/`--only` flags, reading a results file, choosing the lines by a rule (the newest per
configuration: results files are appended in time order), and formatting numbers and rows,
so every table is laid out alike and no script carries its own copy of this code.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any

from benchmarks import common

Render = Callable[[str], str]
"""A table of one script: a results file's path -> the Markdown table. Its docstring's first
paragraph is the rule that picks the lines, shown in the script's `--table` help."""


# ---- reading and choosing lines ---------------------------------------------------------


def read(path: str | Path) -> list[dict[str, Any]]:
    """Every JSON line of a results file, in file (= time) order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def sibling(path: str | Path, area: str) -> Path:
    """Another area's results file in the same folder as `path` (a table that quotes two
    areas, e.g. inference beside the PyTorch yardstick, reads both from one folder)."""
    return Path(path).with_name(f"{area}.jsonl")


def newest(lines: Iterable[dict], key: Callable[[dict], Hashable | None]) -> dict[Hashable, dict]:
    """The newest line per configuration. `key` names a line's configuration, or returns
    None for a line the table does not quote; of the lines with one key the last in the file
    wins. Keys keep the order in which they first appear."""
    chosen: dict[Hashable, dict] = {}
    for line in lines:
        k = key(line)
        if k is not None:
            chosen[k] = line
    return chosen


def on_quiet_cpu(line: dict) -> bool:
    """Measured on a machine whose JAX device is the CPU while nothing else ran: a 1-minute
    load average of at most the core count + 1 (the benchmark itself keeps every core busy;
    the lines of a pass beside test suites read 4-14 on 2 cores and 2-4x lower images/s). The
    first lines did not record the load and cannot be told apart, so they are left out too."""
    load = line.get("load_avg_1m")
    return (line.get("device_kind") == "cpu" and load is not None
            and load <= (line.get("cpu_count") or 1) + 1)


def setting(line: dict) -> str:
    """What the line's run changed from the defaults: its XLA_FLAGS and `--set` overrides
    ("" for neither; lines from before either was recorded count as neither)."""
    parts = [f"XLA_FLAGS={line['xla_flags']}"] if line.get("xla_flags") else []
    parts += [f"--set {o}" for o in line.get("config", {}).get("overrides") or []]
    return " ".join(parts)


def config_name(line: dict) -> str:
    """The training config's file name ("gan.py"), however the path was given."""
    return Path(line["config"].get("config") or "?").name


def model_name(line: dict) -> str:
    """The generator's encoder ("ResNet-101"), from `backbone` or, in older lines, `depth`."""
    config = line["config"]
    backbone = config.get("backbone") or f"resnet{config.get('depth', '?')}"
    return backbone.replace("resnet", "ResNet-")


# ---- formatting -------------------------------------------------------------------------


def num(value: float | None, digits: int = 3) -> str:
    """`value` to `digits` significant digits in fixed point, never fewer than its integer
    digits, with thousands separators and no trailing zeros: 21.54 -> "21.5", 0.71 -> "0.71",
    53706.4 -> "53,706"; None -> "" (an empty cell)."""
    if value is None:
        return ""
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def label(*parts: str) -> str:
    """A row's label: its non-empty parts, space-separated (a setting only where there is one)."""
    return " ".join(p for p in parts if p)


def span(values: Iterable[float], fmt: Callable[[float], str]) -> str:
    """"lo-hi" of the values formatted, or one value where both ends read alike ("" for none)."""
    ordered = sorted(values)
    if not ordered:
        return ""
    low, high = fmt(ordered[0]), fmt(ordered[-1])
    return low if low == high else f"{low}-{high}"


def bold_max(cells: dict[Any, float | None], fmt: Callable[[float], str]) -> dict[Any, str]:
    """The cells formatted, the largest in bold where there are at least two to compare."""
    present = {k: v for k, v in cells.items() if v is not None}
    top = max(present, key=present.get) if len(present) > 1 else None
    return {k: "" if v is None else f"**{fmt(v)}**" if k == top else fmt(v)
            for k, v in cells.items()}


def markdown(header: list[str], rows: Iterable[list[str]]) -> str:
    """A Markdown table: the header, the delimiter row, one row per list of cells."""
    def line(cells):
        return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"

    return "\n".join([line(header), line(["---"] * len(header)), *map(line, rows)])


# ---- the --table flag -------------------------------------------------------------------


def _rule(render: Render) -> str:
    return " ".join(inspect.getdoc(render).split("\n\n")[0].split())


def add_args(parser: argparse.ArgumentParser, area: str, renders: dict[str, Render]) -> None:
    """`--table [FILE]` (default: the area's committed file) and, for a script with more than
    one table, `--only NAME`; the help states each table's rule."""
    rules = " ".join(f"[{name}] {_rule(r)}" for name, r in renders.items()).replace("%", "%%")
    parser.add_argument("--table", nargs="?", const=str(common.results_file(area)),
                        metavar="FILE", help="print this script's BENCHMARKS.md table(s) in "
                        f"Markdown from FILE's JSON lines (default %(const)s) and exit. {rules}")
    if len(renders) > 1:
        parser.add_argument("--only", choices=list(renders),
                            help="with --table: print only this table")


def requested(argv: list[str] | None, area: str, renders: dict[str, Render]) -> bool:
    """If `argv` asks for `--table`, prints the table(s) and returns True; else False.

    Parsed apart from the script's own flags, so a table needs none of the flags a
    measurement requires (a checkpoint, photos, clips)."""
    parser = argparse.ArgumentParser(add_help=False)
    add_args(parser, area, renders)
    args, _ = parser.parse_known_args(argv)
    if args.table is None:
        return False
    names = [args.only] if getattr(args, "only", None) else list(renders)
    printed = (renders[name](args.table) for name in names)
    print("\n\n".join(t for t in printed if t))  # a table with no lines prints nothing
    return True
