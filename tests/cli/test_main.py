"""The `jaxcolor` command itself: subcommands, help with examples, one flag style, the
exit-status rule (0 done, 1 failed, 2 usage), and `python -m jaxcolor`."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from jaxcolor import cli, errors
from jaxcolor.cli import common


def test_help_lists_every_subcommand_and_names_the_training_entry_point(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for name in cli.SUBCOMMANDS:
        assert re.search(rf"^\s+{name}\s+\S", out, re.M), (name, out)
    assert "python experiments/run.py --config=experiments/configs/gan.py" in out


@pytest.mark.parametrize("name", cli.SUBCOMMANDS)
def test_each_subcommand_help_ends_with_real_examples(name, capsys):
    with pytest.raises(SystemExit):
        cli.main([name, "--help"])
    out = capsys.readouterr().out
    examples = out[out.index("examples:"):].splitlines()[1:]
    commands = [line.strip() for line in examples if line.strip().startswith(("jaxcolor ",
                                                                             "python "))]
    assert len(commands) >= 2, out
    assert any(c.startswith(f"jaxcolor {name} ") for c in commands), commands


@pytest.mark.parametrize("name", cli.SUBCOMMANDS)
def test_flags_are_snake_case(name):
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "subcommand").choices[name]
    parsers = [sub] + [p for a in sub._actions if a.dest == "source" for p in a.choices.values()]
    flags = [o for p in parsers for a in p._actions for o in a.option_strings
             if o.startswith("--")]
    assert flags and not [f for f in flags if "-" in f[2:]], flags


def test_exit_statuses_follow_one_rule(capsys):
    def raises(error):
        def command(args):
            raise error
        return command

    assert common.run_command(lambda args: 0, None) == errors.EXIT_OK
    assert common.run_command(raises(errors.UsageError("--x: bad")), None) == 2
    assert common.run_command(raises(errors.RunError("a.jpg: damaged")), None) == 1
    assert common.run_command(raises(errors.MissingPathError("nope: missing")), None) == 2
    assert common.run_command(raises(KeyboardInterrupt()), None) == 130
    err = capsys.readouterr().err.splitlines()
    assert err == ["error: --x: bad", "error: a.jpg: damaged", "error: nope: missing",
                   "interrupted"]
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        common.run_command(raises(ZeroDivisionError()), None)


def test_wrong_flag_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["colorize", "--no_such_flag"])
    assert exit_.value.code == 2


def test_python_dash_m_jaxcolor_is_the_command(tmp_path):
    result = subprocess.run([sys.executable, "-m", "jaxcolor", "export",
                             f"--checkpoint={tmp_path / 'none'}", f"--out={tmp_path / 'g.onnx'}"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'none'}: no such checkpoint directory"]


def test_progress_bar_shows_rate_and_eta():
    import io

    stream = io.StringIO()
    bar = common.ProgressBar("colorize", stream=stream, interval=0.0, unit=" images/s")
    bar(5, 20)
    bar(20, 20)
    bar.close()
    text = stream.getvalue()
    first, last = text.split("\r")[1:]
    assert "5/20  25%" in first and "ETA" in first and "images/s" in first
    assert "20/20 100%" in last and "ETA" not in last  # nothing left to wait for
    assert text.endswith("\n")
