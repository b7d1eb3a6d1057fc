"""An upstream Delta table's Change Data Feed as an incremental source.

`read_change_feed` returns the table's changes after the last processed version as change
events in the Debezium envelope (see `etl.transforms.cdc`), ready for ``flatten_changes`` and
`etl.writers.cdc.CdcApply`:

* first run (no stored version): the table as of its latest version, as snapshot events
  (``op = 'r'``, position = that version), so a table whose feed was enabled late is read whole;
* later runs: ``readChangeFeed`` from the stored version + 1 to the latest version (fixed when
  the read starts, so a commit made meanwhile waits for the next run): inserts become ``c``,
  update post-images ``u``, deletes ``d`` (pre-images are dropped); the position is the commit
  version and ``ts_ms`` its timestamp;
* nothing new (the latest version is the stored one): ``extract.end`` is ``None`` and the frame
  is empty, so there is nothing to apply and nothing to store.

The job stores ``extract.end`` in the watermarks (`etl.watermarks.WatermarkStore.advance`, column
``_commit_version``) only after its target has committed, so a failed run reads the same
versions again and the MERGE by sequence makes that harmless.

Example::

    stored = store.get("customers_sync", "customers")
    extract = read_change_feed(spark, warehouse.table("silver", "customers"),
                               source_name="customers", last_version=stored.value if stored else None)
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from etl.errors import SourceError, jvm_error_text
from etl.tables import latest_version, table_exists

VERSION_COLUMN = "_commit_version"
_CDF_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")
_OPS = {"insert": "c", "update_postimage": "u", "delete": "d"}


@dataclass(frozen=True)
class CdfExtract:
    """Changes of versions ``start``..``end`` (both ``None`` when there was nothing new) as
    envelopes in ``df``; ``snapshot`` when it is the first read of the table."""

    source: str
    df: DataFrame
    start: int | None
    end: int | None
    snapshot: bool


def _envelope(rows: DataFrame, data_columns: list[str], op: F.Column, version: F.Column,
              ts: F.Column) -> DataFrame:
    image = F.struct(*(F.col(f"`{c}`") for c in data_columns))
    deleted = op == "d"
    return rows.select(
        op.alias("op"),
        F.when(deleted, image).alias("before"),
        F.when(~deleted, image).alias("after"),
        F.unix_millis(ts).alias("ts_ms"),
        F.struct(version.cast("long").alias("lsn")).alias("source"),
    )


def read_change_feed(
    spark: SparkSession, path: str, *, source_name: str, last_version: int | None
) -> CdfExtract:
    """The changes of the Delta table at ``path`` after ``last_version`` (see the module
    docstring). Failures raise `SourceError` naming the source and the table."""
    if last_version is not None and (isinstance(last_version, bool) or last_version < 0):
        raise SourceError(f"source {source_name}: last_version must be >= 0, got {last_version!r}")
    try:
        if not table_exists(spark, path):
            raise SourceError(f"source {source_name}: {path} is not a Delta table")
        end = latest_version(spark, path)
        if last_version is not None and end <= last_version:
            empty = spark.read.format("delta").load(path).limit(0)
            columns = empty.columns
            return CdfExtract(source=source_name, start=None, end=None, snapshot=False,
                              df=_envelope(empty, columns, F.lit("r"), F.lit(0),
                                           F.current_timestamp()))
        if last_version is None:
            table = spark.read.format("delta").option("versionAsOf", end).load(path)
            commit = (spark.sql(f"DESCRIBE HISTORY delta.`{path}`")
                      .where(F.col("version") == end).first())
            assert commit is not None
            df = _envelope(table, table.columns, F.lit("r"), F.lit(end),
                           F.lit(commit["timestamp"]))
            return CdfExtract(source=source_name, df=df, start=end, end=end, snapshot=True)
        feed = (
            spark.read.format("delta").option("readChangeFeed", "true")
            .option("startingVersion", last_version + 1).option("endingVersion", end).load(path)
        )
        data = [c for c in feed.columns if c not in _CDF_COLUMNS]
        op = F.coalesce(*(F.when(F.col("_change_type") == k, F.lit(v)) for k, v in _OPS.items()))
        df = _envelope(feed.where(F.col("_change_type") != "update_preimage"), data, op,
                       F.col("_commit_version"), F.col("_commit_timestamp"))
        return CdfExtract(source=source_name, df=df, start=last_version + 1, end=end,
                          snapshot=False)
    except SourceError:
        raise
    except Exception as exc:
        raise SourceError(
            f"source {source_name}: reading the change feed of {path} failed: "
            f"{jvm_error_text(exc)}"
        ) from None


__all__ = ["VERSION_COLUMN", "CdfExtract", "read_change_feed"]
