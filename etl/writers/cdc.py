"""Apply flattened change events (`etl.transforms.cdc.flatten_changes`) to a Delta table.

`CdcApply` is a builder like the other Delta writers; ``execute(changes)`` commits the batch's
events to the target in one MERGE and returns its metrics. Guarantees, for both outputs:

* events of a key are applied in ``_cdc_seq`` order (log position, then time); the applied
  sequence is stored in the ``_cdc_seq`` column and a stored row changes only for an event with
  a greater sequence, so shuffled, duplicated, replayed or late (older, in a later batch) events
  never overwrite newer state: any order and any repetition of the same events gives the same
  table;
* ``output("scd1")`` (default) keeps one row per key, the latest image, with ``_cdc_op``.
  ``deletes("hard")`` removes the row; with ``tombstones(path)`` the delete's key and sequence
  are also kept in a small Delta table there, so an older event arriving after the delete does
  not bring the row back (without it, it would). ``deletes("soft")`` keeps the row's last image
  with ``_deleted = true`` and ``_deleted_at`` (the delete's time); a later insert revives it;
* ``output("scd2")`` keeps every version: one row per (key, event) with ``valid_from`` (the
  event's time), ``valid_to`` (the next event's time, ``null`` while current) and
  ``is_current``. A delete closes the current version and is stored as a row of its own with
  ``_cdc_op = 'd'``, ``valid_from = valid_to`` (an empty interval) and ``is_current = false``,
  so the history can be recomputed exactly when a late event arrives: the versions of the keys
  in a batch are re-derived from the stored and the new events together.

Example::

    metrics = (CdcApply(spark, "/wh/silver/customers").keys("id").deletes("soft")
               .user_metadata(run_id).execute(changes))
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from etl.context import WriteMetrics
from etl.errors import WriteError
from etl.tables import commit_metadata, read_delta, session_confs, table_exists
from etl.transforms.cdc import OP, SEQ, TS
from etl.writers.delta import (
    DeltaMerge,
    DeltaWrite,
    check_choice,
    dedupe_keys,
    require_columns,
    txn_confs,
)

DeleteMode = Literal["hard", "soft"]
CdcOutput = Literal["scd1", "scd2"]
DELETE_MODES: tuple[DeleteMode, ...] = ("hard", "soft")
OUTPUTS: tuple[CdcOutput, ...] = ("scd1", "scd2")
DELETED, DELETED_AT = "_deleted", "_deleted_at"
VALID_FROM, VALID_TO, IS_CURRENT = "valid_from", "valid_to", "is_current"


@dataclass(frozen=True)
class CdcApply(DeltaWrite):
    """Apply a batch of flattened change events by key (see the module docstring)."""

    key_columns: tuple[str, ...] = ()
    delete_mode: DeleteMode = "hard"
    output_kind: CdcOutput = "scd1"
    tombstone_path: str | None = None

    def keys(self, *columns: str) -> CdcApply:
        return dataclasses.replace(self, key_columns=tuple(columns))

    def deletes(self, mode: DeleteMode) -> CdcApply:
        check_choice(mode, DELETE_MODES, "deletes", self.path)
        return dataclasses.replace(self, delete_mode=mode)

    def output(self, kind: CdcOutput) -> CdcApply:
        check_choice(kind, OUTPUTS, "output", self.path)
        return dataclasses.replace(self, output_kind=kind)

    def tombstones(self, path: str | None) -> CdcApply:
        return dataclasses.replace(self, tombstone_path=path)

    def _validate(self, df: DataFrame) -> None:
        if not self.key_columns:
            raise WriteError(f"{self.path}: keys() must name at least one column")
        require_columns(df, self.key_columns, "keys", self.path)
        require_columns(df, [OP, SEQ, TS], "change columns", self.path)
        reserved = [c for c in (DELETED, DELETED_AT, VALID_FROM, VALID_TO, IS_CURRENT)
                    if c in df.columns]
        if reserved:
            raise WriteError(f"{self.path}: the changes already have output columns {reserved}")
        if self.tombstone_path and (self.output_kind, self.delete_mode) != ("scd1", "hard"):
            raise WriteError(f"{self.path}: tombstones() is for output scd1 with hard deletes")

    def execute(self, changes: DataFrame) -> WriteMetrics:
        self._validate(changes)
        if self.output_kind == "scd2":
            return self._scd2(changes)
        return self._scd1(changes)

    # -- SCD type 1 ------------------------------------------------------------------------

    def _merge_writer(self, path: str) -> DeltaMerge:
        return DeltaMerge(
            self.spark, path, metadata=self.metadata, txn=self.txn, policy=self.policy,
            max_retries=self.max_retries,
            table_properties=self.table_properties if path == self.path else (),
            catalog_name=self.catalog_name if path == self.path else None,
        ).keys(*self.key_columns).sequence_by(SEQ).on_duplicates("latest")

    def _scd1(self, changes: DataFrame) -> WriteMetrics:
        rows = changes.drop(TS)
        if self.delete_mode == "soft":
            deleted = F.col(OP) == "d"
            rows = changes.withColumns({
                DELETED: deleted,
                DELETED_AT: F.when(deleted, F.col(TS)),
            }).drop(TS)
            return self._merge_writer(self.path).execute(rows)
        if self.tombstone_path is not None:
            rows = self._after_tombstones(rows)
        metrics = self._merge_writer(self.path).deletes(OP, ("d",)).execute(rows)
        if self.tombstone_path is not None:
            stones = rows.where(F.col(OP) == "d").select(*self.key_columns, SEQ)
            if not stones.isEmpty():
                self._merge_writer(self.tombstone_path).execute(stones)
        return metrics

    def _after_tombstones(self, rows: DataFrame) -> DataFrame:
        """``rows`` without the events older than a stored delete of their key."""
        assert self.tombstone_path is not None
        if not table_exists(self.spark, self.tombstone_path):
            return rows
        stones = read_delta(self.spark, self.tombstone_path).withColumnRenamed(SEQ, "_stone")
        return (
            rows.join(stones, list(self.key_columns), "left")
            .where(F.col("_stone").isNull() | (F.col(SEQ) >= F.col("_stone")))
            .drop("_stone")
        )

    # -- SCD type 2 ------------------------------------------------------------------------

    def _scd2(self, changes: DataFrame) -> WriteMetrics:
        skipped = self._skipped()
        if skipped is not None:
            return skipped
        keys = list(self.key_columns)
        # one event per (key, sequence): a duplicate delivery is the same event
        events = dedupe_keys(changes, [*keys, SEQ], [], "latest", self.path)
        columns = events.columns
        with commit_metadata(self.spark, self.metadata):
            if not table_exists(self.spark, self.path):
                self._commit(lambda: self._save(self._versions(events), "append"))
                return self._finish()
            stored = (
                read_delta(self.spark, self.path)
                .join(events.select(*keys).distinct(), keys, "left_semi")
                .select(*(F.col(VALID_FROM).alias(TS) if c == TS else F.col(f"`{c}`")
                          for c in columns))
            )
            new = events.join(stored.select(*keys, SEQ), [*keys, SEQ], "left_anti")
            versions = self._versions(stored.unionByName(new))
            self._commit(lambda: self._merge_versions(versions))
        return self._finish()

    def _versions(self, events: DataFrame) -> DataFrame:
        """The history rows of ``events`` (every event of each key present)."""
        order = Window.partitionBy(*self.key_columns).orderBy(SEQ)
        deleted = F.col(OP) == "d"
        following = F.lead(TS).over(order)
        return events.select(
            *(c for c in events.columns if c != TS),
            F.col(TS).alias(VALID_FROM),
            F.when(deleted, F.col(TS)).otherwise(following).alias(VALID_TO),
            (following.isNull() & ~deleted).alias(IS_CURRENT),
        )

    def _merge_versions(self, versions: DataFrame) -> None:
        condition = " AND ".join(
            [f"t.`{k}` <=> s.`{k}`" for k in self.key_columns] + [f"t.`{SEQ}` = s.`{SEQ}`"]
        )
        changed = (f"NOT (t.`{VALID_TO}` <=> s.`{VALID_TO}`) "
                   f"OR t.`{IS_CURRENT}` <> s.`{IS_CURRENT}`")
        builder = (
            DeltaTable.forPath(self.spark, self.path).alias("t")
            .merge(versions.alias("s"), condition)
            .whenMatchedUpdate(
                condition=changed,
                set={VALID_TO: f"s.`{VALID_TO}`", IS_CURRENT: f"s.`{IS_CURRENT}`"},
            )
            .whenNotMatchedInsertAll()
        )
        with session_confs(self.spark, txn_confs(self.txn)):
            builder.execute()


__all__ = [
    "DELETED",
    "DELETED_AT",
    "IS_CURRENT",
    "VALID_FROM",
    "VALID_TO",
    "CdcApply",
    "CdcOutput",
    "DeleteMode",
]
