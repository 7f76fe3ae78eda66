"""BENCHMARKS.md's tables are exactly what their `--table` commands print from the committed
results files (benchmarks/results/AREA.jsonl), or say that their lines were lost.

A figure edited by hand, a line appended without regenerating its table, or a table added
without a source fails here; `python -m benchmarks.document --write` regenerates them."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def document():
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(REPO))  # `benchmarks` is a directory at the repo root
    from benchmarks import document

    yield document
    mp.undo()


@pytest.fixture(scope="module")
def text(document):
    return document.DOCUMENT.read_text()


def test_every_table_is_what_its_command_prints_or_is_marked(document, text):
    assert document.problems(text) == []


def test_the_commands_read_the_committed_results_files(document, text):
    """Each command reads a results file of benchmarks/results/ (its area's by default), and
    the file exists: a table cannot quote lines from a folder outside the repository."""
    commands = [t.command for t in document.tables_in(text.splitlines()) if t.command]
    assert {script for script, _ in commands} >= {
        "flops", "train_step", "input_pipeline", "inference", "cpu_conv"}
    results = REPO / "benchmarks" / "results"
    for script, argv in commands:
        named = argv[1:2] if len(argv) > 1 and not argv[1].startswith("-") else []
        path = (REPO / named[0]) if named else results / f"{script}.jsonl"
        assert path.resolve().parent == results and path.is_file(), argv


def test_a_figure_edited_by_hand_fails(document, text):
    """Every table with a command is checked: one changed digit in each is one problem each."""
    lines = text.splitlines()
    tables = [t for t in document.tables_in(lines) if t.command]
    for t in tables:
        row = t.start + 2  # the first row under the header and the delimiter
        lines[row] = re.sub(r"\d(?=\D*$)", lambda m: str((int(m[0]) + 1) % 10), lines[row])
    found = document.problems("\n".join(lines))
    assert len(found) == len(tables)
    assert all("differs from what" in p for p in found)


def test_a_table_without_a_source_fails(document, text):
    edited = text.replace("## Video\n", "## Video\n\n| clip | fps |\n| --- | --- |\n| a | 1 |\n")
    (problem,) = document.problems(edited)
    assert "neither its --table command nor the line" in problem


def test_write_regenerates_a_stale_table(document, text, tmp_path):
    stale = text.replace("| 224 px (224, 64) | 53,706 |", "| 224 px (224, 64) | 60,000 |")
    assert stale != text
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(stale)
    assert document.main(["--document", str(path)]) == 1
    assert document.main(["--document", str(path), "--write"]) == 0
    assert path.read_text() == text
