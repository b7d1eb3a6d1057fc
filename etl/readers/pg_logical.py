"""Log-based change data capture from PostgreSQL: a logical replication slot with wal2json.

`PgLogicalReader.extract` reads one table's changes over JDBC and lands them in the staging area
as JSON lines in the Debezium envelope (`etl.transforms.cdc`); `PgLogicalReader.advance` moves
the slot past them. The order of a run:

0. the table is checked: it must exist under exactly the configured name and have
   ``REPLICA IDENTITY FULL``; otherwise `SourceError` names the table (and no slot is created);
1. the slot is created when missing (its name is configured; the plugin is wal2json);
2. the upper bound is fixed: ``pg_current_wal_lsn()`` when the extraction starts;
3. ``pg_logical_slot_peek_changes`` up to that bound (peek consumes nothing) through Spark's
   JDBC reader; inserts, updates and deletes become ``c``, ``u``, ``d`` envelopes, with the
   change's LSN as ``source.lsn`` and its commit time as ``ts_ms``. Only the configured table's
   changes are decoded (wal2json ``add-tables``). An update's ``after`` takes each column from
   the new values, or from the old row when the new values leave it out (see below);
4. first run (``snapshot=True``, when the job has no stored position): the table is also read
   in full as ``r`` events at the position just before the slot's confirmed one: every change
   the slot still holds (LSN >= confirmed) is newer, so a row changed while the snapshot was
   read ends with its newest state, whatever the clocks say;
5. the envelopes are staged (JSON lines) and read back from there; then the staged events are
   checked, and the extraction is refused (`SourceError`, nothing applied, the slot where it
   was) when the slot holds a ``TRUNCATE`` of the table or an update that leaves out a column
   and carries no old value for it (see below);
6. after the target commit, the job calls ``advance(extract.upto)``
   (``pg_replication_slot_advance``): a run that fails before leaves the slot where it was, the
   next run peeks the same changes again, and applying them again by sequence is harmless.

Why ``REPLICA IDENTITY FULL`` is required: PostgreSQL does not log a TOASTed value (text,
jsonb, bytea over about 2 kB, stored out of line) that an update leaves unchanged, and wal2json
leaves such a column out of the update's new values. Applied as it is, the update would write
null over the stored text. The reader could instead update only the columns an event carries,
but then an event would not describe its row by itself: a late or replayed event, or an SCD2
version, would take its missing values from whatever row happens to be stored, and the order-
and replay-independence `etl.writers.cdc.CdcApply` guarantees would be lost. With ``REPLICA
IDENTITY FULL`` every update also carries the whole old row (TOASTed values included), so the
reader fills each left-out column from it and every event is a complete row image; deletes carry
the whole old row too, which soft deletes and SCD2 keep as the deleted row's image. The cost is
more WAL per update and delete. A table without it is refused before anything is read, with the
``ALTER TABLE`` to run. An update logged while the table was not yet ``FULL`` (its old image is
only the key) that leaves a column out cannot be completed; the extraction refuses it, naming
the LSN and the columns.

A ``TRUNCATE`` of the table cannot be applied key by key (the reader does not know the rows it
removed), and dropping it would leave the target with rows the source no longer has: the
extraction is refused, naming the LSN; resynchronise with a new snapshot (drop the target and the
slot, and reset the stored position).

``jdbc.table`` is ``schema.table`` exactly as PostgreSQL stores the names (``pg_class``, case
sensitive): a table created as ``"Customers"`` is ``public.Customers``, one created unquoted as
``Customers`` is ``public.customers``. The names are quoted in every statement, so mixed case
works; a name that matches only in another case is refused with the name found.

Control statements (slot creation, the WAL position, the advance) run on one JDBC connection
from the driver, with Spark's registered driver; credentials are as for `etl.readers.jdbc`.

Example::

    reader = PgLogicalReader(spark, "customers", config.source("customers").jdbc, "etl_customers")
    extract = reader.extract(staging, run_id, today, snapshot=store.get(job, "customers") is None)
    ...  # apply extract.df, commit the target
    reader.advance(extract.upto)
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from etl.config import JdbcConfig
from etl.errors import EtlError, SourceError, jvm_error_text
from etl.readers.jdbc import jdbc_reader, resolve_credentials
from etl.staging import Staging
from etl.transforms.cdc import lsn_to_long

_SLOT = re.compile(r"^[a-z0-9_]{1,63}$")
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
_LSN = re.compile(r"^[0-9A-F]{1,8}/[0-9A-F]{1,8}$")
_ACTIONS = {"I": "c", "U": "u", "D": "d", "T": "t"}
#: The envelope op of a TRUNCATE (never applied: `PgLogicalReader.extract` refuses it).
TRUNCATE = "t"
#: Envelope column: the columns of an update that neither its new values nor its old row carry.
UNAVAILABLE = "unavailable_columns"
_IDENTITIES = {"d": "DEFAULT", "n": "NOTHING", "i": "USING INDEX", "f": "FULL"}
_COLUMN = T.ArrayType(T.StructType(
    [T.StructField("name", T.StringType()), T.StructField("value", T.StringType())]
))
WAL2JSON = T.StructType([
    T.StructField("action", T.StringType()),
    T.StructField("timestamp", T.StringType()),
    T.StructField("schema", T.StringType()),
    T.StructField("table", T.StringType()),
    T.StructField("columns", _COLUMN),
    T.StructField("identity", _COLUMN),
])


@dataclass(frozen=True)
class SlotExtract:
    """What one extraction staged: envelopes in ``df`` (read back from ``staged_path``), the
    slot's position when it started (``start``, the snapshot's position), the LSN the slot may
    be advanced to once the target committed (``upto``), and the number of changes."""

    source: str
    df: DataFrame
    start: str
    upto: str
    position: int
    changes: int
    snapshot_rows: int
    staged_path: str


def lsn_number(lsn: str) -> int:
    """``'16/B374D848'`` -> the 64-bit position it stands for."""
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def lsn_text(position: int) -> str:
    """The 64-bit position -> PostgreSQL's text form ``'16/B374D848'``."""
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


