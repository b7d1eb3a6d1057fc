"""Column -> Column functions of etl.transforms.functions, on tiny inline frames."""

from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from etl.transforms.functions import (
    add_minutes,
    hhmm_to_minutes,
    local_clock_to_utc,
    null_if_in,
    safe_ratio,
    values_where,
)

NEW_YORK = "America/New_York"


def utc(*args: int) -> dt.datetime:
    """An aware UTC datetime, so the frames do not depend on the machine's time zone."""
    return dt.datetime(*args, tzinfo=dt.UTC)


def test_null_if_in_nulls_listed_values_and_trims_the_rest(spark):
    df = spark.createDataFrame(
        [(1, "NA"), (2, " NA "), (3, ""), (4, "   "), (5, None), (6, " x "), (7, "na")],
        "id int, raw string",
    )

    actual = df.select("id", null_if_in("raw", ["NA", ""]).alias("value"))

    expected = spark.createDataFrame(
        [(1, None), (2, None), (3, None), (4, None), (5, None), (6, "x"), (7, "na")],
        "id int, value string",
    )
    assert_df_equality(actual, expected)


def test_null_if_in_without_values_only_trims(spark):
    df = spark.createDataFrame([(1, " NA "), (2, None)], "id int, raw string")

    actual = df.select("id", null_if_in(F.col("raw"), []).alias("value"))

    expected = spark.createDataFrame([(1, "NA"), (2, None)], "id int, value string")
    assert_df_equality(actual, expected)


def test_hhmm_to_minutes(spark):
    df = spark.createDataFrame(
        [(517, 317), (2400, 1440), (0, 0), (59, 59), (1230, 750), (None, None)],
        "hhmm int, minutes int",
    )

    actual = df.select("hhmm", hhmm_to_minutes("hhmm").alias("minutes"))

    assert_df_equality(actual, df)


def test_local_clock_to_utc_follows_new_york_standard_and_daylight_time(spark):
    df = spark.createDataFrame(
        [
            (1, dt.date(2013, 1, 1), 317),  # EST, UTC-5
            (2, dt.date(2013, 7, 1), 317),  # EDT, UTC-4
            (3, dt.date(2013, 3, 10), 317),  # first day of EDT (after 02:00)
            (4, dt.date(2013, 11, 3), 317),  # first day of EST again (after 02:00)
            (5, dt.date(2013, 1, 1), 1440),  # 2400: midnight at the end of the day
            (6, dt.date(2013, 1, 1), None),
            (7, None, 317),
        ],
        "id int, day date, minutes int",
    )

    actual = df.select("id", local_clock_to_utc("day", "minutes", NEW_YORK).alias("utc"))

    expected = spark.createDataFrame(
        [
            (1, utc(2013, 1, 1, 10, 17)),
            (2, utc(2013, 7, 1, 9, 17)),
            (3, utc(2013, 3, 10, 9, 17)),
            (4, utc(2013, 11, 3, 10, 17)),
            (5, utc(2013, 1, 2, 5, 0)),
            (6, None),
            (7, None),
        ],
        "id int, utc timestamp",
    )
    assert_df_equality(actual, expected)


@pytest.fixture()
def session_time_zone(spark):
    """Run a test with another session time zone, then restore the previous one."""
    key = "spark.sql.session.timeZone"
    previous = spark.conf.get(key)
    spark.conf.set(key, "Asia/Tokyo")
    yield
    spark.conf.set(key, previous)


def test_local_clock_to_utc_does_not_depend_on_the_session_time_zone(spark, session_time_zone):
    """The result is an instant; compare it as epoch seconds, which no time zone can shift.

    2013-01-01 05:17 in New York is 2013-01-01 10:17 UTC = 1357035420 s after the epoch."""
    df = spark.createDataFrame([(dt.date(2013, 1, 1), 317)], "day date, minutes int")

    actual = df.select(
        F.unix_seconds(local_clock_to_utc("day", "minutes", NEW_YORK)).alias("epoch")
    )

    assert actual.collect()[0]["epoch"] == int(utc(2013, 1, 1, 10, 17).timestamp())


def test_add_minutes(spark):
    df = spark.createDataFrame(
        [
            (1, utc(2013, 1, 1, 10, 15), 2),
            (2, utc(2013, 1, 1, 10, 15), -15),
            (3, utc(2013, 1, 1, 23, 50), 25),
            (4, utc(2013, 1, 1, 10, 15), None),
            (5, None, 5),
        ],
        "id int, ts timestamp, minutes int",
    )

    actual = df.select("id", add_minutes("ts", F.col("minutes")).alias("ts"))

    expected = spark.createDataFrame(
        [
            (1, utc(2013, 1, 1, 10, 17)),
            (2, utc(2013, 1, 1, 10, 0)),
            (3, utc(2013, 1, 2, 0, 15)),
            (4, None),
            (5, None),
        ],
        "id int, ts timestamp",
    )
    assert_df_equality(actual, expected)


def test_add_minutes_casts_string_minutes_to_int(spark):
    df = spark.createDataFrame([(utc(2013, 1, 1, 10, 0), "30")], "ts timestamp, minutes string")

    actual = df.select(add_minutes("ts", "minutes").alias("ts"))

    expected = spark.createDataFrame([(utc(2013, 1, 1, 10, 30),)], "ts timestamp")
    assert_df_equality(actual, expected)


def test_safe_ratio_is_null_for_zero_or_null_denominators(spark):
    df = spark.createDataFrame(
        [(1, 3, 4), (2, 1, 0), (3, 1, None), (4, None, 2), (5, 0, 5), (6, 0, 0), (7, -1, 8)],
        "id int, num int, den int",
    )

    actual = df.select("id", safe_ratio("num", "den").alias("ratio"))

    expected = spark.createDataFrame(
        [(1, 0.75), (2, None), (3, None), (4, None), (5, 0.0), (6, None), (7, -0.125)],
        "id int, ratio double",
    )
    assert_df_equality(actual, expected)


def test_values_where_keeps_in_order_the_values_whose_condition_holds(spark):
    df = spark.createDataFrame(
        [(1, 5, "x"), (2, -1, "x"), (3, None, "x"), (4, -1, None)], "id int, n int, tag string"
    )
    checks = [
        (F.col("n") < 0, F.lit("negative")),
        (F.col("n").isNull(), F.lit("missing")),
        (F.lit(True), F.col("tag")),  # a null value is left out, like a condition that fails
    ]
    got = df.select("id", values_where(checks).alias("found"))
    expected = spark.createDataFrame(
        [(1, ["x"]), (2, ["negative", "x"]), (3, ["missing", "x"]), (4, ["negative"])],
        "id int, found array<string>",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    assert df.select(values_where([]).alias("found")).first()["found"] == []
