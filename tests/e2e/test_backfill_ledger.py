"""Backfills: batches, the per-date ledger, and reruns after a failure or an interrupt that
process each date exactly once (checked in the job's output, the ledger and the run log)."""

from __future__ import annotations

import datetime as dt

import pytest

from etl.backfill import BackfillLedger, plan_batches, run_backfill
from etl.config import load_job_config
from tests import jobs_for_tests
from tests.orchestration_conf import make_conf

pytestmark = pytest.mark.e2e
D = [dt.date(2013, 1, d) for d in range(1, 6)]


def config(conf, *overrides):
    return load_job_config("loader", directory=conf, overrides=list(overrides))


def output(spark, warehouse) -> list[tuple]:
    rows = spark.read.format("delta").load(str(warehouse / "test" / "dates")).collect()
    return sorted((r.date, r.run_id) for r in rows)


def ledger(spark, warehouse) -> list[tuple]:
    rows = BackfillLedger(spark, str(warehouse / "_etl" / "backfills")).current("loader")
    return [(r.job, r.date, r.status, r.run_id, r.attempts, r.error) for r in rows]


def runs(spark, warehouse) -> list[tuple]:
    rows = spark.read.format("delta").load(str(warehouse / "_etl" / "runs")).collect()
    return sorted((r.run_id, r.date_from, r.date_to, r.status) for r in rows)


def test_batches_split_on_gaps_and_size():
    dates = [D[0], D[1], D[2], D[4]]
    assert plan_batches(dates, 2) == [[D[0], D[1]], [D[2]], [D[4]]]
    assert plan_batches(dates, 10) == [[D[0], D[1], D[2]], [D[4]]]


def test_failed_batch_is_retried_alone_on_rerun(spark, tmp_path):
    warehouse = tmp_path / "warehouse"
    conf = make_conf(tmp_path, warehouse, {"loader": {}})
    jobs_for_tests.CALLS.clear()

    first = run_backfill(config(conf, "params.fail_on=[2013-01-03]"), D[0], D[4], batch=2,
                         spark=spark)
    r12, r34, r5 = first.run_ids
    assert (first.succeeded, first.failed) == (
        [D[0], D[1], D[4]],
        {D[2]: "RuntimeError: loader: bad date in 2013-01-03..2013-01-04",
         D[3]: "RuntimeError: loader: bad date in 2013-01-03..2013-01-04"})
    error = "RuntimeError: loader: bad date in 2013-01-03..2013-01-04"
    assert ledger(spark, warehouse) == [
        ("loader", D[0], "succeeded", r12, 1, None), ("loader", D[1], "succeeded", r12, 1, None),
        ("loader", D[2], "failed", r34, 1, error), ("loader", D[3], "failed", r34, 1, error),
        ("loader", D[4], "succeeded", r5, 1, None)]

    second = run_backfill(config(conf), D[0], D[4], batch=2, spark=spark)
    (r34b,) = second.run_ids
    assert (second.skipped, second.succeeded, second.failed) == ([D[0], D[1], D[4]],
                                                                 [D[2], D[3]], {})
    assert ledger(spark, warehouse) == [
        ("loader", D[0], "succeeded", r12, 1, None), ("loader", D[1], "succeeded", r12, 1, None),
        ("loader", D[2], "succeeded", r34b, 2, None), ("loader", D[3], "succeeded", r34b, 2, None),
        ("loader", D[4], "succeeded", r5, 1, None)]
    assert output(spark, warehouse) == sorted([(D[0], r12), (D[1], r12), (D[2], r34b),
                                               (D[3], r34b), (D[4], r5)])
    assert runs(spark, warehouse) == sorted([
        (r12, D[0], D[1], "succeeded"), (r34, D[2], D[3], "failed"), (r5, D[4], D[4], "succeeded"),
        (r34b, D[2], D[3], "succeeded")])

    # idempotent: a third backfill of the range runs nothing
    third = run_backfill(config(conf), D[0], D[4], batch=2, spark=spark)
    assert (third.skipped, third.run_ids) == (D, [])
    assert jobs_for_tests.CALLS == [("loader", D[0], D[1]), ("loader", D[2], D[3]),
                                    ("loader", D[4], D[4]), ("loader", D[2], D[3])]


def test_interrupted_backfill_resumes_where_it_stopped(spark, tmp_path):
    warehouse = tmp_path / "warehouse"
    conf = make_conf(tmp_path, warehouse, {"loader": {}})
    jobs_for_tests.CALLS.clear()

    with pytest.raises(KeyboardInterrupt):
        run_backfill(config(conf, "params.interrupt_on=[2013-01-03]"), D[0], D[4], spark=spark)
    status = [(d, s, a, e) for _, d, s, _, a, e in ledger(spark, warehouse)]
    assert status == [(D[0], "succeeded", 1, None), (D[1], "succeeded", 1, None),
                      (D[2], "failed", 1, "interrupted: KeyboardInterrupt: "),
                      (D[3], "pending", 0, None), (D[4], "pending", 0, None)]

    rerun = run_backfill(config(conf), D[0], D[4], parallel=2, spark=spark)
    assert (rerun.skipped, sorted(rerun.succeeded), rerun.failed) == ([D[0], D[1]], D[2:], {})
    # every date was loaded exactly once, by one succeeded run that covers only that date
    loaded = output(spark, warehouse)
    assert [d for d, _ in loaded] == D
    succeeded = {rid: (f, t) for rid, f, t, s in runs(spark, warehouse) if s == "succeeded"}
    assert sorted(succeeded[rid] for _, rid in loaded) == [(d, d) for d in D]
    assert [(d, s, a) for _, d, s, _, a, _ in ledger(spark, warehouse)] == [
        (D[0], "succeeded", 1), (D[1], "succeeded", 1), (D[2], "succeeded", 2),
        (D[3], "succeeded", 1), (D[4], "succeeded", 1)]
    assert sorted(jobs_for_tests.CALLS) == sorted(
        [("loader", d, d) for d in D[:3]] + [("loader", d, d) for d in D[2:]])
