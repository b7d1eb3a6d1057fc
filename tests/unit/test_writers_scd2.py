"""SCD type 2 history (etl.writers.scd2) across three batches: exact table after each batch."""

from __future__ import annotations

import datetime as dt

from chispa import assert_df_equality

from etl.tables import read_delta
from etl.writers.scd2 import Scd2Merge

BATCH = "id int, name string, city string, note string, updated_at timestamp"
HISTORY = BATCH + ", valid_from timestamp, valid_to timestamp, is_current boolean"


def t(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2024, 1, 1, hour, minute)


def test_scd2_history_across_three_batches(spark, tmp_path):
    path = str(tmp_path / "silver" / "customers")
    scd2 = (
        Scd2Merge(spark, path).keys("id").tracked("name", "city").effective_from("updated_at")
    )

    scd2.execute(spark.createDataFrame(
        [(1, "Ann", "Oslo", "n1", t(1)), (2, "Bob", "Rome", "n1", t(1))], BATCH
    ))
    second = scd2.execute(spark.createDataFrame([
        (1, "Ann", "Bergen", "n2", t(2)),  # tracked change: new version
        (2, "Bob", "Rome", "n2", t(2)),  # only an untracked column changed: no new version
        (3, "Cy", "Nice", "n1", t(2)),  # new key
    ], BATCH))
    third = scd2.execute(spark.createDataFrame([
        (1, "Ann", "Paris", "n3", t(1, 30)),  # late (older than the current version): ignored
        (2, "Bob", "Milan", "n1", t(3)),  # tracked change
        (2, "Bob", "Turin", "n0", t(2, 30)),  # an older row of the same key in the batch
        (3, "Cy", "Nice", "n1", t(3)),  # unchanged
    ], BATCH))

    assert (second.operation, second.rows_inserted, second.rows_updated) == ("MERGE", 2, 1)
    assert (third.operation, third.rows_inserted, third.rows_updated) == ("MERGE", 1, 1)
    assert_df_equality(
        read_delta(spark, path),
        spark.createDataFrame([
            (1, "Ann", "Oslo", "n1", t(1), t(1), t(2), False),
            (1, "Ann", "Bergen", "n2", t(2), t(2), None, True),
            (2, "Bob", "Rome", "n1", t(1), t(1), t(3), False),
            (2, "Bob", "Milan", "n1", t(3), t(3), None, True),
            (3, "Cy", "Nice", "n1", t(2), t(2), None, True),
        ], HISTORY),
        ignore_row_order=True,
        ignore_nullable=True,
    )
