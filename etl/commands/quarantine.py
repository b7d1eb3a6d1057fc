"""``etl quarantine TABLE``, ``etl replay TABLE --run RUN_ID`` and ``etl dead-letters``: look at
rejected rows and whole-source failures, and send rejected rows back once fixed.

Replay: the quarantined rows of ``quarantine/<TABLE>`` (``record`` is the row as landed,
``source_file`` its file) go through the job's flow again (`etl.flow.run.replay_entry`): typing
(with the configuration as it is now, e.g. a fixed ``na_values``), the target's transform, the
quality gate and the publish, like a normal run with its own run id, run record, lineage events
and alerts. Afterwards those quarantine rows are marked replayed (``replayed_at``,
``replay_run_id``) and are not replayed again; rows that fail again are quarantined anew under
the replay's run id. A job with its own ``job.entrypoint`` replays through its module's
``replay(spark, ctx, config, quarantined)``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from etl.commands import add_env_option
from etl.errors import EXIT_OK, ConfigError, EtlError, exit_code


def register(commands: Any) -> None:
    quarantine = commands.add_parser(
        "quarantine", help="list quarantined rows of a table by run and rule",
        description="Count the rows in <warehouse>/quarantine/TABLE by run and reason (rule), "
        "with how many were replayed; --rows lists the rows themselves.",
    )
    quarantine.add_argument("table", help="table name, e.g. flights")
    quarantine.add_argument("--run", dest="run_id", help="only this run")
    quarantine.add_argument("--rows", action="store_true", help="list rows, not counts")
    quarantine.add_argument("--limit", type=int, default=50, help="rows to show (default: 50)")
    add_env_option(quarantine)
    quarantine.set_defaults(handler=handle_quarantine)

    replay = commands.add_parser(
        "replay", help="send quarantined rows back through the job",
        description="Replay the rows quarantined for TABLE by run RUN_ID through the job's "
        "transform, quality checks and load (after fixing the data or the rules), and mark them "
        "replayed. Exit codes as for `etl run`.",
    )
    replay.add_argument("table", help="table name, e.g. flights")
    replay.add_argument("--run", dest="run_id", required=True, help="the run that quarantined them")
    add_env_option(replay)
    replay.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a configuration value (repeatable), e.g. --set 'sources.flights.na_values=[NA, N/A]'",
    )
    replay.set_defaults(handler=handle_replay)

    dead = commands.add_parser(
        "dead-letters", help="list the sources and landed files that could not be used",
        description="List the sources that could not be read and the landed files set aside, "
        "with the reason, from <warehouse>/_etl/dead_letters (etl state readmit JOB SOURCE FILE "
        "tries a set-aside file again).",
    )
    dead.add_argument("job", nargs="?", help="only this job")
    add_env_option(dead)
    dead.set_defaults(handler=handle_dead_letters)


def _session(args: argparse.Namespace) -> tuple[Any, Any]:
    from etl.config import load_settings
    from etl.context import Warehouse
    from etl.session import get_spark

    settings = load_settings(env=args.env, directory=args.conf_dir)
    return get_spark(settings.spark), Warehouse.at(settings.paths.warehouse)


def _records(args: argparse.Namespace) -> tuple[Any, Any]:
    """The warehouse and its S3 settings, for commands that read records without Spark."""
    from etl.config import load_settings
    from etl.context import Warehouse

    settings = load_settings(env=args.env, directory=args.conf_dir)
    return Warehouse.at(settings.paths.warehouse), settings.s3


def handle_quarantine(args: argparse.Namespace) -> int:
    from etl.inspection import format_table, quarantine_rows, quarantine_summary

    warehouse, s3 = _records(args)
    path = warehouse.quarantine(args.table)
    if args.rows:
        found = quarantine_rows(path, s3, args.table, args.run_id, args.limit)
        print(format_table(
            ["run_id", "source_file", "reasons", "record", "replay_run_id"],
            [(r.run_id, r.source_file, "; ".join(r.reasons), r.record, r.replay_run_id)
             for r in found]))
        return EXIT_OK
    print(format_table(["run_id", "reason", "rows", "replayed"],
                       quarantine_summary(path, s3, args.table, args.run_id)))
    return EXIT_OK


def handle_replay(args: argparse.Namespace) -> int:
    from etl import logs
    from etl.config import load_job_config
    from etl.replay import jobs_of, replay

    spark, warehouse = _session(args)
    jobs = jobs_of(spark, warehouse, args.table, args.run_id)
    if len(jobs) != 1:
        raise ConfigError(f"quarantine/{args.table} has rows of run {args.run_id} from jobs "
                          f"{jobs}; expected exactly one")
    config = load_job_config(jobs[0], env=args.env, overrides=args.overrides,
                             directory=args.conf_dir)
    if config.job.entrypoint:
        module = importlib.import_module(config.job.entrypoint.partition(":")[0])
        hook = getattr(module, "replay", None)
        if not callable(hook):
            raise ConfigError(f"job {config.job.name}: {module.__name__} has no replay(spark, "
                              "ctx, config, quarantined) function", key="job.entrypoint")
    else:
        from etl.flow.run import replay_entry

        def hook(spark: Any, ctx: Any, config: Any, quarantined: Any) -> None:
            replay_entry(config, args.table, quarantined)(spark, ctx, config)
    logs.configure(config.logging.format, config.logging.level)
    try:
        ctx, marked = replay(spark, config, args.table, args.run_id, hook)
    except EtlError as exc:
        print(f"etl: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exit_code(exc)
    print(f"replay run {ctx.run_id}: {marked} quarantined rows of run {args.run_id} replayed: "
          f"loaded {ctx.rows_loaded}, quarantined again {ctx.rows_quarantined}")
    return EXIT_OK


def handle_dead_letters(args: argparse.Namespace) -> int:
    from etl.inspection import dead_letters, format_table

    warehouse, s3 = _records(args)
    rows = dead_letters(warehouse.records("dead_letters"), s3, args.job)
    if rows is None:
        print("no dead letters recorded")
        return EXIT_OK
    print(format_table(["recorded_at", "job", "run_id", "source", "file", "error_class", "reason"],
                       [(r.recorded_at, r.job, r.run_id, r.source,
                         r.path.rsplit("/", 1)[-1] if r.path else "", r.error_class,
                         r.reason[:200]) for r in rows]))
    return EXIT_OK
