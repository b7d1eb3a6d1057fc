"""Pipelines run locally: dependency order, retries with backoff, skipping what depends on a
failure, resuming a date, --force, and timeouts; checked against the exact run records."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from etl.pipeline import load_pipeline, run_pipeline
from tests import jobs_for_tests
from tests.orchestration_conf import make_conf

DAY = dt.date(2013, 1, 1)
PIPELINE = {
    "pipeline": {"name": "daily", "schedule": "0 6 * * *", "retries": 1, "retry_delay_s": 5,
                 "retry_backoff": 3.0},
    "jobs": {
        "extract": {"retries": 2},
        "transform": {"depends_on": ["extract"]},
        "report": {"depends_on": ["transform"]},
        "audit": {"depends_on": ["extract"]},
    },
}


@pytest.fixture()
def setup(tmp_path):
    warehouse = tmp_path / "warehouse"
    broken = tmp_path / "transform-broken"
    conf = make_conf(tmp_path, warehouse, {
        "extract": {"fail_attempts": 2, "write": False},
        "transform": {"fail_while_exists": str(broken), "write": False},
        "report": {"write": False},
        "audit": {"write": False},
    }, {"daily": PIPELINE})
    jobs_for_tests.CALLS.clear()
    jobs_for_tests.PARENTS.clear()
    return conf, warehouse, broken


def runs(spark, warehouse) -> list[tuple]:
    rows = spark.read.format("delta").load(str(warehouse / "_etl" / "runs")).collect()
    return sorted((r.run_id, r.job, r.mode, r.date_from, r.date_to, r.status, r.error_class)
                  for r in rows)


def outcome_rows(outcomes) -> list[tuple]:
    return [(o.job, o.status, o.attempts, len(o.run_ids), o.error) for o in outcomes]


def test_order_retries_and_skip_on_failure(spark, setup):
    conf, warehouse, broken = setup
    broken.touch()
    waits: list[float] = []
    outcomes = run_pipeline(load_pipeline("daily", conf), DAY, directory=conf, spark=spark,
                            sleep=waits.append)

    assert outcome_rows(outcomes) == [
        ("extract", "succeeded", 3, 3, None),
        ("transform", "failed", 2, 2, "RuntimeError: transform: told to fail"),
        ("report", "upstream_failed", 0, 0, "upstream failed: transform"),
        ("audit", "succeeded", 1, 1, None),
    ]
    assert jobs_for_tests.CALLS == [("extract", DAY, DAY)] * 3 + [("transform", DAY, DAY)] * 2 + [
        ("audit", DAY, DAY)]
    assert waits == [5.0, 15.0, 5.0]  # extract: 5 then 5*3; transform: 5
    # every job of the run saw the pipeline's run id as its parent; it is unset afterwards
    (parent,) = set(jobs_for_tests.PARENTS)
    assert parent is not None and parent not in [r for o in outcomes for r in o.run_ids]
    assert "ETL_PARENT_RUN_ID" not in os.environ
    by_id = {o.job: o.run_ids for o in outcomes}
    assert runs(spark, warehouse) == sorted(
        [(rid, "extract", "backfill", DAY, DAY, "failed", "RuntimeError")
         for rid in by_id["extract"][:2]]
        + [(by_id["extract"][2], "extract", "backfill", DAY, DAY, "succeeded", None)]
        + [(rid, "transform", "backfill", DAY, DAY, "failed", "RuntimeError")
           for rid in by_id["transform"]]
        + [(by_id["audit"][0], "audit", "backfill", DAY, DAY, "succeeded", None)]
    )

    # resume: the same date again, transform repaired -> only transform and report run
    broken.unlink()
    first = runs(spark, warehouse)
    jobs_for_tests.CALLS.clear()
    again = run_pipeline(load_pipeline("daily", conf), DAY, directory=conf, spark=spark,
                         sleep=waits.append)
    assert outcome_rows(again) == [
        ("extract", "already_succeeded", 0, 0, None),
        ("transform", "succeeded", 1, 1, None),
        ("report", "succeeded", 1, 1, None),
        ("audit", "already_succeeded", 0, 0, None),
    ]
    assert jobs_for_tests.CALLS == [("transform", DAY, DAY), ("report", DAY, DAY)]
    new = sorted(set(runs(spark, warehouse)) - set(first))
    assert new == sorted([
        (again[1].run_ids[0], "transform", "backfill", DAY, DAY, "succeeded", None),
        (again[2].run_ids[0], "report", "backfill", DAY, DAY, "succeeded", None),
    ])

    # --force runs every job again
    jobs_for_tests.CALLS.clear()
    forced = run_pipeline(load_pipeline("daily", conf), DAY, directory=conf, spark=spark,
                          force=True)
    assert [(o.job, o.status) for o in forced] == [
        ("extract", "succeeded"), ("transform", "succeeded"), ("report", "succeeded"),
        ("audit", "succeeded")]
    assert jobs_for_tests.CALLS == [(j, DAY, DAY) for j in ("extract", "transform", "report", "audit")]


def test_a_job_over_its_timeout_is_cancelled_and_not_retried_forever(spark, tmp_path):
    conf = make_conf(tmp_path, tmp_path / "warehouse", {"sleepy": {"entrypoint": "slow",
                                                                   "sleep_s": 60}},
                     {"slow": {"pipeline": {"name": "slow", "timeout_s": 2},
                               "jobs": {"sleepy": {}}}})
    jobs_for_tests.CALLS.clear()
    started = dt.datetime.now()
    (outcome,) = run_pipeline(load_pipeline("slow", conf), DAY, directory=conf, spark=spark)
    assert (dt.datetime.now() - started).total_seconds() < 30
    assert (outcome.job, outcome.status, outcome.attempts, outcome.error) == (
        "sleepy", "failed", 1, "JobTimeoutError: job sleepy ran longer than its timeout of 2s")
