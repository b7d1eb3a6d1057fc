"""Schema policies of a target: what a write does when the batch's schema differs from the table's.

`diff_schemas` compares two schemas field by field, descending into structs, and reports every
difference as a `ColumnChange` with a dotted path (``address.zip``). `conform` then shapes a
batch for a policy, on the driver and before anything is written:

* ``fail``: any difference raises `SchemaPolicyError` naming each column and its types; the
  table is not touched.
* ``evolve``: added columns and fields (top level or nested) and widenings (``int`` →
  ``bigint``, ``float`` → ``double``, wider decimals…) are accepted and applied with the write;
  a column missing from the batch is written as null; an incompatible type change
  (``int`` → ``string``) raises `SchemaPolicyError`.
* ``rescue``: the table's schema never changes except for a ``_rescued_data`` string column.
  Values of columns or nested fields the table does not know, and the original values of columns
  whose type differs, are kept there as a JSON object keyed by dotted path; the columns
  themselves are written cast to the table's type; a column missing from the batch is null.

Example::

    diff = diff_schemas(table_df.schema, batch.schema)
    batch = conform(batch, table_df.schema, "evolve", table="silver/flights")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from etl.errors import SchemaPolicyError

SchemaPolicy = Literal["evolve", "fail", "rescue"]
SCHEMA_POLICIES: tuple[str, ...] = ("evolve", "fail", "rescue")
RESCUED = "_rescued_data"

ChangeKind = Literal["added", "removed", "widened", "retyped"]

_INTEGRAL_ORDER = ("tinyint", "smallint", "int", "bigint")


@dataclass(frozen=True)
class ColumnChange:
    """One difference between a batch and its table, at a dotted ``path``."""

    path: str
    kind: ChangeKind
    table_type: str | None
    batch_type: str | None

    def describe(self) -> str:
        if self.kind == "added":
            return f"added {self.path} {self.batch_type}"
        if self.kind == "removed":
            return f"removed {self.path} {self.table_type}"
        return f"{self.kind} {self.path} {self.table_type} -> {self.batch_type}"


@dataclass(frozen=True)
class SchemaDiff:
    changes: tuple[ColumnChange, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.changes)

    def of_kind(self, *kinds: ChangeKind) -> tuple[ColumnChange, ...]:
        return tuple(c for c in self.changes if c.kind in kinds)

    def describe(self) -> str:
        return "; ".join(c.describe() for c in self.changes)


def is_widening(table_type: T.DataType, batch_type: T.DataType) -> bool:
    """True when every value of ``table_type`` fits ``batch_type`` without loss."""
    old, new = table_type.simpleString(), batch_type.simpleString()
    if old in _INTEGRAL_ORDER and new in _INTEGRAL_ORDER:
        return _INTEGRAL_ORDER.index(new) > _INTEGRAL_ORDER.index(old)
    if (old, new) in {("float", "double"), ("date", "timestamp_ntz")}:
        return True
    if isinstance(table_type, T.DecimalType) and isinstance(batch_type, T.DecimalType):
        integral_old = table_type.precision - table_type.scale
        integral_new = batch_type.precision - batch_type.scale
        return batch_type.scale >= table_type.scale and integral_new >= integral_old and old != new
    return False


def diff_schemas(table: T.StructType, batch: T.StructType, prefix: str = "") -> SchemaDiff:
    """Differences from ``table`` to ``batch``, in table order then batch order; nullability is
    ignored (Delta relaxes it itself)."""
    changes: list[ColumnChange] = []
    batch_fields = {f.name: f for f in batch.fields}
    table_names = {f.name for f in table.fields}
    for field in table.fields:
        path = f"{prefix}{field.name}"
        other = batch_fields.get(field.name)
        if other is None:
            changes.append(ColumnChange(path, "removed", field.dataType.simpleString(), None))
        elif isinstance(field.dataType, T.StructType) and isinstance(other.dataType, T.StructType):
            changes.extend(diff_schemas(field.dataType, other.dataType, f"{path}.").changes)
        elif field.dataType != other.dataType:
            kind: ChangeKind = "widened" if is_widening(field.dataType, other.dataType) else "retyped"
            changes.append(
                ColumnChange(path, kind, field.dataType.simpleString(), other.dataType.simpleString())
            )
    for field in batch.fields:
        if field.name not in table_names:
            changes.append(
                ColumnChange(f"{prefix}{field.name}", "added", None, field.dataType.simpleString())
            )
    return SchemaDiff(tuple(changes))


def check_policy(diff: SchemaDiff, policy: SchemaPolicy, table: str) -> None:
    """Raise `SchemaPolicyError` when ``policy`` refuses ``diff`` (before any write)."""
    if policy not in SCHEMA_POLICIES:
        raise ValueError(f"schema policy must be one of {SCHEMA_POLICIES}, got {policy!r}")
    refused = diff.changes if policy == "fail" else ()
    if policy == "evolve":
        refused = diff.of_kind("retyped")
    if refused:
        what = "differs from" if policy == "fail" else "has incompatible types for"
        raise SchemaPolicyError(
            f"{table}: schema policy {policy!r}: the batch {what} the table: "
            + "; ".join(c.describe() for c in refused)
            + "; nothing was written"
        )


def _shape(
    source: Column | None,
    table_type: T.DataType | None,
    batch_type: T.DataType | None,
    keep_extra: bool,
) -> Column:
    """``source`` reshaped to the table's type (recursively for structs)."""
    if source is None:
        assert table_type is not None
        return F.lit(None).cast(table_type)
    if table_type is None:
        return source
    if isinstance(table_type, T.StructType) and isinstance(batch_type, T.StructType):
        batch_fields = {f.name: f for f in batch_type.fields}
        parts = []
        for field in table_type.fields:
            other = batch_fields.get(field.name)
            child = source.getField(field.name) if other is not None else None
            shaped = _shape(child, field.dataType, other.dataType if other else None, keep_extra)
            parts.append(shaped.alias(field.name))
        if keep_extra:
            known = {f.name for f in table_type.fields}
            parts += [
                source.getField(f.name).alias(f.name) for f in batch_type.fields if f.name not in known
            ]
        return F.when(source.isNull(), F.lit(None)).otherwise(F.struct(*parts))
    if keep_extra:  # evolve: the batch's (wider) type is kept
        return source
    return source.cast(table_type)


