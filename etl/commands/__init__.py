"""Subcommands of the ``etl`` CLI, one module each.

A module defines ``register(commands)``, which adds its sub-parser(s) to the argparse
sub-parsers object and sets ``handler=function(args) -> exit code`` as a default. `etl.cli` lists
the modules in ``COMMAND_MODULES``; heavy imports (pyspark) stay inside the handlers so that
``--help`` and configuration errors never start Spark.
"""

from __future__ import annotations

import argparse
import os


def add_env_option(parser: argparse.ArgumentParser, what: str = "environment overlay") -> None:
    """``--env ENV``: the overlay ``conf/ENV.yml``; by default ``$ETL_ENV``, else ``local``."""
    parser.add_argument("--env", default=os.environ.get("ETL_ENV") or "local",
                        help=f"{what} conf/ENV.yml (default: $ETL_ENV, else local)")
