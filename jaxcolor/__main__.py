"""`python -m jaxcolor SUBCOMMAND ...`: the same as the `jaxcolor` command."""

import sys

from jaxcolor.cli import main

sys.exit(main())