def _rescued_column(diff: SchemaDiff, existing: str | None) -> Column:
    """JSON of the rescued values (``null`` when a row has none)."""
    paths = [c.path for c in diff.of_kind("added", "widened", "retyped")]
    values = [F.col(_quoted_path(p)).alias(p) for p in paths]
    text = F.to_json(F.struct(*values)) if values else F.lit(None).cast("string")
    rescued = F.when(text != "{}", text)
    if existing is not None:
        rescued = F.coalesce(rescued, F.col(existing))
    return rescued


def _quoted_path(path: str) -> str:
    return ".".join(f"`{part}`" for part in path.split("."))


def conform(df: DataFrame, table: T.StructType, policy: SchemaPolicy, *, name: str) -> DataFrame:
    """``df`` shaped for a write into a table of schema ``table`` under ``policy``; raises
    `SchemaPolicyError` (naming columns and types) when the policy refuses the difference."""
    table_fields = [f for f in table.fields if not (policy == "rescue" and f.name == RESCUED)]
    diff = diff_schemas(T.StructType(table_fields), df.schema)
    check_policy(diff, policy, name)
    if not diff:
        return df
    batch_fields = {f.name: f for f in df.schema.fields}
    keep_extra = policy == "evolve"
    columns = []
    for field in table_fields:
        other = batch_fields.get(field.name)
        source = F.col(f"`{field.name}`") if other is not None else None
        shaped = _shape(source, field.dataType, other.dataType if other else None, keep_extra)
        columns.append(shaped.alias(field.name))
    known = {f.name for f in table_fields}
    if keep_extra:
        columns += [F.col(f"`{f.name}`") for f in df.schema.fields if f.name not in known]
    else:
        existing = RESCUED if RESCUED in batch_fields else None
        columns.append(_rescued_column(diff, existing).alias(RESCUED))
    return df.select(*columns)


__all__ = [
    "RESCUED",
    "SCHEMA_POLICIES",
    "ColumnChange",
    "SchemaDiff",
    "SchemaPolicy",
    "check_policy",
    "conform",
    "diff_schemas",
    "is_widening",
]
