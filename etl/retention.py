"""Retention: ``etl maintain --retention JOB`` deletes the rows a job has kept longer than its
``retention:`` section allows (`etl.config.retention`), purges the files that held them, and
records what it removed in ``_etl/retention`` (`etl.records.RETENTION`).

========================  ===========================================  ======================
``retention`` key          what                                         older than the cutoff
========================  ===========================================  ======================
``staging``                the job's sources' staged day folders,       the folder's date
                           ``<warehouse>/staging/<source>/<date>/``
``bronze``                 the job's bronze targets                     ``_ingested_at``
``quarantine``             the job's rows (``job``) in every            ``quarantined_at``
                           ``<warehouse>/quarantine/<table>``
``dead_letters``           the job's rows in ``_etl/dead_letters``      ``recorded_at``
``tables.<target>``        the target (over ``bronze`` for a bronze     its ``column``
                           one)
========================  ===========================================  ======================

The cutoff is ``now`` minus the duration; a row whose time is before it is removed (a null
time is kept), and a staged day folder dated before the cutoff's date. Rows go through
`etl.writers.erase.DeltaErase`: a Delta DELETE, then every data file of any version (change
data files too) still holding such a row is deleted from storage, so time travel to versions
older than the enforcement fails afterwards, as after a VACUUM. A second enforcement with the
same cutoff removes nothing. When rows were removed, the job's stored typed references go too
(`etl.flow.build.stored_references`): they were typed from bronze as it was.

Example::

    removed = enforce(spark, config, now=utcnow(), run_id=new_run_id())
    print(format_removed(removed))
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from etl import storage
from etl.config import JobConfig
from etl.config.retention import LAYER_COLUMNS
from etl.context import Warehouse, utcnow
from etl.errors import ConfigError
from etl.inspection import format_table
from etl.records import DEAD_LETTERS, RETENTION
from etl.staging import Staging
from etl.tables import read_delta, sql_literal, table_exists
from etl.writers.erase import DeltaErase


@dataclass(frozen=True)
class Scope:
    """One place a job's retention applies: a Delta table and the SQL condition selecting its
    expired rows, or (``condition`` None) a source's staged day folders."""

    layer: str
    #: As printed and recorded: ``bronze/flights``, ``quarantine/flights``, ``staging/orders``.
    table: str
    path: str
    cutoff: dt.datetime
    #: The retention key it comes from (``bronze``, ``tables.silver_orders``), for errors.
    key: str
    column: str | None = None
    condition: str | None = None


@dataclass(frozen=True)
class Removed:
    """What enforcing a scope removed (or, in a dry run, would remove)."""

    scope: Scope
    rows: int
    files: int


def cutoff(now: dt.datetime, days: int) -> dt.datetime:
    return now - dt.timedelta(days=days)


def _older(column: str, before: dt.datetime, job: str | None = None) -> str:
    older = f"`{column}` < {sql_literal(before)}"
    return f"job = {sql_literal(job)} AND {older}" if job else older


def scopes(config: JobConfig, now: dt.datetime, quarantines: Sequence[str]) -> list[Scope]:
    """Where ``config``'s retention applies at ``now``, in the order staging, bronze, the
    tables, quarantine (``quarantines``: the quarantine tables found), dead letters."""
    retention, job = config.retention, config.job.name
    warehouse = Warehouse.at(config.paths.warehouse)
    found: list[Scope] = []
    staging = retention.days_of("staging")
    if staging:
        when = cutoff(now, staging)
        found += [Scope("staging", f"staging/{s}", f"{warehouse.root}/staging/{s}", when,
                        "staging") for s in config.sources]
    bronze = retention.days_of("bronze")
    tables = [(name, t) for name, t in config.targets.items() if name in retention.tables
              or (bronze and t.layer == "bronze" and t.format == "delta")]
    for name, target in tables:
        kept = retention.tables.get(name)
        key = f"tables.{name}" if kept else "bronze"
        column = kept.column if kept else LAYER_COLUMNS["bronze"]
        days = retention.days_of(f"{key}.keep" if kept else "bronze")
        assert days is not None  # checked at load time
        when = cutoff(now, days)
        found.append(Scope(target.layer, f"{target.layer}/{target.table}",
                           warehouse.table(target.layer, target.table), when, key, column,
                           _older(column, when)))
    for layer, paths in (("quarantine", quarantines),
                         ("dead_letters", [warehouse.records(DEAD_LETTERS.name)])):
        days = retention.days_of(layer)
        if days:
            when = cutoff(now, days)
            column = LAYER_COLUMNS[layer]
            found += [Scope(layer, path.removeprefix(warehouse.root + "/"), path, when, layer,
                            column, _older(column, when, job)) for path in paths]
    return found


