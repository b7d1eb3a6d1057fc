"""``etl maintain TABLE``: OPTIMIZE (optionally ZORDER BY) and VACUUM a Delta table, printing
file counts and sizes before and after."""

from __future__ import annotations

import argparse
from typing import Any

from etl.commands import add_env_option
from etl.errors import EXIT_OK


def register(commands: Any) -> None:
    maintain = commands.add_parser(
        "maintain", help="compact and vacuum a Delta table",
        description=(
            "OPTIMIZE (compaction, or ZORDER BY) then VACUUM a Delta table and print file counts "
            "and sizes before and after. TABLE is LAYER/NAME under the warehouse (e.g. "
            "silver/flights) or a path/URI. VACUUM refuses a retention that is not a finite "
            "number of hours >= 0 (exit 2 before Spark starts) or is shorter than the table's "
            "delta.deletedFileRetentionDuration (default 168 hours)."
        ),
    )
    maintain.add_argument("table", metavar="TABLE", help="LAYER/NAME, or a path or URI")
    add_env_option(maintain)
    maintain.add_argument("--zorder-by", nargs="+", default=[], metavar="COL",
                          help="ZORDER BY these columns (not partition columns)")
    maintain.add_argument("--retain-hours", type=float, default=None,
                          help="VACUUM retention in hours (default: the table's retention)")
    maintain.add_argument("--no-optimize", action="store_true", help="skip OPTIMIZE")
    maintain.add_argument("--no-vacuum", action="store_true", help="skip VACUUM")
    maintain.set_defaults(handler=handle_maintain)


def table_path(table: str, warehouse_root: str) -> str:
    """``layer/name`` under the warehouse; anything with a scheme or a leading ``/`` as is."""
    from etl.context import Warehouse

    if "://" in table or table.startswith(("/", "file:")):
        return table
    return f"{Warehouse.at(warehouse_root).root}/{table.strip('/')}"


def handle_maintain(args: argparse.Namespace) -> int:
    from etl.config import load_settings
    from etl.session import get_spark
    from etl.writers.maintenance import check_retention, maintain

    check_retention(args.retain_hours)  # nan, inf, negative: exit 2 before Spark starts
    settings = load_settings(env=args.env, directory=args.conf_dir)
    path = table_path(args.table, settings.paths.warehouse)
    spark = get_spark(settings.spark)
    report = maintain(
        spark, path, optimize=not args.no_optimize, zorder_by=args.zorder_by,
        vacuum=not args.no_vacuum, retain_hours=args.retain_hours,
    )
    print(report.format())
    return EXIT_OK
