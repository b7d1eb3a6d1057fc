"""The ``etl`` command line (also ``python -m etl``).

Exit codes: 0 success; 1 failure; 2 usage or configuration error (reported before Spark
starts); 3 data-quality gate failed (nothing published to the target).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

import etl
from etl.errors import EXIT_USAGE, ConfigError, EtlError

DESCRIPTION = """\
Run and inspect etl jobs. Configuration comes from conf/ (or --conf-dir, or $ETL_CONF_DIR):
base.yml, then jobs/<job>.yml, then <env>.yml (--env, default $ETL_ENV or local), then --set
overrides. Tables live under
$ETL_WAREHOUSE (default ./warehouse), landed files under $ETL_LANDING (default ./landing).

exit codes: 0 success, 1 failure, 2 usage or configuration error, 3 quality gate failed"""

#: One module per group of subcommands (see etl/commands/__init__.py).
COMMAND_MODULES = (
    "etl.commands.run",
    "etl.commands.history",
    "etl.commands.state",
    "etl.commands.pipeline",
    "etl.commands.backfill",
    "etl.commands.submit",
    "etl.commands.lineage",
    "etl.commands.quarantine",
    "etl.commands.maintain",
    "etl.commands.forget",
    "etl.commands.quality",
    "etl.commands.report",
    "etl.commands.new",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="etl", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conf-dir", help="configuration folder (default: $ETL_CONF_DIR or ./conf)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {etl.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"etl: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except EtlError as exc:  # a command's own failure, named (a run's are handled by etl run)
        print(f"etl: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
