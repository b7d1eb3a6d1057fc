"""Generic cleaning transforms of etl.transforms.cleaning: typing with reasons, required values,
malformed records, the valid/rejected split and de-duplication by key."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from chispa import assert_df_equality

from etl.transforms.cleaning import (
    cast_columns,
    latest_per_key,
    reject_malformed,
    reject_undecodable,
    require,
    split_rejected,
    type_columns,
)

NA = ["NA", ""]
#: ``_errors`` as the transforms build it: the array itself is never null.
ERRORS = "_errors array<string> not null"


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


# --------------------------------------------------------------------------------------------
# cast_columns
# --------------------------------------------------------------------------------------------

RAW = "id string, year string, dep_delay string, temp string, time_hour string, carrier string"
TYPES = {
    "year": "int",
    "dep_delay": "int",
    "temp": "double",
    "time_hour": "timestamp",
    "carrier": "string",
}


def test_cast_columns_types_good_values_and_trims_them(spark):
    df = spark.createDataFrame(
        [("a", " 2013 ", "-5", "39.02", "2013-01-01T10:00:00Z", " UA ")], RAW
    )

    actual = df.transform(cast_columns(TYPES, NA))

    expected = spark.createDataFrame(
        [("a", 2013, -5, 39.02, utc(2013, 1, 1, 10), "UA", [])],
        "id string, year int, dep_delay int, temp double, time_hour timestamp, carrier string, "
        + ERRORS,
    )
    assert_df_equality(actual, expected)


def test_cast_columns_turns_na_values_into_nulls_without_reasons(spark):
    df = spark.createDataFrame(
        [("a", "NA", "", "NA", " NA ", ""), ("b", None, None, None, None, None)], RAW
    )

    actual = df.transform(cast_columns(TYPES, NA))

    expected = spark.createDataFrame(
        [("a", None, None, None, None, None, []), ("b", None, None, None, None, None, [])],
        "id string, year int, dep_delay int, temp double, time_hour timestamp, carrier string, "
        + ERRORS,
    )
    assert_df_equality(actual, expected)


def test_cast_columns_nulls_a_bad_value_and_gives_the_reason(spark):
    df = spark.createDataFrame(
        [("a", "2013", "x1", "39.0", "2013-01-01T10:00:00Z", "UA")], RAW
    )

    actual = df.transform(cast_columns(TYPES, NA))

    expected = spark.createDataFrame(
        [("a", 2013, None, 39.0, utc(2013, 1, 1, 10), "UA",
          ["dep_delay: cannot parse 'x1' as int"])],
        "id string, year int, dep_delay int, temp double, time_hour timestamp, carrier string, "
        + ERRORS,
    )
    assert_df_equality(actual, expected)


def test_cast_columns_accumulates_every_reason_of_a_row_in_column_order(spark):
    df = spark.createDataFrame(
        [("a", "20x3", " x1 ", "warm", "soon", "AA"), ("b", "2013", "7", "1.5", "NA", "DL")], RAW
    )

    actual = df.transform(cast_columns(TYPES, NA))

    expected = spark.createDataFrame(
        [
            ("a", None, None, None, None, "AA", [
                "year: cannot parse '20x3' as int",
                "dep_delay: cannot parse 'x1' as int",
                "temp: cannot parse 'warm' as double",
                "time_hour: cannot parse 'soon' as timestamp",
            ]),
            ("b", 2013, 7, 1.5, None, "DL", []),
        ],
        "id string, year int, dep_delay int, temp double, time_hour timestamp, carrier string, "
        + ERRORS,
    )
    assert_df_equality(actual, expected)


def test_cast_columns_appends_to_existing_reasons(spark):
    df = spark.createDataFrame(
        [("a", None, "x1")], "id string, carrier string, dep_delay string"
    ).transform(require(["carrier"]))

    actual = df.transform(cast_columns({"dep_delay": "int"}, NA))

    expected = spark.createDataFrame(
        [("a", None, None,
          ["carrier: required value missing", "dep_delay: cannot parse 'x1' as int"])],
        "id string, carrier string, dep_delay int, " + ERRORS,
    )
    assert_df_equality(actual, expected)


def test_cast_columns_refuses_columns_the_frame_does_not_have(spark):
    df = spark.createDataFrame([("1",)], "year string")

    with pytest.raises(
        ValueError, match=re.escape("cast_columns: columns ['month'] not in ['year']")
    ):
        df.transform(cast_columns({"year": "int", "month": "int"}, NA))


# --------------------------------------------------------------------------------------------
# require, reject_malformed, split_rejected
# --------------------------------------------------------------------------------------------


def test_require_gives_one_reason_per_missing_value_in_the_given_order(spark):
    df = spark.createDataFrame(
        [(1, "UA", "EWR"), (2, None, "EWR"), (3, None, None)],
        "id int, carrier string, origin string",
    )

    actual = df.transform(require(["origin", "carrier"]))

    expected = spark.createDataFrame(
        [
            (1, "UA", "EWR", []),
            (2, None, "EWR", ["carrier: required value missing"]),
            (3, None, None, ["origin: required value missing", "carrier: required value missing"]),
        ],
        "id int, carrier string, origin string, " + ERRORS,
    )
    assert_df_equality(actual, expected)


def test_reject_malformed_gives_a_reason_where_the_reader_kept_the_raw_record(spark):
    df = spark.createDataFrame(
        [(1, "2013", None), (2, "2013", "2013,1")],
        "id int, year string, _corrupt_record string",
    )

    actual = df.transform(reject_malformed())

    expected = spark.createDataFrame(
        [
            (1, "2013", None, []),
            (2, "2013", "2013,1", ["malformed record: wrong number of fields"]),
        ],
        "id int, year string, _corrupt_record string, " + ERRORS,
    )
    assert_df_equality(actual, expected)


def test_reject_undecodable_names_each_column_holding_the_replacement_character(spark):
    df = spark.createDataFrame(
        [(1, "N14228", "EWR"), (2, "N\ufffd", "EWR"), (3, "N\ufffd", "J\ufffdK"), (4, None, None)],
        "id int, tailnum string, origin string",
    )

    actual = df.transform(reject_undecodable(["tailnum", "origin"]))

    bad = "{}: bytes not valid in the file's encoding"
    expected = spark.createDataFrame(
        [
            (1, "N14228", "EWR", []),
            (2, "N\ufffd", "EWR", [bad.format("tailnum")]),
            (3, "N\ufffd", "J\ufffdK", [bad.format("tailnum"), bad.format("origin")]),
            (4, None, None, []),
        ],
        "id int, tailnum string, origin string, " + ERRORS,
    )
    assert_df_equality(actual, expected, ignore_row_order=True)


def test_reject_malformed_reads_the_named_column(spark):
    df = spark.createDataFrame([(1, "x,y")], "id int, bad string")

    actual = df.transform(reject_malformed("bad"))

    expected = spark.createDataFrame(
        [(1, "x,y", ["malformed record: wrong number of fields"])],
        "id int, bad string, " + ERRORS,
    )
    assert_df_equality(actual, expected)


def test_reject_malformed_without_the_column_only_adds_empty_reasons(spark):
    df = spark.createDataFrame([(1,)], "id int")

    actual = df.transform(reject_malformed())

    expected = spark.createDataFrame([(1, [])], "id int, " + ERRORS)
    assert_df_equality(actual, expected)


def test_split_rejected_separates_rows_with_reasons_and_drops_errors_from_valid_rows(spark):
    df = spark.createDataFrame(
        [(1, []), (2, ["carrier: required value missing"]), (3, []), (4, ["a", "b"])],
        "id int, " + ERRORS,
    )

    valid, rejected = split_rejected(df)

    assert_df_equality(valid, spark.createDataFrame([(1,), (3,)], "id int"))
    assert_df_equality(
        rejected,
        spark.createDataFrame(
            [(2, ["carrier: required value missing"]), (4, ["a", "b"])], "id int, " + ERRORS
        ),
    )


def test_split_rejected_of_a_frame_without_errors_keeps_every_row(spark):
    df = spark.createDataFrame([(1,), (2,)], "id int")

    valid, rejected = split_rejected(df)

    assert_df_equality(valid, df)
    assert_df_equality(rejected, spark.createDataFrame([], "id int, " + ERRORS))


# --------------------------------------------------------------------------------------------
# latest_per_key
# --------------------------------------------------------------------------------------------

VERSIONS = "k string, seq int, v string"


def test_latest_per_key_keeps_the_greatest_row_by_order_by(spark):
    df = spark.createDataFrame(
        [
            ("a", 1, "a1"), ("a", 3, "a3"), ("a", 2, "a2"),
            ("b", None, "b-null"), ("b", 1, "b1"),  # a null sequence never wins
            ("c", None, "c-null"),
        ],
        VERSIONS,
    )

    actual = df.transform(latest_per_key(["k"], ["seq"]))

    expected = spark.createDataFrame(
        [("a", 3, "a3"), ("b", 1, "b1"), ("c", None, "c-null")], VERSIONS
    )
    assert_df_equality(actual, expected, ignore_row_order=True)


def test_latest_per_key_compares_order_by_columns_left_to_right(spark):
    schema = "k string, modified int, file string, v string"
    df = spark.createDataFrame(
        [("a", 1, "z.csv", "old"), ("a", 2, "a.csv", "new"), ("a", 2, "0.csv", "older")],
        schema,
    )

    actual = df.transform(latest_per_key(["k"], ["modified", "file"]))

    assert_df_equality(actual, spark.createDataFrame([("a", 2, "a.csv", "new")], schema))


def test_latest_per_key_breaks_ties_by_the_other_columns_whatever_the_input_order(spark):
    # the winning version of "a" arrives last, that of "b" first
    rows = [("a", 5, "x"), ("a", 5, None), ("a", 5, "y"), ("b", 1, "q"), ("b", 1, "p")]
    df = spark.createDataFrame(rows, VERSIONS).repartition(2)

    actual = df.transform(latest_per_key(["k"], ["seq"]))

    expected = spark.createDataFrame([("a", 5, "y"), ("b", 1, "q")], VERSIONS)
    assert_df_equality(actual, expected, ignore_row_order=True)


def test_latest_per_key_with_a_composite_key(spark):
    schema = "carrier string, flight int, seq int"
    df = spark.createDataFrame(
        [("UA", 1, 1), ("UA", 1, 2), ("UA", 2, 1), ("AA", 1, 7)], schema
    )

    actual = df.transform(latest_per_key(["carrier", "flight"], ["seq"]))

    expected = spark.createDataFrame([("UA", 1, 2), ("UA", 2, 1), ("AA", 1, 7)], schema)
    assert_df_equality(actual, expected, ignore_row_order=True)


def test_latest_per_key_counts_the_rows_of_each_key_when_asked(spark):
    df = spark.createDataFrame(
        [("a", 1, "a1"), ("a", 3, "a3"), ("a", 2, "a2"), ("b", 1, "b1")], VERSIONS
    )

    actual = df.transform(latest_per_key(["k"], ["seq"], count_as="n"))

    expected = spark.createDataFrame([("a", 3, "a3", 3), ("b", 1, "b1", 1)], VERSIONS + ", n long")
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_latest_per_key_refuses_a_count_column_that_exists(spark):
    df = spark.createDataFrame([("a", 1, "a1")], VERSIONS)

    with pytest.raises(ValueError) as info:
        df.transform(latest_per_key(["k"], ["seq"], count_as="v"))
    assert str(info.value) == "latest_per_key: count_as 'v' is already a column"


@pytest.mark.parametrize(
    ("keys", "order_by", "message"),
    [
        ([], ["seq"], "latest_per_key: keys must name at least one column"),
        (["k"], [], "latest_per_key: order_by must name at least one column"),
    ],
)
def test_latest_per_key_refuses_empty_arguments(keys, order_by, message):
    with pytest.raises(ValueError) as info:
        latest_per_key(keys, order_by)
    assert str(info.value) == message


def test_cast_columns_rejects_a_fraction_for_an_integer_column(spark):
    df = spark.createDataFrame([("a", "2013", "1.5", "39", None, "UA")], RAW)

    actual = df.transform(cast_columns(TYPES, NA))

    expected = spark.createDataFrame(
        [("a", 2013, None, 39.0, None, "UA", ["dep_delay: cannot parse '1.5' as int"])],
        "id string, year int, dep_delay int, temp double, time_hour timestamp, carrier string, "
        + ERRORS,
    )
    assert_df_equality(actual, expected)


def test_type_columns_takes_any_column_name_and_any_missing_value_text(spark):
    """Typing is Spark SQL text: names with dots, spaces and backquotes are columns, not paths,
    and missing-value texts with quotes and backslashes are compared as they are."""
    df = spark.createDataFrame(
        [("it's", " 7 ", "a\\b", "x"), (" 12 ", "n/a", "NA", None), ("1.5", "x`1", "3", "y")],
        "`dep.delay` string, `air time` string, `tail``num` string, name string")

    actual = df.transform(type_columns(
        {"dep.delay": "int", "air time": "int", "tail`num": "string"},
        required=["tail`num", "name"], na_values=["it's", "a\\b"]))

    expected = spark.createDataFrame(
        [(None, 7, None, "x", ["tail`num: required value missing"]),
         (12, None, "NA", None, ["air time: cannot parse 'n/a' as int",
                                 "name: required value missing"]),
         (None, None, "3", "y", ["dep.delay: cannot parse '1.5' as int",
                                 "air time: cannot parse 'x`1' as int"])],
        "`dep.delay` int, `air time` int, `tail``num` string, name string, " + ERRORS)
    assert_df_equality(actual, expected)
