"""BENCHMARKS.md's tables held against the commands written above them.

    python -m benchmarks.document            # names every table that differs; exit 1 if any
    python -m benchmarks.document --write    # rewrites those tables with what the commands print

Every table in BENCHMARKS.md stands right below one of two lines: the command that prints it
from the committed JSON lines (`    python -m benchmarks.SCRIPT --table ...`, the last line
of the indented block above the table), or `MARKER` for a table whose lines were lost. A
table with neither is an error, so a figure cannot enter the document without a source or
an explicit note that it has none. tests/benchmarks/test_tables.py runs `problems` on the
committed document.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import re
import shlex
import sys
from pathlib import Path
from typing import NamedTuple

from benchmarks import common

DOCUMENT = common.REPO / "BENCHMARKS.md"
MARKER = ("Not reproducible: its JSON lines were not committed (lost with /tmp); "
          "to be re-measured.")
COMMAND = re.compile(r"^    python -m benchmarks\.(\w+) (--table\b.*)$")


class Table(NamedTuple):
    """One table of the document: its lines [start, end), the line above it, and the
    command that prints it (None for a table marked `MARKER` or with no source)."""

    start: int
    end: int
    above: str
    command: tuple[str, list[str]] | None

    @property
    def marked(self) -> bool:
        return self.above == MARKER


def tables_in(lines: list[str]) -> list[Table]:
    """Every table (a run of lines starting with "|") with the last non-blank line above."""
    found, i = [], 0
    while i < len(lines):
        if not lines[i].startswith("|"):
            i += 1
            continue
        end = i
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        above = next((line for line in reversed(lines[:i]) if line.strip()), "")
        match = COMMAND.match(above)
        command = (match[1], shlex.split(match[2])) if match else None
        found.append(Table(i, end, above, command))
        i = end
    return found


def render(script: str, argv: list[str]) -> str:
    """What `python -m benchmarks.SCRIPT ARGV` prints, run in this process."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        importlib.import_module(f"benchmarks.{script}").main(argv)
    return out.getvalue().rstrip("\n")


def problems(text: str) -> list[str]:
    """Each table of `text` that is neither what its command prints nor marked, described."""
    lines = text.splitlines()
    found = []
    for t in tables_in(lines):
        where = f"BENCHMARKS.md:{t.start + 1}"
        if t.command is None and not t.marked:
            found.append(f"{where}: a table with neither its --table command nor the line "
                         f"{MARKER!r} right above it (above: {t.above!r})")
        elif t.command is not None and render(*t.command) != "\n".join(lines[t.start:t.end]):
            found.append(f"{where}: differs from what `{t.above.strip()}` prints")
    return found


def regenerate(text: str) -> str:
    """`text` with every table that has a command replaced by what the command prints."""
    lines = text.splitlines()
    for t in reversed(tables_in(lines)):
        if t.command is not None:
            lines[t.start:t.end] = render(*t.command).splitlines()
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--write", action="store_true", help="rewrite the tables in place")
    p.add_argument("--document", default=str(DOCUMENT), help="default: %(default)s")
    args = p.parse_args(argv)
    path = Path(args.document)
    if args.write:
        path.write_text(regenerate(path.read_text()))
        return 0
    found = problems(path.read_text())
    print("\n".join(found) or "every table is what its command prints (or marked)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
