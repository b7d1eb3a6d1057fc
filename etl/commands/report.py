"""``etl report``: write the HTML run report (`etl.report`) of one run or of a job's last runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from etl.commands import add_env_option
from etl.errors import EXIT_OK, ConfigError


def register(commands: Any) -> None:
    report = commands.add_parser(
        "report", help="write a self-contained HTML report of runs",
        description="Write one HTML file (no network needed to view it) with the run's status, "
        "step timings, rows in/out/quarantined, quality results with their history, the "
        "lineage graph and schema changes. Give --run RUN_ID, or --job JOB (with --last N, "
        "default 1).",
    )
    which = report.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", dest="run_id", metavar="RUN_ID", help="the run to report")
    which.add_argument("--job", help="report the last runs of JOB")
    report.add_argument("--last", type=int, default=1, metavar="N",
                        help="with --job: how many of its latest runs (default: 1)")
    report.add_argument("--out", metavar="FILE",
                        help="where to write (default: <warehouse>/_etl/reports/<name>.html)")
    add_env_option(report)
    report.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from etl.config import load_settings
    from etl.context import Warehouse

    if args.last < 1:
        raise ConfigError(f"--last must be at least 1, got {args.last}")
    if args.run_id and args.last != 1:
        raise ConfigError("--last goes with --job, not --run")
    settings = load_settings(env=args.env, directory=args.conf_dir)
    warehouse = Warehouse.at(settings.paths.warehouse)
    print(write_report(settings, warehouse, run_id=args.run_id, job=args.job, last=args.last,
                       out=args.out))
    return EXIT_OK


def write_report(settings: Any, warehouse: Any, *, run_id: str | None = None,
                 job: str | None = None, last: int = 1, out: str | None = None) -> Path:
    """Collect, render and write the report; return the file's path."""
    from etl.report import collect, render, slug

    reports = collect(warehouse, settings.paths.landing, run_id=run_id, job=job, last=last,
                      s3=settings.s3)
    if out is None:
        if "://" in warehouse.root:
            raise ConfigError("give --out FILE: the warehouse is not a local folder")
        name = slug(run_id) if run_id else f"{slug(job or '')}-last-{last}"
        out = f"{warehouse.records('reports')}/{name}.html"
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(reports), encoding="utf-8")
    return path.resolve()
