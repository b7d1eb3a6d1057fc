"""The ``etl`` command line (also ``python -m etl``).

Exit codes: 0 success; 1 failure; 2 usage or configuration error (reported before Spark
starts); 3 data-quality gate failed (nothing published to the target).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence

from etl.errors import EXIT_OK, EXIT_USAGE, ConfigError, EtlError, exit_code

DESCRIPTION = """\
Run and inspect etl jobs. Configuration comes from conf/ (or --conf-dir, or $ETL_CONF_DIR):
base.yml, then jobs/<job>.yml, then <env>.yml, then --set overrides. Tables live under
$ETL_WAREHOUSE (default ./warehouse), landed files under $ETL_LANDING (default ./landing).

exit codes: 0 success, 1 failure, 2 usage or configuration error, 3 quality gate failed"""


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="etl", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conf-dir", help="configuration folder (default: $ETL_CONF_DIR or ./conf)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run a job (incremental, or a backfill of the given dates)",
        description="Run JOB. Without dates it processes what is new since its last successful "
        "run; with --date or --from/--to it reprocesses exactly those logical dates. Running the "
        "same thing twice leaves the same tables.",
    )
    run.add_argument("job", help="job name (a file conf/jobs/JOB.yml)")
    run.add_argument("--env", default="local", help="environment overlay conf/ENV.yml (default: local)")
    run.add_argument("--date", type=_date, help="reprocess this one logical date (YYYY-MM-DD)")
    run.add_argument("--from", dest="date_from", type=_date, help="first logical date to reprocess")
    run.add_argument("--to", dest="date_to", type=_date, help="last logical date to reprocess")
    run.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a configuration value, e.g. --set spark.shuffle_partitions=8 (repeatable)",
    )

    commands.add_parser("jobs", help="list the configured jobs", description="List the jobs in conf/jobs/.")

    runs = commands.add_parser(
        "runs", help="show the run history", description="Show recent runs from <warehouse>/_etl/runs."
    )
    runs.add_argument("job", nargs="?", help="only this job")
    runs.add_argument("--env", default="local", help="environment overlay (default: local)")
    runs.add_argument("--limit", type=int, default=20, help="how many runs (default: 20)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "jobs":
            return _jobs(args)
        if args.command == "runs":
            return _runs(args)
    except ConfigError as exc:
        print(f"etl: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE


def _run(args: argparse.Namespace) -> int:
    from etl import logs
    from etl.config import load_job_config
    from etl.runner import check_dates, resolve_entrypoint

    if args.date and (args.date_from or args.date_to):
        raise ConfigError("use either --date or --from/--to, not both")
    date_from = args.date or args.date_from
    date_to = args.date or args.date_to
    check_dates(date_from, date_to)
    config = load_job_config(args.job, env=args.env, overrides=args.overrides, directory=args.conf_dir)
    resolve_entrypoint(config)
    logs.configure(config.logging.format, config.logging.level)

    from etl.runner import run_job
    from etl.summary import print_summary

    try:
        ctx = run_job(config, date_from=date_from, date_to=date_to)
    except EtlError as exc:
        print(f"etl: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exit_code(exc)
    except Exception as exc:  # noqa: BLE001 - any other failure is exit code 1, named
        print(f"etl: run failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
              file=sys.stderr)
        return exit_code(exc)
    print_summary(ctx, config)
    return EXIT_OK


def _jobs(args: argparse.Namespace) -> int:
    from etl.config import conf_dir, list_jobs, read_yaml

    root = conf_dir(args.conf_dir)
    for name in list_jobs(root):
        info = read_yaml(root / "jobs" / f"{name}.yml").get("job") or {}
        print(f"{name:20}  {info.get('description', '') if isinstance(info, dict) else ''}")
    return EXIT_OK


def _runs(args: argparse.Namespace) -> int:
    from etl.config import load_job_config, load_settings
    from etl.context import Warehouse
    from etl.runlog import format_table, read_runs
    from etl.session import get_spark

    if args.job:
        settings = load_job_config(args.job, env=args.env, directory=args.conf_dir)
    else:
        settings = load_settings(env=args.env, directory=args.conf_dir)  # type: ignore[assignment]
    warehouse, spark_settings = settings.paths.warehouse, settings.spark
    spark = get_spark(spark_settings)
    runs = read_runs(spark, Warehouse.at(warehouse).records("runs"), args.job)
    if runs is None:
        print("no runs recorded yet")
        return EXIT_OK
    rows = runs.limit(args.limit).collect()
    print(
        format_table(
            ["run_id", "job", "status", "mode", "dates", "read", "loaded", "quarantined", "seconds"],
            [
                (r.run_id, r.job, r.status, r.mode,
                 f"{r.date_from}..{r.date_to}" if r.date_from else "", r.rows_read, r.rows_loaded,
                 r.rows_quarantined, r.duration_s)
                for r in rows
            ],
        )
    )
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
