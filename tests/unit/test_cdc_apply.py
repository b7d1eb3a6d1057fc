"""Change data capture: flattening Debezium envelopes and applying them (etl.transforms.cdc,
etl.writers.cdc) — exact tables for ordered, shuffled, duplicated and late feeds."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from chispa import assert_df_equality

from etl.errors import WriteError
from etl.tables import read_delta
from etl.transforms.cdc import flatten_changes
from etl.transforms.cleaning import split_rejected
from etl.writers.cdc import CdcApply

ENVELOPE = ("op string, before struct<id int, name string>, after struct<id int, name string>, "
            "ts_ms bigint, source struct<lsn bigint>")
SEQ = "struct<position: bigint, ts_ms: bigint>"
BASE = 1_700_000_000_000  # epoch ms of 2023-11-14 22:13:20 UTC


def ev(op: str, key: int | None, name: str | None, lsn: int, before: str | None = None):
    """One envelope; ts_ms is BASE + lsn seconds, so time follows the log."""
    image = (key, name)
    after = None if op == "d" else image
    prior = (key, before) if op in ("u", "d") else None
    if op == "d":
        prior = image
    return (op, prior, after, BASE + lsn * 1000, (lsn,))


def at(lsn: int) -> dt.datetime:
    return dt.datetime(2023, 11, 14, 22, 13, 20) + dt.timedelta(seconds=lsn)


def seq(lsn: int) -> tuple[int, int]:
    return (lsn, BASE + lsn * 1000)


# the ordered feed: key 1 inserted, renamed twice; key 2 inserted and deleted; key 3 snapshot,
# deleted and inserted again
FEED = [
    ev("r", 3, "Cy", 1),
    ev("c", 1, "Ann", 2),
    ev("c", 2, "Bob", 3),
    ev("u", 1, "Anna", 4, before="Ann"),
    ev("d", 3, "Cy", 5),
    ev("d", 2, "Bob", 6),
    ev("u", 1, "Anne", 7, before="Anna"),
    ev("c", 3, "Cyd", 8),
]


def changes(spark, events):
    valid, _rejected = split_rejected(
        spark.createDataFrame(events, ENVELOPE).transform(flatten_changes(["id"]))
    )
    return valid.drop("_record")


def test_flatten_changes_rows_and_rejects(spark):
    feed = spark.createDataFrame([
        ev("c", 1, "Ann", 2),
        ev("d", 2, "Bob", 6),
        ("x", None, (4, "Dee"), BASE, (9,)),  # unknown op
        ("u", None, None, BASE, (10,)),  # no image
        ("c", None, (None, "Eve"), None, None),  # null key, no position, no time
    ], ENVELOPE)
    valid, rejected = split_rejected(feed.transform(flatten_changes(["id"])))

    assert_df_equality(
        valid.drop("_record"),
        spark.createDataFrame(
            [(1, "Ann", "c", seq(2), at(2)), (2, "Bob", "d", seq(6), at(6))],
            f"id int, name string, _cdc_op string, _cdc_seq {SEQ}, _cdc_ts timestamp",
        ),
        ignore_row_order=True, ignore_nullable=True,
    )
    assert sorted(tuple(r["_errors"]) for r in rejected.collect()) == [
        ("no log position and no ts_ms", "key id is null"),
        ("op u without a row image", "key id is null"),
        ("unknown op x",),
    ]


def test_lsn_text_is_ordered_as_a_number(spark):
    from etl.transforms.cdc import lsn_to_long

    rows = spark.createDataFrame([("0/23CB250",), ("1/0",), ("zz",)], "lsn string").select(
        lsn_to_long("lsn").alias("n")
    ).collect()
    assert [r.n for r in rows] == [0x23CB250, 1 << 32, None]


SOFT = (f"id int, name string, _cdc_op string, _cdc_seq {SEQ}, _deleted boolean, "
        "_deleted_at timestamp")


def test_scd1_soft_deletes_same_table_for_ordered_shuffled_duplicated_and_late(spark, tmp_path):
    ordered = str(tmp_path / "ordered")
    shuffled = str(tmp_path / "shuffled")
    apply = CdcApply(spark, ordered).keys("id").deletes("soft")
    apply.execute(changes(spark, FEED))
    # the same events in another order, some twice, across two batches; the second batch holds
    # events older than what the first one applied (key 1's first rename, key 3's delete)
    first = [FEED[7], FEED[6], FEED[2], FEED[1], FEED[6], FEED[5]]
    late = [FEED[3], FEED[4], FEED[0], FEED[3], FEED[2]]
    target = CdcApply(spark, shuffled).keys("id").deletes("soft")
    target.execute(changes(spark, first))
    metrics = target.execute(changes(spark, late))

    expected = spark.createDataFrame([
        (1, "Anne", "u", seq(7), False, None),
        (2, "Bob", "d", seq(6), True, at(6)),
        (3, "Cyd", "c", seq(8), False, None),
    ], SOFT)
    assert (metrics.operation, metrics.rows_inserted, metrics.rows_updated) == ("MERGE", 0, 0)
    for path in (ordered, shuffled):
        assert_df_equality(read_delta(spark, path), expected, ignore_row_order=True,
                           ignore_nullable=True)


def test_scd1_hard_deletes_and_tombstones_keep_late_events_out(spark, tmp_path):
    path, stones = str(tmp_path / "t"), str(tmp_path / "stones")
    apply = CdcApply(spark, path).keys("id").deletes("hard").tombstones(stones)
    apply.execute(changes(spark, [FEED[1], FEED[2], FEED[5], FEED[0]]))  # 2 deleted
    # late: key 2's insert (older than its delete) and key 1's insert again; new: key 1 renamed
    metrics = apply.execute(changes(spark, [FEED[2], FEED[1], FEED[3], FEED[4]]))

    assert (metrics.operation, metrics.rows_inserted, metrics.rows_updated,
            metrics.rows_deleted) == ("MERGE", 0, 1, 1)
    assert_df_equality(
        read_delta(spark, path),
        spark.createDataFrame([(1, "Anna", "u", seq(4))],
                              f"id int, name string, _cdc_op string, _cdc_seq {SEQ}"),
        ignore_nullable=True,
    )
    assert_df_equality(
        read_delta(spark, stones),
        spark.createDataFrame([(2, seq(6)), (3, seq(5))], f"id int, _cdc_seq {SEQ}"),
        ignore_row_order=True, ignore_nullable=True,
    )


HISTORY = (f"id int, name string, _cdc_op string, _cdc_seq {SEQ}, valid_from timestamp, "
           "valid_to timestamp, is_current boolean")


def test_scd2_exact_history_from_shuffled_batches_with_a_late_event(spark, tmp_path):
    path = str(tmp_path / "scd2")
    apply = CdcApply(spark, path).keys("id").output("scd2")
    apply.execute(changes(spark, [FEED[6], FEED[0], FEED[1], FEED[2], FEED[6]]))
    # key 1's middle version arrives late; key 3 is deleted and re-inserted; key 2 deleted
    metrics = apply.execute(changes(spark, [FEED[7], FEED[3], FEED[5], FEED[4], FEED[1]]))

    assert (metrics.operation, metrics.rows_inserted, metrics.rows_updated) == ("MERGE", 4, 3)
    assert_df_equality(
        read_delta(spark, path),
        spark.createDataFrame([
            (1, "Ann", "c", seq(2), at(2), at(4), False),
            (1, "Anna", "u", seq(4), at(4), at(7), False),
            (1, "Anne", "u", seq(7), at(7), None, True),
            (2, "Bob", "c", seq(3), at(3), at(6), False),
            (2, "Bob", "d", seq(6), at(6), at(6), False),
            (3, "Cy", "r", seq(1), at(1), at(5), False),
            (3, "Cy", "d", seq(5), at(5), at(5), False),
            (3, "Cyd", "c", seq(8), at(8), None, True),
        ], HISTORY),
        ignore_row_order=True, ignore_nullable=True,
    )


def test_cdc_apply_checks_arguments_before_spark_work(spark, tmp_path):
    with pytest.raises(WriteError, match=r"deletes must be one of"):
        CdcApply(spark, "/x").deletes("purge")  # type: ignore[arg-type]
    with pytest.raises(WriteError) as err:
        CdcApply(spark, "/x").keys("id").output("scd2").tombstones("/y").execute(
            changes(spark, FEED[:1]))
    assert str(err.value) == "/x: tombstones() is for output scd1 with hard deletes"


def wal2json(action: str, columns=None, identity=None, table: str = "Docs") -> str:
    """One wal2json (format 2) change of table s.<table>; columns as (name, value) pairs."""
    change: dict[str, object] = {"action": action, "timestamp": "2023-11-14 22:13:20.5+00",
                                 "schema": "s", "table": table}
    for key, pairs in (("columns", columns), ("identity", identity)):
        if pairs is not None:
            change[key] = [{"name": n, "type": "text", "value": v} for n, v in pairs]
    return json.dumps(change)


def test_an_update_that_leaves_out_an_unchanged_toasted_value_keeps_the_stored_text(spark, tmp_path):
    """wal2json leaves an unchanged TOASTed column out of an update's new values; the envelope
    takes it from the old row (REPLICA IDENTITY FULL), so applying the update keeps the text.
    A value the update does carry, null included, is the new value. An update whose old row is
    only the key, and a TRUNCATE, are marked for the reader to refuse; nothing is dropped."""
    from pyspark.sql import types as T

    from etl.readers.pg_logical import changes_to_envelopes

    body = "x" * 3000
    schema = T.StructType([T.StructField(n, t) for n, t in (
        ("id", T.IntegerType()), ("title", T.StringType()), ("body", T.StringType()))])
    full_old = [("id", 1), ("title", "draft"), ("body", body)]
    peek = spark.createDataFrame([
        ("0/10", wal2json("I", columns=full_old)),
        ("0/20", wal2json("U", columns=[("id", 1), ("title", "final")], identity=full_old)),
        ("0/28", wal2json("U", columns=[("id", 1), ("title", "final")], table="Other")),
        ("0/30", wal2json("U", columns=[("id", 2), ("title", None), ("body", None)],
                          identity=[("id", 2), ("title", "t"), ("body", "b")])),
        ("0/40", wal2json("U", columns=[("id", 3), ("title", "key only")], identity=[("id", 3)])),
        ("0/50", wal2json("T")),
    ], "lsn string, data string")

    envelopes = changes_to_envelopes(peek, schema, table="s.Docs")

    image = "struct<id: int, title: string, body: string>"
    assert_df_equality(
        envelopes.select("op", "after", "source.lsn", "unavailable_columns"),
        spark.createDataFrame([
            ("c", (1, "draft", body), 0x10, []),
            ("u", (1, "final", body), 0x20, []),
            ("u", (2, None, None), 0x30, []),
            ("u", (3, "key only", None), 0x40, ["body"]),
            ("t", None, 0x50, []),
        ], f"op string, after {image}, lsn bigint, unavailable_columns array<string>"),
        ignore_nullable=True,
    )
    path = str(tmp_path / "docs")
    apply = CdcApply(spark, path).keys("id")
    for lsn in (0x10, 0x20):
        feed = envelopes.where(f"source.lsn = {lsn}").drop("unavailable_columns")
        valid, _ = split_rejected(feed.transform(flatten_changes(["id"])))
        apply.execute(valid.drop("_record"))
    assert read_delta(spark, path).select("id", "title", "body").collect() == [(1, "final", body)]
