"""``etl new JOB --from FOLDER --keys K1,K2``: scaffold a job from a landed folder
(`etl.scaffold`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from etl.commands import add_env_option
from etl.errors import EXIT_OK


def register(commands: Any) -> None:
    new = commands.add_parser(
        "new", help="scaffold a job from a landed folder",
        description="Write conf/jobs/JOB.yml from the newest file of FOLDER (under the landing "
        "root): the source with the file's columns and guessed types, a bronze table, a silver "
        "table JOB merged on the keys, and unique and complete rules on them; with "
        "--transforms, also jobs/JOB.py with the silver transform. `etl run JOB` then works. "
        "Refuses an existing job, an empty folder or a key the file lacks (exit 2).",
    )
    new.add_argument("job", help="the new job's name (lower case, digits, _)")
    new.add_argument("--from", dest="folder", required=True,
                     help="the landed folder, relative to the landing root")
    new.add_argument("--keys", required=True,
                     help="comma-separated key columns of a row, e.g. carrier,flight")
    new.add_argument("--format", default="csv", choices=["csv", "json", "jsonl", "parquet"],
                     help="the files' format (default: csv)")
    new.add_argument("--transforms", action="store_true",
                     help="also write jobs/JOB.py, a page of transforms the YAML names")
    add_env_option(new)
    new.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from etl.config import conf_dir, load_settings
    from etl.context import landing_path
    from etl.scaffold import scaffold

    settings = load_settings(env=args.env, directory=args.conf_dir)
    written = scaffold(
        args.job, args.folder, [k.strip() for k in args.keys.split(",") if k.strip()],
        fmt=args.format, conf=conf_dir(args.conf_dir),
        landing=Path(landing_path(settings.paths.landing, "")), transforms=args.transforms,
    )
    for path in written:
        print(f"wrote {path}")
    print(f"next: etl run {args.job}")
    return EXIT_OK