def _check_column(spark: SparkSession, scope: Scope, config: JobConfig) -> bool:
    """Whether the scope's table exists; a missing or non-time column is a `ConfigError`."""
    if not table_exists(spark, scope.path):
        return False
    fields = {f.name: f.dataType for f in read_delta(spark, scope.path).schema.fields}
    where = {"file": config.file, "key": f"retention.{scope.key}"}
    kind = fields.get(scope.column or "")
    if kind is None:
        raise ConfigError(f"{scope.table} has no column {scope.column!r} to date its rows by "
                          f"(columns: {sorted(fields)})", **where)
    if not isinstance(kind, (T.DateType, T.TimestampType, T.TimestampNTZType)):
        raise ConfigError(f"column {scope.column!r} of {scope.table} is {kind.simpleString()}, "
                          "not a date or timestamp", **where)
    return True


def _staged(spark: SparkSession, scope: Scope, dry_run: bool) -> Removed:
    root, source = scope.path.rsplit("/", 1)
    staging = Staging(spark, root)
    rows = files = 0
    for folder in staging.expired(scope.cutoff.date(), [source]):
        held, count = staging.contents(folder)
        if not dry_run:
            storage.delete(spark, folder)
        rows, files = rows + held, files + count
    return Removed(scope, rows, files)


def enforce(spark: SparkSession, config: JobConfig, *, now: dt.datetime, run_id: str,
            dry_run: bool = False) -> list[Removed]:
    """Enforce ``config``'s retention at ``now`` (naive UTC) on every table of the job that
    exists, and record each (not in a ``dry_run``, which changes nothing)."""
    warehouse = Warehouse.at(config.paths.warehouse)
    # glob gives qualified paths (file:/...): the tables are named as the warehouse names them
    quarantines = [warehouse.quarantine(q.rstrip("/").rsplit("/", 1)[-1])
                   for q in storage.glob(spark, f"{warehouse.root}/quarantine/*")]
    removed = []
    for scope in scopes(config, now, sorted(quarantines)):
        if scope.condition is None:
            if storage.glob(spark, scope.path):  # the source was ever staged
                removed.append(_staged(spark, scope, dry_run))
            continue
        if not _check_column(spark, scope, config):
            continue
        erase = DeltaErase(spark, scope.path).where(scope.condition).user_metadata(run_id)
        erased = erase.dry_run() if dry_run else erase.execute()
        removed.append(Removed(scope, erased.rows, len(erased.files)))
    if not dry_run:
        if any(r.rows for r in removed):
            from etl.flow.build import stored_references

            # typed from the bronze tables as they were: the next run types them again
            storage.delete(spark, stored_references(warehouse, config.job.name))
        enforced_at = utcnow()
        RETENTION.append(spark, warehouse.records(RETENTION.name), [
            (config.job.name, r.scope.layer, r.scope.table, r.scope.cutoff, r.rows, r.files,
             enforced_at, run_id) for r in removed], run_id=run_id)
    return removed


def format_removed(removed: Sequence[Removed], *, dry_run: bool = False) -> str:
    """The table ``etl maintain --retention`` prints."""
    verb = ("rows to remove", "files to purge") if dry_run else ("rows removed", "files purged")
    return format_table(["layer", "table", "cutoff", *verb], [
        (r.scope.layer, r.scope.table, r.scope.cutoff.isoformat(sep=" "), r.rows, r.files)
        for r in removed])


__all__ = ["Removed", "Scope", "cutoff", "enforce", "format_removed", "scopes"]