def quote_table(table: str) -> str:
    """``schema.Name`` -> ``"schema"."Name"`` (the names as stored, case kept)."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in table.split("."))


class PgLogicalReader:
    """One table of a PostgreSQL database through a logical replication slot (wal2json)."""

    def __init__(
        self,
        spark: SparkSession,
        source_name: str,
        jdbc: JdbcConfig,
        slot: str,
        *,
        environ: Mapping[str, str] | None = None,
    ):
        if not _SLOT.match(slot):
            raise SourceError(
                f"source {source_name}: slot {slot!r} must be lower-case letters, digits and _ "
                "(at most 63)"
            )
        if not _TABLE.match(jdbc.table):
            raise SourceError(f"source {source_name}: table must be schema.table, got {jdbc.table!r}")
        self.spark = spark
        self.source = source_name
        self.jdbc = jdbc
        self.slot = slot
        self.quoted = quote_table(jdbc.table)
        self._user, self._password = resolve_credentials(source_name, jdbc.credentials, environ)

    # -- control statements on one JDBC connection ----------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        jvm = self.spark.sparkContext._jvm
        assert jvm is not None
        jvm.org.apache.spark.sql.execution.datasources.jdbc.DriverRegistry.register(self.jdbc.driver)
        props = jvm.java.util.Properties()
        props.setProperty("user", self._user)
        props.setProperty("password", self._password)
        conn = jvm.java.sql.DriverManager.getConnection(self.jdbc.url, props)
        try:
            yield conn
        finally:
            conn.close()

    def _rows(self, sql: str, *params: str) -> list[list[str | None]]:
        """Every row of ``sql`` (text columns) with ``params`` bound."""
        try:
            with self._connection() as conn:
                statement = conn.prepareStatement(sql)
                for i, value in enumerate(params, start=1):
                    statement.setString(i, value)
                result = statement.executeQuery()
                count = result.getMetaData().getColumnCount()
                rows = []
                while result.next():
                    rows.append([result.getString(i) for i in range(1, count + 1)])
                return rows
        except EtlError:
            raise
        except Exception as exc:
            raise SourceError(
                f"source {self.source}: slot {self.slot}: {jvm_error_text(exc)}"
            ) from None

    def _query(self, sql: str, *params: str) -> list[str | None]:
        """The first row of ``sql`` (text columns) with ``params`` bound, or ``[]``."""
        rows = self._rows(sql, *params)
        return rows[0] if rows else []

    def check_table(self) -> None:
        """Refuse (`SourceError` naming the table) a table that does not exist under exactly the
        configured name, or whose replica identity is not ``FULL`` (see the module docstring)."""
        schema, _, name = self.jdbc.table.partition(".")
        found = self._rows(
            "SELECT n.nspname, c.relname, c.relreplident::text FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE lower(n.nspname) = lower(?) AND lower(c.relname) = lower(?) "
            "AND c.relkind IN ('r', 'p') ORDER BY 1, 2", schema, name)
        exact = [row for row in found if row[:2] == [schema, name]]
        if not exact:
            others = ", ".join(f"{row[0]}.{row[1]}" for row in found)
            raise SourceError(
                f"source {self.source}: no table {self.jdbc.table} in the database"
                + (f" (names are case-sensitive as PostgreSQL stores them; found {others})"
                   if others else "")
            )
        identity = exact[0][2] or "d"
        if identity != "f":
            raise SourceError(
                f"source {self.source}: table {self.jdbc.table} has REPLICA IDENTITY "
                f"{_IDENTITIES.get(identity, identity)}; log-based CDC needs REPLICA IDENTITY "
                "FULL, or an update that leaves a TOASTed value unchanged would write null over "
                f"it: run ALTER TABLE {self.quoted} REPLICA IDENTITY FULL"
            )

    def ensure_slot(self) -> str:
        """The slot's confirmed position (LSN text); the slot is created when missing."""
        found = self._query(
            "SELECT plugin, confirmed_flush_lsn::text FROM pg_replication_slots "
            "WHERE slot_name = ? AND database = current_database()", self.slot)
        if found:
            if found[0] != "wal2json":
                raise SourceError(
                    f"source {self.source}: slot {self.slot} uses plugin {found[0]}, not wal2json")
            assert found[1] is not None
            return found[1]
        created = self._query(
            "SELECT lsn::text FROM pg_create_logical_replication_slot(?, 'wal2json')", self.slot)
        assert created and created[0] is not None
        return created[0]

    def advance(self, lsn: str) -> None:
        """Move the slot to ``lsn``: the changes up to it are released (call only after the
        target committed them)."""
        if not _LSN.match(lsn):
            raise SourceError(f"source {self.source}: not an LSN: {lsn!r}")
        self._query("SELECT end_lsn::text FROM pg_replication_slot_advance(?, ?::pg_lsn)",
                    self.slot, lsn)

    def drop_slot(self) -> None:
        """Drop the slot (a slot nobody reads keeps WAL on the server)."""
        self._query("SELECT slot_name FROM pg_replication_slots WHERE slot_name = ? AND "
                    "pg_drop_replication_slot(slot_name) IS NOT NULL", self.slot)

    # -- extraction -------------------------------------------------------------------------

    def _spark_query(self, sql: str) -> DataFrame:
        return jdbc_reader(self.spark, self.jdbc, self._user, self._password).option("query", sql).load()

    def extract(
        self, staging: Staging, run_id: str, ingest_date: dt.date, *, snapshot: bool
    ) -> SlotExtract:
        """Stage the table's changes (and with ``snapshot`` its rows) up to the current WAL
        position; see the module docstring. Raises `SourceError` naming the table before
        anything is read for a missing table or one without ``REPLICA IDENTITY FULL``, and after
        staging (nothing applied, the slot not advanced) for a TRUNCATE or an update that
        cannot be completed."""
        self.check_table()
        confirmed = self.ensure_slot()
        upto = self._query("SELECT pg_current_wal_lsn()::text")[0]
        assert upto is not None
        try:
            table = jdbc_reader(self.spark, self.jdbc, self._user, self._password) \
                .option("dbtable", self.quoted).load()
            peek = self._spark_query(
                f"SELECT lsn::text AS lsn, data FROM pg_logical_slot_peek_changes("
                f"'{self.slot}', '{upto}'::pg_lsn, NULL, 'format-version', '2', "
                f"'include-timestamp', '1', 'include-transaction', '0', "
                f"'add-tables', '{self.jdbc.table}')"
            )
            envelopes = changes_to_envelopes(peek, table.schema, table=self.jdbc.table)
            if snapshot:
                envelopes = snapshot_envelopes(table, lsn_number(confirmed) - 1).unionByName(envelopes)
            staged = staging.stage(
                self.source, run_id, ingest_date, envelopes,
                {"slot": self.slot, "table": self.jdbc.table, "from": confirmed, "upto": upto,
                 "snapshot": snapshot},
                fmt="json",
            )
            snapshot_rows = staged.df.where(F.col("op") == "r").count() if snapshot else 0
            self._refuse_unappliable(staged.df)
        except EtlError:
            raise
        except Exception as exc:
            raise SourceError(
                f"source {self.source}: reading slot {self.slot} failed: {jvm_error_text(exc)}"
            ) from None
        return SlotExtract(
            source=self.source, df=staged.df.drop(UNAVAILABLE), start=confirmed, upto=upto, position=lsn_number(upto),
            changes=int(staged.manifest["rows"]) - snapshot_rows, snapshot_rows=snapshot_rows,
            staged_path=staged.path,
        )


    def _refuse_unappliable(self, envelopes: DataFrame) -> None:
        """`SourceError` when the staged events hold a TRUNCATE or an update that cannot be
        completed (one Spark job over the staged envelopes)."""
        lsn = F.col("source.lsn")
        truncate = F.col("op") == TRUNCATE
        incomplete = F.size(F.col(UNAVAILABLE)) > 0
        found = envelopes.agg(
            F.count(F.when(truncate, 1)).alias("truncates"),
            F.min(F.when(truncate, lsn)).alias("truncate_lsn"),
            F.count(F.when(incomplete, 1)).alias("incomplete"),
            F.min(F.when(incomplete, lsn)).alias("incomplete_lsn"),
            F.array_sort(F.array_distinct(F.flatten(F.collect_list(
                F.when(incomplete, F.col(UNAVAILABLE)))))).alias("columns"),
        ).first()
        assert found is not None
        resync = (f"To resynchronise, drop the target table and the slot (SELECT "
                  f"pg_drop_replication_slot('{self.slot}')) and reset the stored position "
                  "(etl state reset JOB): the next run starts from a new snapshot")
        if found["truncates"]:
            raise SourceError(
                f"source {self.source}: table {self.jdbc.table} was truncated at LSN "
                f"{lsn_text(found['truncate_lsn'])} ({found['truncates']} TRUNCATE event(s) in "
                f"slot {self.slot}); a TRUNCATE cannot be applied key by key, so nothing was "
                f"applied and the slot was not advanced. {resync}"
            )
        if found["incomplete"]:
            raise SourceError(
                f"source {self.source}: table {self.jdbc.table}: {found['incomplete']} update(s) "
                f"from LSN {lsn_text(found['incomplete_lsn'])} leave out columns "
                f"{list(found['columns'])} (unchanged TOASTed values) and carry no old value "
                "for them (logged before the table had REPLICA IDENTITY FULL); applying them "
                "would write null over stored values, so nothing was applied and the slot was "
                f"not advanced. {resync}"
            )


