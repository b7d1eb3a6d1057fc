"""The flights job's typing (declared in conf/jobs/flights.yml, done by the flow) and its
transforms (jobs/flights.py) on a handful of bronze-like rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from chispa import assert_df_equality

from etl.config import load_job_config
from etl.flow.build import source_typing
from etl.transforms.cleaning import split_rejected
from jobs.flights import SILVER_COLUMNS, carrier_daily_performance, enrich, flight_times

CONFIG = load_job_config("flights", directory=Path(__file__).resolve().parents[2] / "conf")
FLIGHT_COLUMNS = [
    "year", "month", "day", "dep_time", "sched_dep_time", "dep_delay", "arr_time",
    "sched_arr_time", "arr_delay", "carrier", "flight", "tailnum", "origin", "dest", "air_time",
    "distance", "hour", "minute", "time_hour",
]
METADATA = (
    "_corrupt_record string, _source_file string, _source_modified timestamp, _run_id string, "
    "_ingested_at timestamp"
)
BRONZE = ", ".join(f"{c} string" for c in FLIGHT_COLUMNS) + ", " + METADATA
MODIFIED = dt.datetime(2013, 2, 1, tzinfo=dt.UTC)
INGESTED = dt.datetime(2013, 2, 2, tzinfo=dt.UTC)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def bronze(spark, *lines: str):
    """Bronze rows as the CSV reader lands them: one string per field; a line with too few
    fields has its missing fields null and its raw text in ``_corrupt_record``."""
    rows = []
    for line in lines:
        fields = line.split(",")
        corrupt = None if len(fields) == len(FLIGHT_COLUMNS) else line
        fields += [None] * (len(FLIGHT_COLUMNS) - len(fields))
        rows.append((*fields, corrupt, "landing/flights/f.csv", MODIFIED, "run-1", INGESTED))
    return spark.createDataFrame(rows, BRONZE)


def type_flights(df):
    """Landed flights typed as the flow types them: the source's ``types``, ``required`` and
    ``na_values``, then its ``derive`` function."""
    source = CONFIG.source("flights")
    return df.transform(source_typing(source, has_corrupt=True)).transform(flight_times)


def type_reference(name: str):
    """A reference source's landed rows typed as the flow types them, as its typed columns
    plus the reasons."""
    source = CONFIG.source(name)

    def transform(df):
        typed = df.transform(source_typing(source, has_corrupt="_corrupt_record" in df.columns))
        return typed.select(*source.types, "_errors")

    return transform


def reference(spark, header: str, *lines: str):
    """A bronze reference table: every column a string, as landed."""
    schema = ", ".join(f"{c} string" for c in header.split(","))
    return spark.createDataFrame([tuple(line.split(",")) for line in lines], schema)


ON_TIME = "2013,1,1,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,5,15,2013-01-01T10:00:00Z"
SUMMER = "2013,7,1,600,515,45,900,819,41,UA,1546,N14228,EWR,IAH,227,1400,5,15,2013-07-01T09:00:00Z"
CANCELLED = (
    "2013,1,1,NA,1930,NA,NA,2140,NA,AA,101,N3DUAA,JFK,LAX,NA,2475,19,30,2013-01-02T00:00:00Z"
)
NO_CARRIER = "2013,1,2,700,700,0,1000,1000,0,NA,300,N1,LGA,ORD,120,733,7,0,2013-01-02T12:00:00Z"
BAD_DELAY = (
    "2013,1,4,520,515,x1,830,819,11,UA,1547,N14228,EWR,IAH,227,1400,5,15,2013-01-04T10:00:00Z"
)
MALFORMED = "2013,1,3,800"


# --------------------------------------------------------------------------------------------
# type_flights
# --------------------------------------------------------------------------------------------


def test_type_flights_adds_dates_timestamps_cancelled_and_reasons(spark):
    df = bronze(spark, ON_TIME, SUMMER, CANCELLED, NO_CARRIER, BAD_DELAY, MALFORMED)

    typed = df.transform(type_flights)

    assert typed.columns == [
        *FLIGHT_COLUMNS, "_corrupt_record", "_source_file", "_source_modified", "_run_id",
        "_ingested_at", "_errors", "flight_date", "sched_dep_ts", "dep_ts", "cancelled",
    ]
    actual = typed.select(
        "carrier", "flight", "time_hour", "dep_time", "dep_delay", "flight_date",
        "sched_dep_ts", "dep_ts", "cancelled", "_errors",
    )
    expected = spark.createDataFrame(
        [
            ("UA", 1545, utc(2013, 1, 1, 10), 517, 2, dt.date(2013, 1, 1),
             utc(2013, 1, 1, 10, 15), utc(2013, 1, 1, 10, 17), False, []),
            # New York is on daylight time in July: 05:15 local is 09:15 UTC
            ("UA", 1546, utc(2013, 7, 1, 9), 600, 45, dt.date(2013, 7, 1),
             utc(2013, 7, 1, 9, 15), utc(2013, 7, 1, 10, 0), False, []),
            # 19:30 local on Jan 1 is 00:30 UTC on Jan 2; the flight date stays the local one
            ("AA", 101, utc(2013, 1, 2, 0), None, None, dt.date(2013, 1, 1),
             utc(2013, 1, 2, 0, 30), None, True, []),
            (None, 300, utc(2013, 1, 2, 12), 700, 0, dt.date(2013, 1, 2),
             utc(2013, 1, 2, 12, 0), utc(2013, 1, 2, 12, 0), False,
             ["carrier: required value missing"]),
            ("UA", 1547, utc(2013, 1, 4, 10), 520, None, dt.date(2013, 1, 4),
             utc(2013, 1, 4, 10, 15), None, False, ["dep_delay: cannot parse 'x1' as int"]),
            (None, None, None, 800, None, dt.date(2013, 1, 3), None, None, False, [
                "malformed record: wrong number of fields",
                "carrier: required value missing",
                "flight: required value missing",
                "time_hour: required value missing",
                "origin: required value missing",
            ]),
        ],
        "carrier string, flight int, time_hour timestamp, dep_time int, dep_delay int, "
        "flight_date date, sched_dep_ts timestamp, dep_ts timestamp, cancelled boolean not null, "
        "_errors array<string> not null",
    )
    assert_df_equality(actual, expected)


def test_type_flights_keeps_the_raw_record_of_a_malformed_line(spark):
    typed = bronze(spark, MALFORMED).transform(type_flights)

    assert [tuple(r) for r in typed.select("_corrupt_record", "year", "origin").collect()] == [
        ("2013,1,3,800", 2013, None)
    ]


def test_split_of_typed_flights_passes_only_rows_without_reasons(spark):
    typed = bronze(spark, ON_TIME, CANCELLED, NO_CARRIER, MALFORMED).transform(type_flights)

    valid, rejected = split_rejected(typed)

    assert sorted(r["flight"] for r in valid.select("flight").collect()) == [101, 1545]
    assert "_errors" not in valid.columns
    assert rejected.count() == 2


# --------------------------------------------------------------------------------------------
# reference tables and enrich_flights
# --------------------------------------------------------------------------------------------


def references(spark):
    airlines = reference(
        spark, "carrier,name",
        "UA,United Air Lines Inc.", "AA,American Airlines Inc.", "DL,Delta Air Lines Inc.",
    ).transform(type_reference("airlines"))
    airports = reference(
        spark, "faa,name,lat,lon,alt,tz,dst,tzone",
        "EWR,Newark Liberty Intl,40.6925,-74.168667,18,-5,A,America/New_York",
        "IAH,George Bush Intercontinental,29.984433,-95.341442,97,-6,A,America/Chicago",
        "JFK,John F Kennedy Intl,40.639751,-73.778925,13,-5,A,America/New_York",
    ).transform(type_reference("airports"))
    planes = reference(
        spark, "tailnum,year,type,manufacturer,model,engines,seats,speed,engine",
        "N14228,1999,Fixed wing multi engine,BOEING,737-824,2,149,NA,Turbo-fan",
        "N24211,1998,Fixed wing multi engine,BOEING,737-824,2,149,NA,Turbo-fan",
    ).transform(type_reference("planes"))
    weather = reference(
        spark,
        "origin,year,month,day,hour,temp,dewp,humid,wind_dir,wind_speed,wind_gust,precip,"
        "pressure,visib,time_hour",
        "EWR,2013,1,1,5,39.02,28.04,64.43,260,12.65858,NA,0,1011.9,10,2013-01-01T10:00:00Z",
        "EWR,2013,1,1,6,37.94,28.04,67.21,240,11.5078,NA,0,1012.4,10,2013-01-01T11:00:00Z",
    ).transform(type_reference("weather"))
    return [split_rejected(frame)[0] for frame in (airlines, airports, planes, weather)]


def test_type_reference_tables_type_values_and_require_their_keys(spark):
    planes = reference(
        spark, "tailnum,year,type,manufacturer,model,engines,seats,speed,engine,extra",
        "N14228,1999,Fixed wing multi engine,BOEING,737-824,2,149,NA,Turbo-fan,x",
        "NA,20x0,Fixed wing multi engine,BOEING,737-824,2,149,NA,Turbo-fan,y",
    )

    actual = planes.transform(type_reference("planes"))

    expected = spark.createDataFrame(
        [
            ("N14228", 1999, "Fixed wing multi engine", "BOEING", "737-824", 2, 149, None,
             "Turbo-fan", []),
            (None, None, "Fixed wing multi engine", "BOEING", "737-824", 2, 149, None,
             "Turbo-fan",
             ["year: cannot parse '20x0' as int", "tailnum: required value missing"]),
        ],
        "tailnum string, year int, type string, manufacturer string, model string, "
        "engines int, seats int, speed int, engine string, _errors array<string> not null",
    )
    assert_df_equality(actual, expected)


def test_enrich_flights_left_joins_references_without_dropping_or_repeating_flights(spark):
    unknown_dest_and_plane = (
        "2013,1,1,1930,1930,0,2200,2140,20,AA,101,N999ZZ,JFK,XNA,NA,2475,19,30,"
        "2013-01-02T00:00:00Z"
    )
    flights, rejected = split_rejected(
        bronze(spark, ON_TIME, unknown_dest_and_plane).transform(type_flights)
    )
    assert rejected.count() == 0

    enriched = enrich(flights, *references(spark))

    assert enriched.columns == list(SILVER_COLUMNS)
    assert enriched.count() == 2
    actual = enriched.select(
        "carrier", "flight", "origin", "dest", "tailnum", "carrier_name", "origin_name",
        "dest_name", "plane_manufacturer", "plane_model", "plane_year", "temp", "dewp", "humid",
        "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib",
    )
    expected = spark.createDataFrame(
        [
            ("UA", 1545, "EWR", "IAH", "N14228", "United Air Lines Inc.", "Newark Liberty Intl",
             "George Bush Intercontinental", "BOEING", "737-824", 1999,
             39.02, 28.04, 64.43, 260, 12.65858, None, 0.0, 1011.9, 10.0),
            ("AA", 101, "JFK", "XNA", "N999ZZ", "American Airlines Inc.", "John F Kennedy Intl",
             None, None, None, None,
             None, None, None, None, None, None, None, None, None),
        ],
        "carrier string, flight int, origin string, dest string, tailnum string, "
        "carrier_name string, origin_name string, dest_name string, plane_manufacturer string, "
        "plane_model string, plane_year int, temp double, dewp double, humid double, "
        "wind_dir int, wind_speed double, wind_gust double, precip double, pressure double, "
        "visib double",
    )
    assert_df_equality(actual, expected, ignore_row_order=True)


# --------------------------------------------------------------------------------------------
# carrier_daily_performance
# --------------------------------------------------------------------------------------------


def test_carrier_daily_performance(spark):
    jan1, jan2 = dt.date(2013, 1, 1), dt.date(2013, 1, 2)
    flights = spark.createDataFrame(
        [
            # UA at EWR on Jan 1: 4 arrivals (2 within 15 minutes) and 1 cancellation
            (jan1, "UA", "EWR", False, 0, -5),
            (jan1, "UA", "EWR", False, 10, 15),
            (jan1, "UA", "EWR", False, 20, 16),
            (jan1, "UA", "EWR", False, 30, 30),
            (jan1, "UA", "EWR", True, None, None),
            # UA at LGA on Jan 1: departed, no arrival delay (diverted): no on-time share
            (jan1, "UA", "LGA", False, 12, None),
            # AA at EWR on Jan 1: one late arrival: share 0, not null
            (jan1, "AA", "EWR", False, 40, 16),
            # UA at EWR on Jan 2: cancelled only
            (jan2, "UA", "EWR", True, None, None),
        ],
        "flight_date date, carrier string, origin string, cancelled boolean, dep_delay int, "
        "arr_delay int",
    )

    actual = carrier_daily_performance(flights)

    expected = spark.createDataFrame(
        [
            (jan1, "UA", "EWR", 5, 1, 15.0, 14.0, 0.5),
            (jan1, "UA", "LGA", 1, 0, 12.0, None, None),
            (jan1, "AA", "EWR", 1, 0, 40.0, 16.0, 0.0),
            (jan2, "UA", "EWR", 1, 1, None, None, None),
        ],
        "flight_date date, carrier string, origin string, flights bigint not null, "
        "cancelled bigint, avg_dep_delay double, avg_arr_delay double, on_time_share double",
    )
    assert_df_equality(actual, expected, ignore_row_order=True)
