"""Write modes of etl.writers.delta: MERGE with duplicates, late rows and deletes, insert-only,
append, partition overwrite, idempotent commits and conflict retries. Every test checks the
final table exactly and the commit's metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from chispa import assert_df_equality
from delta.exceptions import ConcurrentAppendException
from delta.tables import DeltaTable

from etl.context import WriteMetrics
from etl.errors import WriteConflictError, WriteError
from etl.tables import committed_transaction, in_predicate, read_delta
from etl.writers.delta import DeltaAppend, DeltaMerge, DeltaOverwrite, run_identity

SCHEMA = "id int, v string, seq int, year int"
OP_SCHEMA = "id int, v string, seq int, op string"


def frame(spark, rows, schema=SCHEMA):
    return spark.createDataFrame(rows, schema)


def versions(spark, path: str) -> list[int]:
    return [r.version for r in DeltaTable.forPath(spark, path).history().select("version").collect()]


@pytest.fixture()
def path(tmp_path) -> str:
    return str(tmp_path / "silver" / "t")


def test_duplicate_keys_resolve_to_the_latest_by_sequence(spark, path):
    merge = DeltaMerge(spark, path).keys("id").sequence_by("seq").on_duplicates("latest")
    merge.execute(frame(spark, [(1, "a", 1, 2013)]))

    metrics = merge.execute(frame(spark, [
        (1, "a3", 3, 2013), (1, "a2", 2, 2013), (2, "b1", 1, 2013), (2, "b9", 9, 2013),
    ]))

    assert (metrics.operation, metrics.rows_inserted, metrics.rows_updated) == ("MERGE", 1, 1)
    assert_df_equality(
        read_delta(spark, path), frame(spark, [(1, "a3", 3, 2013), (2, "b9", 9, 2013)]),
        ignore_row_order=True,
    )


def test_duplicate_keys_with_equal_sequence_resolve_the_same_way_every_time(spark, path):
    rows = [(1, "x", 1, 2013), (1, "y", 1, 2013)]
    merge = DeltaMerge(spark, path).keys("id").sequence_by("seq").on_duplicates("latest")

    merge.execute(frame(spark, rows))
    first = read_delta(spark, path).collect()
    merge.execute(frame(spark, list(reversed(rows))))

    assert read_delta(spark, path).collect() == first
    assert len(first) == 1


def test_late_rows_never_overwrite_newer_ones(spark, path):
    merge = DeltaMerge(spark, path).keys("id").sequence_by("seq")
    merge.execute(frame(spark, [(1, "a", 5, 2013), (2, "b", 5, 2013)]))

    metrics = merge.execute(frame(spark, [(1, "a-late", 4, 2013), (2, "b-equal", 5, 2013), (3, "c", 1, 2013)]))

    assert (metrics.rows_inserted, metrics.rows_updated, metrics.rows_deleted) == (1, 0, 0)
    assert_df_equality(
        read_delta(spark, path),
        frame(spark, [(1, "a", 5, 2013), (2, "b", 5, 2013), (3, "c", 1, 2013)]),
        ignore_row_order=True,
    )


def test_duplicate_policy_is_checked_on_the_driver(spark, path):
    with pytest.raises(WriteError) as info:
        DeltaMerge(spark, path).on_duplicates("first")  # type: ignore[arg-type]
    assert str(info.value) == f"{path}: on_duplicates must be one of ['reject', 'latest'], got 'first'"


SEED = [(1, "a", 5, "U"), (2, "b", 5, "U"), (3, "c", 5, "U")]
CHANGES = [
    (1, None, 6, "D"),  # newer delete: removes id 1
    (2, None, 4, "D"),  # late delete (older than the stored row): ignored
    (3, "c2", 6, "U"),  # newer update
    (4, None, 1, "D"),  # delete of an unknown key: nothing inserted
    (5, "e", 1, "I"),  # new key
]


def test_hard_delete_removes_rows_only_for_newer_deletes(spark, path):
    merge = DeltaMerge(spark, path).keys("id").sequence_by("seq").deletes("op", ["D"])
    merge.execute(frame(spark, SEED, OP_SCHEMA))

    metrics = merge.execute(frame(spark, CHANGES, OP_SCHEMA))

    assert (metrics.rows_inserted, metrics.rows_updated, metrics.rows_deleted) == (1, 1, 1)
    assert_df_equality(
        read_delta(spark, path),
        frame(spark, [(2, "b", 5, "U"), (3, "c2", 6, "U"), (5, "e", 1, "I")], OP_SCHEMA),
        ignore_row_order=True,
    )


def test_soft_delete_sets_the_flag_and_keeps_the_row(spark, path):
    merge = (
        DeltaMerge(spark, path).keys("id").sequence_by("seq")
        .deletes("op", ["D"], soft_column="is_deleted")
    )
    merge.execute(frame(spark, SEED, OP_SCHEMA))

    metrics = merge.execute(frame(spark, CHANGES, OP_SCHEMA))

    assert (metrics.rows_inserted, metrics.rows_updated, metrics.rows_deleted) == (2, 2, 0)
    assert_df_equality(
        read_delta(spark, path),
        frame(spark, [
            (1, None, 6, "D", True), (2, "b", 5, "U", False), (3, "c2", 6, "U", False),
            (4, None, 1, "D", True), (5, "e", 1, "I", False),
        ], OP_SCHEMA + ", is_deleted boolean"),
        ignore_row_order=True,
    )


def test_insert_only_deduplicates_and_never_changes_stored_keys(spark, path):
    merge = DeltaMerge(spark, path).keys("id").sequence_by("seq").insert_only().on_duplicates("latest")
    merge.execute(frame(spark, [(1, "a", 1, 2013)]))

    metrics = merge.execute(frame(spark, [(1, "a-new", 9, 2013), (2, "b", 1, 2013), (2, "b2", 2, 2013)]))

    assert (metrics.rows_inserted, metrics.rows_updated, metrics.rows_deleted) == (1, 0, 0)
    assert_df_equality(
        read_delta(spark, path), frame(spark, [(1, "a", 1, 2013), (2, "b2", 2, 2013)]),
        ignore_row_order=True,
    )


def test_append_adds_rows(spark, path):
    DeltaAppend(spark, path).execute(frame(spark, [(1, "a", 1, 2013)]))

    metrics = DeltaAppend(spark, path).execute(frame(spark, [(1, "a", 1, 2013), (2, "b", 1, 2014)]))

    assert metrics == WriteMetrics(
        table="silver/t", operation="WRITE", version=1, rows_inserted=2, files_added=2
    )
    assert read_delta(spark, path).count() == 3


def test_dynamic_partition_overwrite_replaces_exactly_the_batch_partitions(spark, path):
    writer = DeltaOverwrite(spark, path).partitioned_by("year").dynamic_partitions()
    writer.execute(frame(spark, [(1, "a", 1, 2013), (2, "b", 1, 2014), (3, "c", 1, 2015)]))

    metrics = writer.execute(frame(spark, [(4, "d", 1, 2014), (5, "e", 1, 2016)]))

    assert (metrics.operation, metrics.version, metrics.rows_inserted) == ("WRITE", 1, 2)
    assert_df_equality(
        read_delta(spark, path),
        frame(spark, [(1, "a", 1, 2013), (3, "c", 1, 2015), (4, "d", 1, 2014), (5, "e", 1, 2016)]),
        ignore_row_order=True,
    )


def test_dynamic_partition_overwrite_needs_partition_columns(spark, path):
    with pytest.raises(WriteError) as info:
        DeltaOverwrite(spark, path).dynamic_partitions().execute(frame(spark, [(1, "a", 1, 2013)]))
    assert str(info.value) == (
        f"{path}: dynamic_partitions() needs partitioned_by() and no replace_where()"
    )


# --------------------------------------------------------------------------------------------
# Idempotent commits
# --------------------------------------------------------------------------------------------


def test_rerunning_a_committed_merge_adds_no_version_and_no_rows(spark, path):
    app_id, version = run_identity("flights", "silver_flights", "run-1")
    merge = DeltaMerge(spark, path).keys("id").user_metadata("run-1").idempotent(app_id, version)
    DeltaMerge(spark, path).keys("id").execute(frame(spark, [(1, "a", 1, 2013)]))
    batch = frame(spark, [(1, "a2", 2, 2013), (2, "b", 1, 2013)])

    first = merge.execute(batch)
    again = merge.execute(batch)

    assert (first.operation, first.version, first.rows_inserted, first.rows_updated) == ("MERGE", 1, 1, 1)
    assert again == WriteMetrics(table="silver/t", operation="SKIPPED", version=1)
    assert versions(spark, path) == [1, 0]
    assert committed_transaction(spark, path, app_id) == 0
    assert app_id == "etl/flights/silver_flights/run-1"
    entry = DeltaTable.forPath(spark, path).history(1).first()
    assert entry["userMetadata"] == "run-1"
    assert_df_equality(read_delta(spark, path), batch, ignore_row_order=True)
    # the transaction confs do not leak into later writes of the session
    assert spark.conf.get("spark.databricks.delta.write.txnAppId", None) is None


def test_the_local_transaction_check_answers_as_spark_s_snapshot_also_past_a_checkpoint(
        spark, path):
    """`committed_transaction` reads a local table's log with delta-rs: the same answers as
    Delta's snapshot, for transactions in the JSON commits and in the checkpoint (every 10th
    commit), at their latest version, and none for an id never recorded."""
    writes = [(f"etl/t/target/run-{i}", i % 3) for i in range(12)] + [("etl/t/target/run-0", 5)]
    for n, (app_id, version) in enumerate(writes):
        DeltaAppend(spark, path).idempotent(app_id, version).execute(
            frame(spark, [(n, "x", 1, 2013)]))
    assert any(p.name.endswith(".checkpoint.parquet")
               for p in (Path(path) / "_delta_log").iterdir())

    snapshot = DeltaTable.forPath(spark, path)._jdt.deltaLog().update(
        False, spark._jvm.scala.Option.empty(), spark._jvm.scala.Option.empty()).transactions()
    ids = [*sorted({a for a, _ in writes}), "etl/t/target/never"]
    spark_view = {a: (int(snapshot.apply(a)) if snapshot.contains(a) else None) for a in ids}
    assert {a: committed_transaction(spark, path, a) for a in ids} == spark_view == {
        **{f"etl/t/target/run-{i}": i % 3 for i in range(1, 12)},
        "etl/t/target/run-0": 5, "etl/t/target/never": None}


def test_rerunning_a_committed_append_adds_no_rows_and_a_new_run_does(spark, path):
    batch = frame(spark, [(1, "a", 1, 2013)])
    append = DeltaAppend(spark, path)

    append.idempotent(*run_identity("j", "t", "run-1")).execute(batch)
    again = append.idempotent(*run_identity("j", "t", "run-1")).execute(batch)
    other = append.idempotent(*run_identity("j", "t", "run-2")).execute(batch)

    assert (again.operation, again.version) == ("SKIPPED", 0)
    assert (other.operation, other.version, other.rows_inserted) == ("WRITE", 1, 1)
    assert read_delta(spark, path).count() == 2


def test_delta_itself_skips_a_merge_whose_identity_is_recorded(spark, path):
    """The MERGE carries txnAppId/txnVersion through the session confs: Delta 3.3.2 skips it even
    when the writer's own check is bypassed."""
    DeltaMerge(spark, path).keys("id").execute(frame(spark, [(1, "a", 1, 2013)]))
    merge = DeltaMerge(spark, path).keys("id").idempotent("app", 3)
    merge.execute(frame(spark, [(2, "b", 1, 2013)]))

    merge._merge(frame(spark, [(3, "c", 1, 2013)]).alias("s"), "t.id <=> s.id", False)

    assert versions(spark, path) == [1, 0]
    assert sorted(r.id for r in read_delta(spark, path).collect()) == [1, 2]


