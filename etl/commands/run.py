"""``etl run JOB``: run a job, incrementally or for a range of logical dates."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from etl.commands import add_env_option
from etl.errors import EXIT_OK, ConfigError, EtlError, SecretError, exit_code


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def register(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="run a job (incremental, or a backfill of the given dates)",
        description="Run JOB. Without dates it processes what is new since its last successful "
        "run; with --date or --from/--to it reprocesses exactly those logical dates. Running the "
        "same thing twice leaves the same tables.",
    )
    run.add_argument("job", help="job name (a file conf/jobs/JOB.yml)")
    add_env_option(run)
    run.add_argument("--date", type=parse_date, help="reprocess this one logical date (YYYY-MM-DD)")
    run.add_argument("--from", dest="date_from", type=parse_date, help="first logical date to reprocess")
    run.add_argument("--to", dest="date_to", type=parse_date, help="last logical date to reprocess")
    run.add_argument(
        "--from-staging", metavar="RUN_ID",
        help="redo the transform and load of run RUN_ID from its staged extracts, without "
        "reading the sources (jobs with staging.enabled)",
    )
    run.add_argument(
        "--allow-empty", action="store_true",
        help="let a write that would replace rows with nothing go ahead (a backfill of dates "
        "without rows, an empty snapshot file); refused otherwise",
    )
    run.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a configuration value, e.g. --set spark.shuffle_partitions=8 (repeatable); "
        "a value aws-sm://ID[#KEY] or gcp-sm://projects/P/secrets/S[#KEY] is read from that "
        "secrets manager here",
    )
    run.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from etl import logs, secrets
    from etl.config import load_job_config
    from etl.runner import check_dates, check_from_staging, resolve_entrypoint

    if args.date and (args.date_from or args.date_to):
        raise ConfigError("use either --date or --from/--to, not both")
    date_from = args.date or args.date_from
    date_to = args.date or args.date_to
    check_dates(date_from, date_to)
    try:  # secret references (etl.secrets), here where the job runs
        overrides = secrets.resolve_overrides(args.overrides)
        secrets.resolve_environment()
    except SecretError as exc:
        print(f"etl: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exit_code(exc)
    config = load_job_config(
        args.job, env=args.env, overrides=overrides, directory=args.conf_dir
    )
    entry = resolve_entrypoint(config)  # before Spark starts; the plan reads the job's key once
    check_from_staging(config, args.from_staging, date_from is not None)
    logs.configure(config.logging.format, config.logging.level)

    from etl.runner import run_job
    from etl.summary import print_summary

    try:
        ctx = run_job(
            config, date_from=date_from, date_to=date_to, from_staging=args.from_staging,
            allow_empty=args.allow_empty, entry=entry,
        )
    except EtlError as exc:
        print(f"etl: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exit_code(exc)
    except Exception as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        print(f"etl: run failed: {type(exc).__name__}: {first_line}", file=sys.stderr)
        return exit_code(exc)
    print_summary(ctx, config)
    return EXIT_OK
