"""Delta writers of etl.writers.delta on tables under each test's own tmp_path: the final table
and the commit's metrics and history are checked after every write."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable

from etl.context import WriteMetrics
from etl.errors import WriteError
from etl.tables import (
    apply_properties,
    commit_info,
    in_predicate,
    last_commit_metrics,
    partition_predicate,
    read_delta,
    sql_literal,
    table_exists,
    table_properties,
)
from etl.writers.delta import DeltaMerge, DeltaOverwrite

SCHEMA = "id int, v string, seq int, year int"
USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"


def frame(spark, *rows):
    return spark.createDataFrame(list(rows), SCHEMA)


def last_commit(spark, path: str):
    return DeltaTable.forPath(spark, path).history(1).first()


@pytest.fixture()
def silver(tmp_path) -> str:
    return str(tmp_path / "silver" / "flights")


# --------------------------------------------------------------------------------------------
# DeltaMerge
# --------------------------------------------------------------------------------------------


def test_first_merge_creates_the_table_with_user_metadata(spark, silver):
    batch = frame(spark, (1, "a", 1, 2013), (2, "b", 1, 2013), (3, "c", 1, 2014))

    metrics = (
        DeltaMerge(spark, silver).keys("id").sequence_by("seq").user_metadata("run-1")
        .execute(batch)
    )

    assert (metrics.table, metrics.operation, metrics.version) == ("silver/flights", "WRITE", 0)
    assert (metrics.rows_inserted, metrics.rows_updated, metrics.rows_deleted) == (3, 0, 0)
    assert_df_equality(read_delta(spark, silver), batch, ignore_row_order=True)
    assert last_commit(spark, silver)["userMetadata"] == "run-1"
    assert spark.conf.get(USER_METADATA, None) is None  # the session is left as it was


def test_merge_keeps_the_newest_version_of_each_key_and_is_idempotent(spark, silver):
    merge = DeltaMerge(spark, silver).keys("id").sequence_by("seq").user_metadata("run-1")
    merge.execute(frame(spark, (1, "a", 5, 2013), (2, "b", 5, 2013)))
    batch = frame(
        spark,
        (1, "a-newer", 6, 2013),  # newer than the stored version: updates it
        (2, "b-older", 4, 2013),  # older (arrived late): must not overwrite
        (3, "c", 1, 2013),  # new key: inserted
    )
    expected = frame(spark, (1, "a-newer", 6, 2013), (2, "b", 5, 2013), (3, "c", 1, 2013))

    merged = merge.user_metadata("run-2").execute(batch)

    assert (merged.table, merged.operation, merged.version) == ("silver/flights", "MERGE", 1)
    assert (merged.rows_inserted, merged.rows_updated, merged.rows_deleted) == (1, 1, 0)
    assert_df_equality(read_delta(spark, silver), expected, ignore_row_order=True)
    assert last_commit(spark, silver)["userMetadata"] == "run-2"

    again = merge.execute(batch)

    assert (again.operation, again.version) == ("MERGE", 2)
    assert (again.rows_inserted, again.rows_updated, again.rows_deleted) == (0, 0, 0)
    assert_df_equality(read_delta(spark, silver), expected, ignore_row_order=True)


def test_merge_without_sequence_or_pruning_updates_every_match_null_safely(spark, silver):
    merge = DeltaMerge(spark, silver).keys("id", "year").partitioned_by("year", prune=False)
    merge.execute(frame(spark, (1, "a", 5, None), (2, "b", 5, 2013), (9, "z", 1, 2014)))

    metrics = merge.execute(frame(spark, (1, "a-older", 4, None), (3, "c", 1, None)))

    assert (metrics.rows_inserted, metrics.rows_updated) == (1, 1)
    assert_df_equality(
        read_delta(spark, silver),
        frame(spark, (1, "a-older", 4, None), (2, "b", 5, 2013), (9, "z", 1, 2014),
              (3, "c", 1, None)),
        ignore_row_order=True,
    )
    # only the key condition: no partition predicate
    (predicate,) = json.loads(last_commit(spark, silver)["operationParameters"]["predicate"])
    assert re.fullmatch(
        r"\(\(id#\d+ <=> id#\d+\) AND \(year#\d+ <=> year#\d+\)\)", predicate
    ), predicate


def test_merge_refuses_a_batch_with_duplicate_keys(spark, silver):
    batch = frame(spark, (1, "a", 1, 2013), (1, "a2", 2, 2013), (2, "b", 1, 2013))

    with pytest.raises(WriteError) as info:
        DeltaMerge(spark, silver).keys("id", "year").execute(batch)

    assert str(info.value) == (
        f"{silver}: the batch holds keys ['id', 'year'] more than once, e.g. [(1, 2013)]"
    )
    assert not table_exists(spark, silver)


@pytest.mark.parametrize(
    ("configure", "message"),
    [
        (lambda m: m, "keys() must name at least one column"),
        (lambda m: m.keys("id", "key"),
         "keys ['key'] not in the batch's columns ['id', 'v', 'seq', 'year']"),
        (lambda m: m.keys("id").sequence_by("modified"),
         "sequence_by ['modified'] not in the batch's columns ['id', 'v', 'seq', 'year']"),
        (lambda m: m.keys("id").partitioned_by("month", "year"),
         "partitioned_by ['month'] not in the batch's columns ['id', 'v', 'seq', 'year']"),
    ],
    ids=["no keys", "missing key", "missing sequence", "missing partition"],
)
def test_merge_validates_columns_before_writing(spark, silver, configure, message):
    batch = frame(spark, (1, "a", 1, 2013))

    with pytest.raises(WriteError) as info:
        configure(DeltaMerge(spark, silver)).execute(batch)

    assert str(info.value) == f"{silver}: {message}"
    assert not table_exists(spark, silver)


def test_partitioned_merge_prunes_to_the_batch_partitions(spark, silver):
    merge = DeltaMerge(spark, silver).keys("id").sequence_by("seq").partitioned_by("year")
    merge.execute(frame(spark, (1, "a", 1, 2013), (2, "b", 1, 2014)))

    metrics = merge.execute(frame(spark, (1, "a2", 2, 2013), (3, "c", 1, 2013)))

    assert metrics == WriteMetrics(
        table="silver/flights", operation="MERGE", version=1, rows_inserted=1, rows_updated=1,
        rows_deleted=0, files_added=1, files_removed=1,
    )
    assert_df_equality(
        read_delta(spark, silver),
        frame(spark, (1, "a2", 2, 2013), (2, "b", 1, 2014), (3, "c", 1, 2013)),
        ignore_row_order=True,
    )
    commit = last_commit(spark, silver)
    assert commit["operation"] == "MERGE"
    # Spark records the resolved condition: `t.year IN (2013)` becomes `year#<id> = 2013`
    (predicate,) = json.loads(commit["operationParameters"]["predicate"])
    assert re.fullmatch(r"\(\(year#\d+ = 2013\) AND \(id#\d+ <=> id#\d+\)\)", predicate), predicate
    assert DeltaTable.forPath(spark, silver).detail().first()["partitionColumns"] == ["year"]


def spark_jobs(spark, action) -> int:
    """How many Spark jobs ``action`` ran (in a job group of its own)."""
    sc = spark.sparkContext
    sc.setJobGroup("counted", "jobs counted by the test")
    try:
        action()
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
        sc.setLocalProperty("spark.job.description", None)  # type: ignore[arg-type]
    return len(sc.statusTracker().getJobIdsForGroup("counted"))


def test_commit_metrics_are_the_commits_own_and_cost_no_spark_job(spark, silver):
    merge = DeltaMerge(spark, silver).keys("id").sequence_by("seq")
    merge.user_metadata("run-1").execute(frame(spark, (1, "a", 5, 2013), (2, "b", 5, 2013)))
    merge.user_metadata("run-2").execute(frame(spark, (1, "a2", 6, 2013), (3, "c", 1, 2013)))
    DeltaOverwrite(spark, silver).user_metadata("run-3").execute(frame(spark, (9, "z", 1, 2014)))
    history = {r["version"]: r for r in DeltaTable.forPath(spark, silver).history().collect()}

    found = {}
    assert spark_jobs(spark, lambda: found.update(
        {v: commit_info(spark, silver, v) for v in (0, 1, 2)})) == 0
    assert {v: (c["operation"], c["operationMetrics"], c["userMetadata"])
            for v, c in found.items()} == {
        v: (h["operation"], h["operationMetrics"], h["userMetadata"]) for v, h in history.items()}
    metrics = {}
    assert spark_jobs(spark, lambda: metrics.update(
        latest=last_commit_metrics(spark, silver, "silver/flights"),
        ours=last_commit_metrics(spark, silver, "silver/flights", "run-2"))) == 0
    files = {v: {k: int(n) for k, n in history[v]["operationMetrics"].items()} for v in (1, 2)}
    assert metrics == {
        # (an overwrite's commit counts the files it adds, not those it removes)
        "latest": WriteMetrics("silver/flights", "WRITE", 2, 1, 0, 0, files[2]["numFiles"], 0),
        # run 3's newer commit is not reported as run 2's
        "ours": WriteMetrics("silver/flights", "MERGE", 1, 1, 1, 0,
                             files[1]["numTargetFilesAdded"], files[1]["numTargetFilesRemoved"])}


def test_table_properties_come_from_the_log_and_are_set_only_when_they_differ(spark, silver):
    DeltaMerge(spark, silver).keys("id").properties({"delta.checkpointInterval": "5"}).execute(
        frame(spark, (1, "a", 5, 2013)))
    found = {}
    assert spark_jobs(spark, lambda: found.update(table_properties(spark, silver))) == 0
    assert found == DeltaTable.forPath(spark, silver).detail().first()["properties"] == {
        "delta.checkpointInterval": "5"}
    versions = [last_commit(spark, silver)["version"]]
    changes = [apply_properties(spark, silver, {"delta.checkpointInterval": "5"}),
               apply_properties(spark, silver, {"delta.checkpointInterval": "7",
                                                "delta.enableChangeDataFeed": "true"})]
    versions.append(last_commit(spark, silver)["version"])
    assert (changes, versions[1] - versions[0]) == ([False, True], 1)
    assert table_properties(spark, silver) == {"delta.checkpointInterval": "7",
                                               "delta.enableChangeDataFeed": "true"}


def test_partitioned_merge_of_an_empty_batch_commits_nothing(spark, silver):
    merge = DeltaMerge(spark, silver).keys("id").partitioned_by("year")
    merge.execute(frame(spark, (1, "a", 1, 2013)))

    metrics = merge.execute(frame(spark))

    assert metrics == WriteMetrics(table="silver/flights", operation="NOOP")
    assert last_commit(spark, silver)["version"] == 0


def test_partitioned_merge_matches_rows_in_the_null_partition(spark, silver):
    """Keys match null-safely; a row whose partition value is null must be updated, not
    inserted a second time."""
    merge = DeltaMerge(spark, silver).keys("id").partitioned_by("year")
    merge.execute(frame(spark, (1, "a", 1, None), (2, "b", 1, 2013)))

    metrics = merge.execute(frame(spark, (1, "a2", 2, None)))

    assert_df_equality(
        read_delta(spark, silver),
        frame(spark, (1, "a2", 2, None), (2, "b", 1, 2013)),
        ignore_row_order=True,
    )
    assert (metrics.rows_inserted, metrics.rows_updated) == (0, 1)


# --------------------------------------------------------------------------------------------
# DeltaOverwrite
# --------------------------------------------------------------------------------------------


@pytest.fixture()
def gold(tmp_path) -> str:
    return str(tmp_path / "gold" / "performance")


def test_overwrite_replace_where_replaces_only_matching_rows_and_is_repeatable(spark, gold):
    DeltaOverwrite(spark, gold).execute(
        frame(spark, (1, "a", 1, 2013), (2, "b", 1, 2013), (3, "c", 1, 2014))
    )
    writer = DeltaOverwrite(spark, gold).replace_where("year = 2013").user_metadata("run-2")
    batch = frame(spark, (4, "d", 2, 2013))
    expected = frame(spark, (3, "c", 1, 2014), (4, "d", 2, 2013))

    first = writer.execute(batch)
    assert_df_equality(read_delta(spark, gold), expected, ignore_row_order=True)
    second = writer.execute(batch)

    assert_df_equality(read_delta(spark, gold), expected, ignore_row_order=True)
    for version, metrics in ((1, first), (2, second)):
        assert (metrics.table, metrics.operation, metrics.version) == (
            "gold/performance", "WRITE", version
        )
        assert (metrics.rows_inserted, metrics.rows_updated) == (1, 0)
    assert (first.rows_deleted, second.rows_deleted) == (2, 1)
    commit = last_commit(spark, gold)
    assert commit["operationParameters"]["predicate"] == "year = 2013"
    assert commit["userMetadata"] == "run-2"


def test_overwrite_refuses_schema_overwrite_with_replace_where(spark, gold):
    writer = DeltaOverwrite(spark, gold).replace_where("year = 2013").overwrite_schema()

    with pytest.raises(WriteError) as info:
        writer.execute(frame(spark, (1, "a", 1, 2013)))

    assert str(info.value) == (
        f"{gold}: overwrite_schema() cannot be used with replace_where()"
    )
    assert not table_exists(spark, gold)


def test_overwrite_refuses_a_missing_partition_column(spark, gold):
    with pytest.raises(WriteError) as info:
        DeltaOverwrite(spark, gold).partitioned_by("month").execute(frame(spark, (1, "a", 1, 2013)))

    assert str(info.value) == (
        f"{gold}: partitioned_by ['month'] not in the batch's columns ['id', 'v', 'seq', 'year']"
    )


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------


def test_merge_builder_returns_new_objects_and_never_changes_the_original(spark):
    base = DeltaMerge(spark, "/wh/silver/t")

    configured = (
        base.keys("a", "b").sequence_by("s").partitioned_by("p", prune=False).user_metadata("r")
    )

    assert base == DeltaMerge(spark, "/wh/silver/t")
    assert (base.key_columns, base.sequence_columns, base.partition_columns) == ((), (), ())
    assert (base.prune, base.metadata) == (True, None)
    assert configured == DeltaMerge(
        spark, "/wh/silver/t", key_columns=("a", "b"), sequence_columns=("s",),
        partition_columns=("p",), prune=False, metadata="r",
    )
    keyed = base.keys("a")
    assert keyed is not base
    assert keyed.keys("b").key_columns == ("b",)
    assert keyed.key_columns == ("a",)


def test_overwrite_builder_returns_new_objects_and_never_changes_the_original(spark):
    base = DeltaOverwrite(spark, "/wh/gold/t")

    configured = (
        base.replace_where("x = 1").partitioned_by("x").user_metadata("r").overwrite_schema()
    )

    assert base == DeltaOverwrite(spark, "/wh/gold/t")
    assert (base.predicate, base.partition_columns, base.metadata, base.replace_schema) == (
        None, (), None, False
    )
    assert configured == DeltaOverwrite(
        spark, "/wh/gold/t", predicate="x = 1", partition_columns=("x",), metadata="r",
        replace_schema=True,
    )


# --------------------------------------------------------------------------------------------
# SQL literals and predicates
# --------------------------------------------------------------------------------------------

LITERALS = [
    ("O'Brien", "'O\\'Brien'"),
    ("C:\\data", "'C:\\\\data'"),
    (dt.date(2013, 1, 1), "DATE '2013-01-01'"),
    (dt.datetime(2013, 1, 1, 5, 0), "TIMESTAMP '2013-01-01 05:00:00'"),
    (dt.datetime(2013, 1, 1, 5, 0, 0, 250), "TIMESTAMP '2013-01-01 05:00:00.000250'"),
    (2013, "2013"),
    (-7, "-7"),
    (True, "true"),
    (None, "NULL"),
]


@pytest.mark.parametrize(("value", "literal"), LITERALS)
def test_sql_literal_text(value, literal):
    assert sql_literal(value) == literal


def test_sql_literals_read_back_as_the_same_values(spark):
    """Spark parses every literal back to the value it was made from; timestamps are compared
    as microseconds since the epoch, read as wall-clock times of the session time zone (UTC)."""
    values = [value for value, _ in LITERALS]
    selected = spark.sql(
        "SELECT " + ", ".join(
            f"unix_micros({sql_literal(v)})" if isinstance(v, dt.datetime) else sql_literal(v)
            for v in values
        )
    ).first()

    def micros(value: dt.datetime) -> int:
        return (value.replace(tzinfo=dt.UTC) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // (
            dt.timedelta(microseconds=1)
        )

    assert list(selected) == [micros(v) if isinstance(v, dt.datetime) else v for v in values]


def test_in_predicate_sorts_and_deduplicates_literals():
    assert in_predicate("year", [2014, 2013, 2014]) == "`year` IN (2013, 2014)"
    assert in_predicate("carrier", ["UA", "AA"], alias="t") == "t.`carrier` IN ('AA', 'UA')"
    assert in_predicate("flight_date", [dt.date(2013, 1, 2), dt.date(2013, 1, 1)]) == (
        "`flight_date` IN (DATE '2013-01-01', DATE '2013-01-02')"
    )


def test_partition_predicate_covers_the_partitions_of_the_batch(spark):
    df = spark.createDataFrame(
        [(1, 2013, 1), (2, 2013, 2), (3, 2013, 2)], "id int, year int, month int"
    )

    assert partition_predicate(df, ["year", "month"], alias="t") == (
        "t.`year` IN (2013) AND t.`month` IN (1, 2)"
    )
    assert partition_predicate(df, []) is None
    assert partition_predicate(df.limit(0), ["year"]) is None


def test_partition_predicate_covers_the_null_partition(spark):
    df = spark.createDataFrame([(1, 2013), (2, None)], "id int, year int")

    assert partition_predicate(df, ["year"], alias="t") == (
        "(t.`year` IN (2013) OR t.`year` IS NULL)"
    )
    assert partition_predicate(df.where("year IS NULL"), ["year"]) == "`year` IS NULL"
