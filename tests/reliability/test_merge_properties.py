"""Scenarios 7 and 12: the MERGE writer against a plain-Python reference. Batches of inserts,
updates, deletes and exact duplicates, in random order (Hypothesis), must leave the table and
report the metrics the reference computes; a batch holding several versions of a key out of order
must end where feeding the versions one at a time, in order, ends."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass

from chispa import assert_df_equality
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl.tables import read_delta
from etl.writers.delta import DeltaMerge

SCHEMA = "id int, v string, seq int, op string, year int"
BASE = [(1, "base", 0, "U", 2014), (2, "base", 0, "U", 2013), (3, "base", 0, "U", 2014)]


def year_of(key: int) -> int:
    """Each key lives in one partition, as a flight's key fixes its date."""
    return 2013 + key % 2


@dataclass(frozen=True)
class Counts:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0


def reference_merge(table: dict[int, tuple], batch: list[tuple]) -> Counts:
    """What the writer promises, in plain Python: per key the batch row with the greatest
    ``seq`` wins; it replaces (or, op ``D``, deletes) a stored row only when its ``seq`` is
    greater; a key not stored is inserted unless the winner is a delete."""
    winners: dict[int, tuple] = {}
    for row in batch:
        if row[0] not in winners or row[2] > winners[row[0]][2]:
            winners[row[0]] = row
    counts = Counts()
    for key, row in winners.items():
        stored = table.get(key)
        if stored is None:
            if row[3] != "D":
                table[key] = row
                counts = Counts(counts.inserted + 1, counts.updated, counts.deleted)
        elif row[2] > stored[2]:
            if row[3] == "D":
                del table[key]
                counts = Counts(counts.inserted, counts.updated, counts.deleted + 1)
            else:
                table[key] = row
                counts = Counts(counts.inserted, counts.updated + 1, counts.deleted)
    return counts


def merge_writer(spark, path: str) -> DeltaMerge:
    return (
        DeltaMerge(spark, path).keys("id").sequence_by("seq").on_duplicates("latest")
        .deletes("op", ["D"]).partitioned_by("year")
    )


@st.composite
def feeds(draw) -> list[list[tuple]]:
    """1-3 batches of events on keys 1-6; every event has its own ``seq``, so the winner of a
    key is never a tie; some events are sent twice; each batch is shuffled."""
    events = draw(st.lists(st.tuples(st.integers(1, 6), st.sampled_from(["U", "D"])),
                           min_size=1, max_size=12))
    rows = [(key, f"v{seq}", seq, op, year_of(key)) for seq, (key, op) in enumerate(events, 1)]
    repeats = draw(st.lists(st.sampled_from(rows), max_size=3))
    cuts = sorted(draw(st.lists(st.integers(1, len(rows) + len(repeats)), max_size=2,
                                unique=True)))
    shuffled = draw(st.permutations(rows + repeats))
    bounds = [0, *cuts, len(shuffled)]
    return [shuffled[a:b] for a, b in itertools.pairwise(bounds) if shuffled[a:b]]


@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(feed=feeds())
def test_merge_equals_the_plain_python_reference(spark, tmp_path, feed):
    path = str(tmp_path / uuid.uuid4().hex)
    merge = merge_writer(spark, path)
    merge.execute(spark.createDataFrame(BASE, SCHEMA))
    expected = {row[0]: row for row in BASE}
    for batch in feed:
        counts = reference_merge(expected, batch)
        metrics = merge.execute(spark.createDataFrame(batch, SCHEMA))
        assert (metrics.rows_inserted, metrics.rows_updated, metrics.rows_deleted) == (
            counts.inserted, counts.updated, counts.deleted)
        # Delta commits no version for a MERGE that matched nothing and inserted nothing
        assert metrics.operation == "MERGE" or (metrics.operation, counts) == ("NOOP", Counts())
    assert_df_equality(read_delta(spark, path), spark.createDataFrame(list(expected.values()),
                       SCHEMA), ignore_row_order=True)


def test_duplicates_and_out_of_order_versions_end_like_the_ordered_feed(spark, tmp_path):
    versions = [(7, "created", 1, "U", 2014), (7, "renamed", 2, "U", 2014),
                (7, "gone", 3, "D", 2014), (8, "created", 4, "U", 2013),
                (8, "renamed", 5, "U", 2013)]
    batch = [versions[4], versions[2], versions[0], versions[4], versions[1], versions[3]]
    one_batch, ordered = str(tmp_path / "one_batch"), str(tmp_path / "ordered")
    merge_writer(spark, one_batch).execute(spark.createDataFrame(BASE, SCHEMA))
    merge_writer(spark, ordered).execute(spark.createDataFrame(BASE, SCHEMA))

    metrics = merge_writer(spark, one_batch).execute(spark.createDataFrame(batch, SCHEMA))
    for version in versions:
        merge_writer(spark, ordered).execute(spark.createDataFrame([version], SCHEMA))

    assert (metrics.rows_inserted, metrics.rows_updated, metrics.rows_deleted) == (1, 0, 0)
    expected = spark.createDataFrame([*BASE, versions[4]], SCHEMA)
    assert_df_equality(read_delta(spark, one_batch), expected, ignore_row_order=True)
    assert_df_equality(read_delta(spark, ordered), expected, ignore_row_order=True)
