"""``etl jobs`` and ``etl runs``: what is configured and what has run."""

from __future__ import annotations

import argparse
from typing import Any

from etl.commands import add_env_option
from etl.errors import EXIT_OK, ConfigError


def register(commands: Any) -> None:
    jobs = commands.add_parser(
        "jobs", help="list the configured jobs", description="List the jobs in conf/jobs/."
    )
    jobs.set_defaults(handler=handle_jobs)

    runs = commands.add_parser(
        "runs", help="show the run history",
        description="Show recent runs from <warehouse>/_etl/runs, newest first.",
    )
    runs.add_argument("job", nargs="?", help="only this job")
    add_env_option(runs)
    runs.add_argument("--limit", type=int, default=20, help="how many runs (default: 20)")
    runs.add_argument("--status", choices=["succeeded", "failed", "quality_failed"],
                      help="only runs that ended so")
    runs.add_argument("--since", type=_date, help="only runs started on or after this date")
    runs.add_argument("--until", type=_date, help="only runs started on or before this date")
    runs.add_argument("--steps", action="store_true",
                      help="one line per step of each run: rows in and out, seconds, Spark jobs "
                           "and tasks")
    runs.set_defaults(handler=handle_runs)


def _date(text: str) -> Any:
    from etl.commands.run import parse_date

    return parse_date(text)


def handle_jobs(args: argparse.Namespace) -> int:
    from etl.config import conf_dir, list_jobs, read_yaml

    root = conf_dir(args.conf_dir)
    for name in list_jobs(root):
        info = read_yaml(root / "jobs" / f"{name}.yml").get("job") or {}
        description = info.get("description", "") if isinstance(info, dict) else ""
        print(f"{name:20}  {description}")
    return EXIT_OK


def handle_runs(args: argparse.Namespace) -> int:
    from etl.config import load_job_config, load_settings
    from etl.context import Warehouse
    from etl.inspection import RUN, STEP, format_table, query_runs

    if args.since and args.until and args.since > args.until:
        raise ConfigError(f"--since {args.since} is after --until {args.until}")
    if args.job:
        settings: Any = load_job_config(args.job, env=args.env, directory=args.conf_dir)
    else:
        settings = load_settings(env=args.env, directory=args.conf_dir)
    rows = query_runs(
        Warehouse.at(settings.paths.warehouse).records("runs"), settings.s3, args.job,
        status=args.status, since=args.since, until=args.until,
        record_type=STEP if args.steps else RUN, limit=args.limit,
    )
    if rows is None:
        print("no runs recorded yet")
        return EXIT_OK
    if args.steps:
        print(format_table(
            ["run_id", "job", "step", "status", "rows_in", "rows_out", "seconds", "spark_jobs",
             "tasks"],
            [(r.run_id, r.job, r.step, r.status, r.rows_read, r.rows_written, r.duration_s,
              getattr(r, "spark_jobs", None), getattr(r, "spark_tasks", None)) for r in rows]))
        return EXIT_OK
    print(
        format_table(
            ["run_id", "job", "status", "mode", "dates", "read", "loaded", "quarantined",
             "written", "seconds", "error"],
            [
                (r.run_id, r.job, r.status, r.mode,
                 f"{r.date_from}..{r.date_to}" if r.date_from else "", r.rows_read, r.rows_loaded,
                 r.rows_quarantined, getattr(r, "rows_written", None), r.duration_s,
                 r.error_class)
                for r in rows
            ],
        )
    )
    return EXIT_OK