# --------------------------------------------------------------------------------------------
# Conflict retries
# --------------------------------------------------------------------------------------------


def test_conflicts_are_retried_a_bounded_number_of_times(spark, path):
    calls = []

    def conflicting() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise ConcurrentAppendException("Files were added to partition [year=2013]", "trace")

    DeltaAppend(spark, path).retries(2)._commit(conflicting)
    assert len(calls) == 3

    calls.clear()
    with pytest.raises(WriteConflictError) as info:
        DeltaAppend(spark, path).retries(1)._commit(lambda: conflicting() or conflicting())
    assert str(info.value) == (
        f"{path}: ConcurrentAppendException after 2 attempts: "
        "Files were added to partition [year=2013]"
    )


def test_other_errors_are_not_retried(spark, path):
    calls = []

    def failing() -> None:
        calls.append(1)
        raise ValueError("boom")

    with pytest.raises(ValueError):
        DeltaAppend(spark, path).retries(5)._commit(failing)
    assert len(calls) == 1


def test_in_predicate_covers_null_partition_values():
    assert in_predicate("year", [None]) == "`year` IS NULL"
    assert in_predicate("year", [2014, None, 2013], alias="t") == (
        "(t.`year` IN (2013, 2014) OR t.`year` IS NULL)"
    )
