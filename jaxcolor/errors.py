"""The two kinds of error a person can act on, and the exit status each one means.

Every exception jaxcolor raises on purpose derives from one of these, so entry points
(`jaxcolor` subcommands, `experiments/run.py`) report any of them the same way: one line,
`error: <message>`, and the exit status below. Anything else is a bug and keeps its traceback.

  UsageError  exit 2  the command cannot run as given: a wrong flag or config value, a path
                      that does not exist, a missing checkpoint or optional dependency.
                      Nothing ran; change the command.
  RunError    exit 1  the run, or some of its inputs, failed: damaged data, a NaN loss, a full
                      disk. Finished work is kept; the message says what to do next.

Subclasses keep a builtin base where callers catch by it (`RecordsError(RunError,
ValueError)`), and name the file or field at fault in their message.
"""

from __future__ import annotations

import importlib
import sys

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


class JaxcolorError(Exception):
    """Base of the errors a person can act on; `exit_code` says which kind it is."""

    exit_code = EXIT_FAILED


class UsageError(JaxcolorError, ValueError):
    """The command, flags or config cannot run as given (exit status 2)."""

    exit_code = EXIT_USAGE


class RunError(JaxcolorError):
    """The run or some of its inputs failed (exit status 1)."""

    exit_code = EXIT_FAILED


class MissingPathError(UsageError, FileNotFoundError):
    """A path named on the command line or in the config does not exist."""


class MissingDependencyError(UsageError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def require(module: str, extra: str):
    """Import an optional dependency, or raise `MissingDependencyError` naming the package
    and the `jaxcolor[extra]` that installs it (e.g. `require("av", "video")`).

    The one idiom for every optional import, so a missing package reads the same
    everywhere and the import happens where the package is used, not where it is checked.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(f"the {module} package is not installed ({e}); "
                                     f"pip install 'jaxcolor[{extra}]'") from None


def report(error: JaxcolorError, stream=None) -> int:
    """Print `error` as the one line users see and return its exit status."""
    print(f"error: {error}", file=sys.stderr if stream is None else stream, flush=True)
    return error.exit_code
