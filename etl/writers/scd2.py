"""Slowly changing dimension type 2 on Delta: every change of a tracked column closes the current
version of a key and opens a new one, in one MERGE commit.

The table holds the batch's columns plus ``valid_from`` (the version's effective time, taken
from the ``effective_from`` column), ``valid_to`` (``null`` while current, else the next
version's ``valid_from``) and ``is_current``. Guarantees:

* a new version is written only when a tracked column differs (null-safely) from the current
  version; changes of other columns are not applied (the current version keeps its values);
* a row whose effective time is not later than the current version's ``valid_from`` (a late or
  replayed row) changes nothing, so re-running a batch leaves the same table;
* a batch holding several rows of one key keeps the latest by ``effective_from``;
* everything of `DeltaWrite` (idempotent commits, userMetadata, conflict retries).

Example::

    Scd2Merge(spark, "/wh/silver/customers").keys("customer_id").tracked("city", "segment") \
        .effective_from("updated_at").user_metadata(run_id).execute(batch)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from etl.context import WriteMetrics
from etl.errors import WriteError
from etl.tables import commit_metadata, read_delta, session_confs, table_exists
from etl.writers.delta import DeltaWrite, dedupe_keys, require_columns, txn_confs

_MERGE_KEY = "_etl_merge_key_"


@dataclass(frozen=True)
class Scd2Merge(DeltaWrite):
    """Type 2 history of a batch of current values, by key (see the module docstring)."""

    key_columns: tuple[str, ...] = ()
    tracked_columns: tuple[str, ...] = ()
    effective_column: str | None = None
    valid_from: str = "valid_from"
    valid_to: str = "valid_to"
    is_current: str = "is_current"

    def keys(self, *columns: str) -> Scd2Merge:
        return dataclasses.replace(self, key_columns=tuple(columns))

    def tracked(self, *columns: str) -> Scd2Merge:
        return dataclasses.replace(self, tracked_columns=tuple(columns))

    def effective_from(self, column: str) -> Scd2Merge:
        return dataclasses.replace(self, effective_column=column)

    def history_columns(self, valid_from: str, valid_to: str, is_current: str) -> Scd2Merge:
        return dataclasses.replace(
            self, valid_from=valid_from, valid_to=valid_to, is_current=is_current
        )

    def _validate(self, df: DataFrame) -> None:
        if not self.key_columns or not self.tracked_columns or self.effective_column is None:
            raise WriteError(f"{self.path}: SCD2 needs keys(), tracked() and effective_from()")
        require_columns(df, self.key_columns, "keys", self.path)
        require_columns(df, self.tracked_columns, "tracked", self.path)
        require_columns(df, [self.effective_column], "effective_from", self.path)
        clash = [c for c in (self.valid_from, self.valid_to, self.is_current) if c in df.columns]
        if clash:
            raise WriteError(f"{self.path}: the batch already has history columns {clash}")

    def execute(self, df: DataFrame) -> WriteMetrics:
        self._validate(df)
        skipped = self._skipped()
        if skipped is not None:
            return skipped
        assert self.effective_column is not None
        batch = dedupe_keys(df, self.key_columns, [self.effective_column], "latest", self.path)
        batch = batch.select(
            *df.columns,
            F.col(self.effective_column).cast("timestamp").alias(self.valid_from),
            F.lit(None).cast("timestamp").alias(self.valid_to),
            F.lit(True).alias(self.is_current),
        )
        with commit_metadata(self.spark, self.metadata):
            if not table_exists(self.spark, self.path):
                self._commit(lambda: self._save(batch, "append"))
            else:
                self._commit(lambda: self._merge(batch))
        return self._finish()

    def _changed(self, source: str, target: str) -> str:
        return " OR ".join(
            f"NOT ({source}.`{c}` <=> {target}.`{c}`)" for c in self.tracked_columns
        )

    def _merge(self, batch: DataFrame) -> None:
        current = read_delta(self.spark, self.path).where(F.col(self.is_current))
        joined = batch.alias("s").join(
            current.alias("t"), [F.col(f"s.`{k}`") == F.col(f"t.`{k}`") for k in self.key_columns],
            "left",
        )
        newer = f"s.`{self.valid_from}` > t.`{self.valid_from}`"
        # a changed row is staged twice: once to close the current version (matched by key),
        # once with a null merge key so that it is inserted as the new version
        opening = joined.where(f"({self._changed('s', 't')}) AND {newer}").select("s.*")
        keyed = [F.col(f"`{k}`").alias(f"{_MERGE_KEY}{k}") for k in self.key_columns]
        nulls = [F.lit(None).cast(batch.schema[k].dataType).alias(f"{_MERGE_KEY}{k}")
                 for k in self.key_columns]
        staged = batch.select("*", *keyed).unionByName(opening.select("*", *nulls))
        condition = " AND ".join(
            [f"t.`{self.is_current}`"] + [f"t.`{k}` = s.`{_MERGE_KEY}{k}`" for k in self.key_columns]
        )
        columns = [c for c in batch.columns]
        builder = (
            DeltaTable.forPath(self.spark, self.path).alias("t").merge(staged.alias("s"), condition)
            .whenMatchedUpdate(
                condition=f"({self._changed('s', 't')}) AND {newer}",
                set={self.is_current: "false", self.valid_to: f"s.`{self.valid_from}`"},
            )
            .whenNotMatchedInsert(values={f"`{c}`": f"s.`{c}`" for c in columns})
        )
        with session_confs(self.spark, txn_confs(self.txn)):
            builder.execute()


__all__ = ["Scd2Merge"]
