"""The `jaxcolor` command: one subcommand per module of this package.

    jaxcolor ingest images --src=photos/ --out=records/
    jaxcolor colorize --checkpoint=/runs/gan101 --input=/scans --output=/scans-colour

Each subcommand module defines `HELP` (one line), `add_arguments(parser)` and `run(args)`;
`common.run_command` maps what they raise to the exit status (0 done, 1 failed, 2 usage).
Training is not a subcommand: it is `python experiments/run.py --config=... --workdir=...`
(absl flags and ml_collections configs), as the help says.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from jaxcolor.cli import common

SUBCOMMANDS = ("ingest", "colorize", "video", "evaluate", "export", "port", "serve")

_DESCRIPTION = """\
Colourise grayscale photographs with a GAN trained in JAX.

Train with the repository's entry point (absl flags, ml_collections configs):
  python experiments/run.py --config=experiments/configs/gan.py --workdir=/runs/gan101 \\
      --config.data.train=/data/records
then colourise, evaluate or export with the subcommands below."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxcolor", description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `jaxcolor SUBCOMMAND --help` for a subcommand's flags and examples.")
    from jaxcolor import __version__

    parser.add_argument("--version", action="version", version=f"jaxcolor {__version__}")
    sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"jaxcolor.cli.{name}")
        command = sub.add_parser(name, help=module.HELP, description=module.HELP,
                                 epilog=module.EXAMPLES,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(command)
        command.set_defaults(command=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return common.run_command(args.command, args)


if __name__ == "__main__":
    sys.exit(main())
