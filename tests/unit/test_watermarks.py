"""etl.watermarks: typed values, and the Delta table of watermarks (advance, read, reset)."""

from __future__ import annotations

import datetime as dt

import pytest

from etl.errors import StateError
from etl.watermarks import Watermark, WatermarkStore, format_value, parse_value


@pytest.mark.parametrize(
    ("text", "value"),
    [("42", 42), ("2026-01-02", dt.date(2026, 1, 2)),
     ("2026-01-02 03:04:05", dt.datetime(2026, 1, 2, 3, 4, 5)),
     ("2026-01-02 03:04:05.250000", dt.datetime(2026, 1, 2, 3, 4, 5, 250000))],
)
def test_values_round_trip_through_text(text, value):
    assert parse_value(text) == value
    assert format_value(value) == text


def test_a_value_that_is_none_of_the_kinds_is_named():
    with pytest.raises(StateError) as info:
        parse_value("yesterday")
    assert str(info.value) == ("cannot read 'yesterday' as an integer, a date (YYYY-MM-DD) or a "
                               "timestamp (YYYY-MM-DD HH:MM:SS)")


def test_advance_get_and_reset(spark, tmp_path):
    store = WatermarkStore(spark, str(tmp_path / "_etl" / "state" / "watermarks"))
    assert store.all("shop") == []

    store.advance("shop", {"orders": ("updated_at", dt.datetime(2026, 1, 1, 10)),
                           "items": ("id", 7)}, "r1")
    store.advance("shop", {"orders": ("updated_at", dt.datetime(2026, 1, 2, 10))}, "r2")
    store.advance("other", {"orders": ("id", 1)}, "r3")

    marks = [(w.source, w.column, w.value, w.run_id) for w in store.all("shop")]
    assert marks == [("items", "id", 7, "r1"),
                     ("orders", "updated_at", dt.datetime(2026, 1, 2, 10), "r2")]
    assert store.get("shop", "items") == Watermark(
        job="shop", source="items", column="id", value=7, run_id="r1",
        updated_at=store.get("shop", "items").updated_at)
    assert (store.reset("shop", "orders"), [w.source for w in store.all("shop")]) == (1, ["items"])
    assert (store.reset("shop"), store.all("shop")) == (1, [])
    assert [w.value for w in store.all("other")] == [1]
