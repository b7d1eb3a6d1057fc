"""``etl maintain TABLE``: OPTIMIZE (optionally ZORDER BY) and VACUUM a Delta table, printing
file counts and sizes before and after. ``etl maintain --retention JOB``: enforce the job's
``retention:`` (`etl.retention`), printing what was removed from each table."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from etl.commands import add_env_option
from etl.errors import EXIT_OK, ConfigError


def register(commands: Any) -> None:
    maintain = commands.add_parser(
        "maintain", help="compact and vacuum a Delta table, or enforce a job's retention",
        usage="etl maintain [options] TABLE | etl maintain --retention JOB [--dry-run] [--now T]",
        description=(
            "OPTIMIZE (compaction, or ZORDER BY) then VACUUM a Delta table and print file counts "
            "and sizes before and after. TABLE is LAYER/NAME under the warehouse (e.g. "
            "silver/flights) or a path/URI. VACUUM refuses a retention that is not a finite "
            "number of hours >= 0 (exit 2 before Spark starts) or is shorter than the table's "
            "delta.deletedFileRetentionDuration (default 168 hours). "
            "With --retention JOB instead of TABLE: delete the rows the job keeps longer than "
            "its retention: section says (staged days, bronze by _ingested_at, its quarantined "
            "rows and dead letters, targets by their declared column), purge the data files "
            "of any version that held them, print per table the cutoff, rows removed and files "
            "purged, and record it in <warehouse>/_etl/retention (etl state show JOB shows when "
            "each table was last enforced)."
        ),
    )
    maintain.add_argument("table", metavar="TABLE", nargs="?",
                          help="LAYER/NAME, or a path or URI")
    maintain.add_argument("--retention", metavar="JOB",
                          help="enforce JOB's retention instead of maintaining a TABLE")
    maintain.add_argument("--dry-run", action="store_true",
                          help="with --retention: print what would be removed, change nothing")
    maintain.add_argument("--now", metavar="TIMESTAMP", type=_timestamp, default=None,
                          help="with --retention: the time cutoffs count back from, UTC "
                               "(YYYY-MM-DD[THH:MM:SS]; default: now)")
    add_env_option(maintain)
    maintain.add_argument("--zorder-by", nargs="+", default=[], metavar="COL",
                          help="ZORDER BY these columns (not partition columns)")
    maintain.add_argument("--retain-hours", type=float, default=None,
                          help="VACUUM retention in hours (default: the table's retention)")
    maintain.add_argument("--no-optimize", action="store_true", help="skip OPTIMIZE")
    maintain.add_argument("--no-vacuum", action="store_true", help="skip VACUUM")
    maintain.set_defaults(handler=handle_maintain)


def _timestamp(text: str) -> dt.datetime:
    """``--now``: a naive UTC time (an offset given is converted to UTC)."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS, got {text!r}") from None
    return when.astimezone(dt.UTC).replace(tzinfo=None) if when.tzinfo else when


def table_path(table: str, warehouse_root: str) -> str:
    """``layer/name`` under the warehouse; anything with a scheme or a leading ``/`` as is."""
    from etl.context import Warehouse

    if "://" in table or table.startswith(("/", "file:")):
        return table
    return f"{Warehouse.at(warehouse_root).root}/{table.strip('/')}"


def handle_maintain(args: argparse.Namespace) -> int:
    if (args.table is None) == (args.retention is None):
        raise ConfigError("give a TABLE or --retention JOB (one of them)", key="TABLE")
    if args.retention is None and (args.dry_run or args.now is not None):
        raise ConfigError("--dry-run and --now go with --retention JOB", key="--dry-run")
    if args.retention is not None:
        table_options = [name for name, given in (
            ("--zorder-by", args.zorder_by), ("--retain-hours", args.retain_hours is not None),
            ("--no-optimize", args.no_optimize), ("--no-vacuum", args.no_vacuum)) if given]
        if table_options:
            raise ConfigError(f"{table_options[0]} goes with a TABLE, not --retention JOB",
                              key=table_options[0])
        return handle_retention(args)
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


def handle_retention(args: argparse.Namespace) -> int:
    from etl.config import load_job_config

    config = load_job_config(args.retention, env=args.env, directory=args.conf_dir)
    if not config.retention.declared:
        raise ConfigError("the job declares no retention", file=config.file, key="retention")

    from etl.context import new_run_id, utcnow
    from etl.retention import enforce, format_removed
    from etl.session import get_spark
    from etl.storage import configure_s3a

    spark = get_spark(config.spark)
    configure_s3a(spark, config.s3)
    run_id = new_run_id()
    removed = enforce(spark, config, now=args.now or utcnow(), run_id=run_id,
                      dry_run=args.dry_run)
    what = "dry run, nothing changed" if args.dry_run else f"run {run_id}"
    print(f"{config.job.name}: retention ({what})")
    print(format_removed(removed, dry_run=args.dry_run))
    return EXIT_OK
