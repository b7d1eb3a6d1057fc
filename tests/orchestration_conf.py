"""A configuration folder of tiny test jobs (`tests.jobs_for_tests`) for pipeline and backfill
tests: base.yml and local.yml from the repository, plus the given jobs and pipelines."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def make_conf(root: Path, warehouse: Path, jobs: dict[str, dict[str, Any]],
              pipelines: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write ``root/conf`` with one ``record_dates`` job per entry of ``jobs`` (the value is its
    ``params``; an ``entrypoint`` key picks another test job) and the given pipelines."""
    conf = root / "conf"
    (conf / "jobs").mkdir(parents=True)
    shutil.copyfile(ROOT / "conf" / "base.yml", conf / "base.yml")
    (conf / "local.yml").write_text(yaml.safe_dump({
        "spark": {"master": "local[2]", "jars_dir": str(ROOT / ".jars")},
        "paths": {"warehouse": str(warehouse)},
    }))
    for name, params in jobs.items():
        params = dict(params)
        entry = params.pop("entrypoint", "record_dates")
        (conf / "jobs" / f"{name}.yml").write_text(yaml.safe_dump({
            "job": {"name": name, "entrypoint": f"tests.jobs_for_tests:{entry}"},
            "params": params,
        }))
    if pipelines:
        (conf / "pipelines").mkdir()
        for name, document in pipelines.items():
            (conf / "pipelines" / f"{name}.yml").write_text(yaml.safe_dump(document, sort_keys=False))
    return conf
