"""Backfills: batches, the per-date ledger, and reruns after a failure or an interrupt that
process each date exactly once (checked in the job's output, the ledger and the run log)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from delta.tables import DeltaTable

from etl.backfill import BackfillLedger, plan_batches, run_backfill
from etl.config import load_job_config
from etl.tables import committed_transaction, read_delta
from etl.writers.delta import run_identity
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


@pytest.fixture()
def meeting():
    """Parallel ``merge_dates`` runs meet twice before they merge (see the job)."""
    jobs_for_tests.MEET = threading.Barrier(2)
    jobs_for_tests.PROBES.clear()
    jobs_for_tests.MERGES.clear()
    yield
    jobs_for_tests.MEET = None


def test_parallel_runs_keep_their_own_commit_identity(spark, tmp_path, meeting):
    """Two dates backfilled with --parallel 2 MERGE into one table at the same time: each
    commit carries the user metadata and the transaction id of the run that wrote it (a shared
    session let one run's identity land on the other's commit, and the other's real write was
    then reported as skipped)."""
    warehouse = tmp_path / "warehouse"
    conf = make_conf(tmp_path, warehouse, {"merger": {"entrypoint": "merge_dates"}})
    path = jobs_for_tests.merged_path(str(warehouse))
    # the table exists before the runs, so both runs MERGE (rather than create it)
    spark.createDataFrame([], jobs_for_tests.MERGED_SCHEMA).write.format("delta") \
        .partitionBy("date").save(path)

    report = run_backfill(load_job_config("merger", directory=conf), D[0], D[1], parallel=2,
                          spark=spark)

    assert (sorted(report.succeeded), report.failed) == ([D[0], D[1]], {})
    first, second = report.run_ids
    # each run read back its own session setting: the two runs did not share settings
    assert sorted(jobs_for_tests.PROBES) == sorted([(first, first), (second, second)])
    # neither write was reported as skipped: both MERGEd one new row
    assert sorted((run_id, m.operation, m.rows_inserted, m.rows_updated)
                  for run_id, m in jobs_for_tests.MERGES) == sorted(
        [(first, "MERGE", 1, 0), (second, "MERGE", 1, 0)])
    # the rows of each date were written by the run of that date ...
    rows = read_delta(spark, path).collect()
    by_date = {D[0]: first, D[1]: second}
    assert sorted((r.date, r.run_id) for r in rows) == sorted(by_date.items())
    # ... in a commit that names that run, and carries that run's transaction id
    history = DeltaTable.forPath(spark, path).history().where("operation = 'MERGE'").collect()
    assert sorted(h.userMetadata for h in history) == sorted([first, second])
    for entry in history:
        (version_rows,) = [m for r, m in jobs_for_tests.MERGES if r == entry.userMetadata]
        assert version_rows.version == entry.version
    for run_id in (first, second):
        app_id, version = run_identity("merger", "test/merged", run_id)
        assert committed_transaction(spark, path, app_id) == version
    # the commit of each run added exactly the file of its own date
    for entry in history:
        (date,) = [d for d, r in by_date.items() if r == entry.userMetadata]
        added = spark.read.json(
            f"{path}/_delta_log/{entry.version:020d}.json").where("add IS NOT NULL").collect()
        assert [a.add.partitionValues.date for a in added] == [str(date)]