def _image(values: F.Column, schema: T.StructType) -> F.Column:
    """A row image struct from a ``name -> text`` map, each value cast to its column's type."""
    return F.struct(*(values[f.name].cast(f.dataType).alias(f.name) for f in schema.fields))


def _completed(new: F.Column, old: F.Column, schema: T.StructType) -> F.Column:
    """The new row image: each column from the ``new`` values when they carry it (a null
    included), else from the ``old`` row (an unchanged TOASTed value wal2json leaves out)."""
    return F.struct(*(
        F.when(F.array_contains(F.map_keys(new), f.name), new[f.name]).otherwise(old[f.name])
        .cast(f.dataType).alias(f.name)
        for f in schema.fields
    ))


def changes_to_envelopes(
    peek: DataFrame, schema: T.StructType, *, table: str | None = None
) -> DataFrame:
    """wal2json (format 2) rows ``(lsn, data)`` as Debezium envelopes for a table of
    ``schema`` (with ``table``, ``schema.name``, only that table's changes); transaction and
    other non-row messages are dropped.

    An update's ``after`` takes a column the new values leave out (an unchanged TOASTed value)
    from the old row (``identity``, the whole row under ``REPLICA IDENTITY FULL``). When the old
    row is only the key (it lacks a column the new values carry: logged without ``FULL``), the
    left-out columns are listed in ``unavailable_columns`` (empty otherwise) for the reader to
    refuse. A TRUNCATE becomes op ``t`` without images."""
    msg = F.from_json(F.col("data"), WAL2JSON)
    parsed = peek.select(F.col("lsn"), msg.alias("m")).where(
        F.col("m.action").isin(*_ACTIONS))
    if table is not None:
        owner, _, name = table.partition(".")
        parsed = parsed.where((F.col("m.schema") == owner) & (F.col("m.table") == name))
    op = F.coalesce(*(F.when(F.col("m.action") == k, F.lit(v)) for k, v in _ACTIONS.items()))
    columns = F.map_from_entries(F.col("m.columns"))
    identity = F.map_from_entries(F.coalesce(F.col("m.identity"), F.array().cast(_COLUMN)))
    old_names, new_names = F.map_keys(identity), F.map_keys(columns)
    old_is_full = F.forall(new_names, lambda name: F.array_contains(old_names, name))
    left_out = F.filter(
        F.array(*(F.lit(f.name) for f in schema.fields)),
        lambda name: ~F.array_contains(new_names, name) & ~F.array_contains(old_names, name),
    )
    # "2026-11-26 03:25:03.177621+00": the offset needs minutes to be read as ISO-8601
    stamp = F.regexp_replace(F.col("m.timestamp"), r"([+-]\d\d)$", "$1:00")
    return parsed.select(
        op.alias("op"),
        F.when(F.col("m.identity").isNotNull(), _image(identity, schema)).alias("before"),
        F.when(op.isin("c", "u"), _completed(columns, identity, schema)).alias("after"),
        F.unix_millis(F.to_timestamp(stamp)).alias("ts_ms"),
        F.struct(lsn_to_long("lsn").alias("lsn")).alias("source"),
        F.when((op == "u") & ~old_is_full, left_out)
        .otherwise(F.array().cast("array<string>")).alias(UNAVAILABLE),
    )


def snapshot_envelopes(table: DataFrame, position: int) -> DataFrame:
    """The rows of ``table`` as snapshot (``r``) envelopes at ``position``."""
    image = F.struct(*(F.col(f"`{c}`") for c in table.columns))
    return table.select(
        F.lit("r").alias("op"),
        F.lit(None).cast(image_type(table.schema)).alias("before"),
        image.alias("after"),
        F.unix_millis(F.current_timestamp()).alias("ts_ms"),
        F.struct(F.lit(position).cast("long").alias("lsn")).alias("source"),
        F.array().cast("array<string>").alias(UNAVAILABLE),
    )


def image_type(schema: T.StructType) -> T.StructType:
    return T.StructType([T.StructField(f.name, f.dataType) for f in schema.fields])


__all__ = ["TRUNCATE", "UNAVAILABLE", "WAL2JSON", "PgLogicalReader", "SlotExtract",
           "changes_to_envelopes", "lsn_number", "lsn_text", "quote_table", "snapshot_envelopes"]
