"""``etl backfill JOB --from D --to D [--batch N] [--parallel N]``."""

from __future__ import annotations

import argparse
from typing import Any

from etl.commands.run import parse_date
from etl.commands.submit import add_conf_options
from etl.errors import EXIT_FAILURE, EXIT_OK


def register(commands: Any) -> None:
    backfill = commands.add_parser(
        "backfill", help="run a job for a range of dates, in batches, with a per-date ledger",
        description="Run JOB for every date from --from to --to that the ledger "
        "(<warehouse>/_etl/backfills) does not show as succeeded, --batch consecutive dates per "
        "run, --parallel runs at a time (each in a Spark session of its own, on one Spark "
        "application). Rerunning retries only the dates not yet succeeded. "
        "Exit code 0 if every date succeeded, else 1.")
    backfill.add_argument("job", help="job name (a file conf/jobs/JOB.yml)")
    backfill.add_argument("--from", dest="date_from", type=parse_date, required=True)
    backfill.add_argument("--to", dest="date_to", type=parse_date, required=True)
    backfill.add_argument("--batch", type=int, default=1, help="dates per run (default: 1)")
    backfill.add_argument("--parallel", type=int, default=1,
                          help="runs at a time, each in its own Spark session (default: 1)")
    backfill.add_argument("--force", action="store_true", help="run succeeded dates again too")
    add_conf_options(backfill, "local")
    backfill.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from etl import logs
    from etl.backfill import date_range, run_backfill
    from etl.config import load_job_config
    from etl.inspection import format_table
    from etl.runner import check_dates, resolve_entrypoint

    check_dates(args.date_from, args.date_to)
    config = load_job_config(args.job, env=args.env, overrides=args.overrides,
                             directory=args.conf_dir)
    resolve_entrypoint(config)
    logs.configure(config.logging.format, config.logging.level)
    report = run_backfill(config, args.date_from, args.date_to, batch=args.batch,
                          parallel=args.parallel, force=args.force)
    rows = []
    for date in date_range(args.date_from, args.date_to):
        if date in report.failed:
            rows.append((date, "failed", report.failed[date]))
        elif date in report.skipped:
            rows.append((date, "skipped (already succeeded)", ""))
        else:
            rows.append((date, "succeeded", ""))
    print(format_table(["date", "status", "error"], rows))
    return EXIT_OK if report.ok else EXIT_FAILURE
