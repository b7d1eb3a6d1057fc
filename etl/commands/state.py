"""``etl state show|set|reset|readmit``: inspect and rewind a job's watermarks (for backfills),
and try a set-aside landed file again."""

from __future__ import annotations

import argparse
from typing import Any

from etl.commands import add_env_option
from etl.errors import EXIT_OK, ConfigError


def register(commands: Any) -> None:
    state = commands.add_parser(
        "state", help="show or rewind a job's watermarks",
        description="Watermarks say how far each source of a job has been extracted; they live "
        "in <warehouse>/_etl/state/watermarks and advance only after a run's targets committed.",
    )
    actions = state.add_subparsers(dest="action", required=True, metavar="ACTION")

    show = actions.add_parser("show", help="the job's watermarks, ingested files per source and "
                             "when its retention was last enforced")
    show.add_argument("job")

    set_ = actions.add_parser(
        "set", help="set a source's watermark (the next run reads rows past VALUE)",
        description="Set the watermark of SOURCE: an integer (id columns), a date (YYYY-MM-DD) "
        "or a timestamp (YYYY-MM-DD HH:MM:SS). The next run reads the rows past it.",
    )
    set_.add_argument("job")
    set_.add_argument("source")
    set_.add_argument("value")

    reset = actions.add_parser(
        "reset", help="forget watermarks: the next run extracts those sources in full"
    )
    reset.add_argument("job")
    reset.add_argument("source", nargs="?", help="only this source (default: every source)")
    readmit = actions.add_parser(
        "readmit", help="try a set-aside landed file again on the next run",
        description="A landed file that could not be used is set aside and not read again "
        "(etl dead-letters JOB lists them with the reason). Once it is fixed in place, or to try "
        "it again as it is, readmit it: the next run reads it once more. A changed file (new "
        "size or modification time) is tried again without this.",
    )
    readmit.add_argument("job")
    readmit.add_argument("source")
    readmit.add_argument("path", help="the file's path, URI or name")
    for parser in (show, set_, reset, readmit):
        add_env_option(parser)
        parser.set_defaults(handler=handle)


def _incremental_column(config: Any, source: str) -> str:
    """The watermark column of a configured incremental JDBC source (a ConfigError otherwise)."""
    where = {"file": config.file, "key": f"sources.{source}"}
    if source not in config.sources:
        raise ConfigError(f"no source {source!r}; configured: {sorted(config.sources)}", **where)
    jdbc = config.sources[source].jdbc
    if jdbc is None or jdbc.incremental is None:
        raise ConfigError("not an incremental source (no jdbc.incremental)", **where)
    return str(jdbc.incremental.column)


def handle(args: argparse.Namespace) -> int:
    from etl.config import load_job_config

    config = load_job_config(args.job, env=args.env, directory=args.conf_dir)
    column = None
    if args.action == "set":
        from etl.errors import StateError
        from etl.watermarks import parse_value

        column = _incremental_column(config, args.source)
        try:
            value = parse_value(args.value)
        except StateError as exc:  # a usage error, reported before Spark starts
            raise ConfigError(str(exc), key="VALUE") from None
    elif args.action == "reset" and args.source:
        _incremental_column(config, args.source)
    elif args.action == "readmit" and args.source not in config.sources:
        raise ConfigError(f"no source {args.source!r}; configured: {sorted(config.sources)}",
                          file=config.file, key=f"sources.{args.source}")

    from etl.context import Warehouse

    warehouse = Warehouse.at(config.paths.warehouse)
    if args.action == "show":
        _show(config, warehouse, args.job)
        return EXIT_OK

    from etl.session import get_spark
    from etl.storage import configure_s3a
    from etl.watermarks import WatermarkStore, format_value

    spark = get_spark(config.spark)
    configure_s3a(spark, config.s3)
    store = WatermarkStore(spark, warehouse.records("state/watermarks"))
    if args.action == "readmit":
        from etl.state import FileLedger

        ledger = FileLedger(spark, warehouse.records("state/files"))
        uri = ledger.readmit(args.job, args.source, args.path, run_id="etl state readmit")
        print(f"{args.job}/{args.source}: {uri} readmitted; the next run reads it again")
    elif args.action == "set":
        assert column is not None
        store.advance(args.job, {args.source: (column, value)}, run_id="etl state set")
        print(f"{args.job}/{args.source}: watermark on {column} set to {format_value(value)}")
    elif args.action == "reset":
        removed = store.reset(args.job, args.source)
        what = f"{args.job}/{args.source}" if args.source else args.job
        print(f"{what}: {removed} watermark(s) removed; the next run extracts in full")
    return EXIT_OK


def _show(config: Any, warehouse: Any, job: str) -> None:
    """The job's watermarks, its ledger's files per source, and when its retention was last
    enforced per table (read without Spark)."""
    from etl.inspection import format_table, ledger_summary, retention_enforced, watermarks

    marks = watermarks(warehouse.records("state/watermarks"), config.s3, job)
    print(format_table(
        ["source", "column", "kind", "value", "run_id", "updated_at"],
        [(w.source, w.column, w.kind, w.value, w.run_id, w.updated_at)  # stored as formatted
         for w in marks],
    ) if marks else f"{job}: no watermarks stored")
    files = ledger_summary(warehouse.records("state/files"), config.s3, job)
    if files:
        print()
        print(format_table(["source", "files ingested", "last ingested"],
                           [(r.source, r.files, r.last_ingested) for r in files]))
    enforced = retention_enforced(warehouse.records("retention"), config.s3, job)
    if enforced:
        print()
        print(format_table(
            ["layer", "table", "retention last enforced", "cutoff", "rows removed",
             "files purged", "run_id"],
            [(r.layer, r.table, r.enforced_at, r.cutoff, r.rows_deleted, r.files_purged,
              r.run_id) for r in enforced]))
