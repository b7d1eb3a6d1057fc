"""``etl forget JOB --subject NAME --value V [--dry-run]``: erase one subject's value from
everything the job keeps (`etl.erasure`), recorded in the erasure ledger by its keyed hash."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from etl.commands import add_env_option
from etl.errors import EXIT_OK, EtlError, exit_code

DESCRIPTION = """\
Erase the value V of subject NAME (personal_data.subjects in conf/jobs/JOB.yml) from everything
the job keeps: the staged extracts, bronze, quarantine (the raw JSON record too) and dead letters
of each source the subject is found in, and each target; the rows go (erase: delete) or the key
and its also_null columns become null (erase: null). Every data file that still held the value
in any table version (and change data files) is deleted; targets built from an erased target
are recomputed for what the erased rows touched, and exports rewritten. The erasure ledger
_etl/erasures records the value's keyed hash (HMAC-SHA-256 under $ETL_PII_KEY, or the variable
personal_data.key_env names), never the value; later runs filter the hashed values out on
ingest. Forgetting a value already in the ledger does nothing (exit 0). Landed files are the
source system's and are not touched; _delta_log keeps old column statistics until log retention
passes (docs/privacy.md)."""


def register(commands: Any) -> None:
    forget = commands.add_parser(
        "forget", help="erase a subject's value (a customer, an aircraft) from every layer",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    forget.add_argument("job", help="job name (a file conf/jobs/JOB.yml)")
    forget.add_argument("--subject", required=True, metavar="NAME",
                        help="a subject of personal_data.subjects")
    forget.add_argument("--value", required=True, metavar="V",
                        help="the subject's key to erase (compared as text)")
    forget.add_argument("--dry-run", action="store_true",
                        help="list the tables, files and row counts it would change; change nothing")
    add_env_option(forget)
    forget.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from etl import logs
    from etl.config import load_job_config
    from etl.erasure import Report, forget, subject_of
    from etl.flow.plan import make_plan
    from etl.privacy import key_of
    from etl.runner import run_job

    config = load_job_config(args.job, env=args.env, directory=args.conf_dir)
    subject_of(config, args.subject)
    key_of(config)
    if not args.value:
        from etl.errors import ConfigError

        raise ConfigError("give the subject's key to erase", key="--value")
    # the Spark listener would put the plans, and the value in them, into lineage events
    config = dataclasses.replace(
        config, lineage=dataclasses.replace(config.lineage, spark_listener=False))
    plan = make_plan(config)
    logs.configure(config.logging.format, config.logging.level)
    reports: list[Report] = []

    def entry(spark: Any, ctx: Any, config: Any) -> None:
        ctx.mode = "forget"
        reports.append(forget(spark, ctx, plan, args.subject, args.value, dry_run=args.dry_run))

    try:
        run_job(config, entry=entry)
    except EtlError as exc:
        print(f"etl: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exit_code(exc)
    print(reports[0].format())
    return EXIT_OK
