"""Erasing one subject's value from everything a job keeps (``etl forget``), the erasure ledger,
and the filter that keeps erased values from coming back on later ingests.

A subject (``personal_data.subjects`` in the job's YAML) names where its key is: a source
(its staged extracts, its bronze table, its quarantine table and its dead letters) or a target
(the table, and the quarantine of its rules). `forget`:

1. computes the keyed hash of the value (`etl.privacy.keyed_hash`) and returns at once when the
   ledger ``_etl/erasures`` already records it for the job and subject (a no-op);
2. notes, for each target built from an erased target (gold), the values of its ``replace_by``
   the erased rows touched (the flow's own ``touched`` machinery, before the rows change);
3. erases each place (`places`): staged Parquet rewritten without the rows (or with the key
   null) and its manifest's ``rows`` recounted, a REST source's staged pages rewritten without
   the records; Delta tables through `DeltaErase` (MERGE
   against the value, so the value never enters a commit's predicate; REORG where deletion
   vectors are on; the files that held it deleted); quarantine rows whose raw JSON ``record``
   holds it are deleted (or, for ``erase: null``, keep the record with the key null) and dead
   letters whose ``reason`` names it are deleted;
4. removes the job's stored typed references (`etl.flow.build.stored_references`: rows of
   bronze as it was), recomputes those gold values from the erased tables and rewrites the
   exports;
5. appends the ledger row: job, subject, value hash, tables, files, rows, times, run id.

The value itself is never logged, noted or recorded: only its hash. Landed files stay (they are
the source system's; it must erase them too), and so does what a source still returns:
`ErasedValues` drops (or nulls) those rows on every later ingest instead.

Example::

    report = forget(spark, ctx, config, "aircraft", "N14228")
    print(report.format())
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from etl import storage
from etl.config import JobConfig
from etl.config.privacy import SubjectConfig, SubjectTable
from etl.context import RunContext, Warehouse, utcnow
from etl.errors import ConfigError, StateError
from etl.privacy import key_of, keyed_hash, keyed_hash_column
from etl.records import DEAD_LETTERS, ERASURES
from etl.staging import MANIFEST
from etl.tables import read_delta, sql_literal, table_exists
from etl.writers.erase import DeltaErase, Erased, erase_parquet_folder

if TYPE_CHECKING:  # etl.flow imports this module (the ingest filter)
    from etl.flow.plan import Built, Plan
    from etl.flow.run import Run


#: The source types whose extracts are staged (`etl.staging`).
STAGED = ("jdbc", "rest", "pg_logical")


def nulled(subject: SubjectConfig, where: SubjectTable) -> tuple[str, ...]:
    """The columns erasing ``subject`` sets to null in a table it is found in (its key and
    ``also_null``); none when its rows go (``erase: delete``)."""
    if (where.erase or subject.erase) != "null":
        return ()
    return (where.column, *where.also_null)


@dataclass(frozen=True)
class Place:
    """One place a subject's value is kept: ``kind`` (staged, bronze, quarantine, dead letters,
    or a target's layer), the source or target ``name`` it belongs to, its ``path``, the SQL
    ``expression`` that equals the subject's key there, and the columns set to null (none: the
    rows go)."""

    kind: str
    name: str
    path: str
    expression: str
    null_columns: tuple[str, ...] = ()
    #: A REST source's staged pages: where the records are in a page's body, and the field
    #: holding the subject's key (``None`` for every other place).
    records_path: str | None = None
    field: str = ""
    #: A quarantine of a subject erased to null: the raw ``record``'s fields set to null (the
    #: row stays); none: the row goes.
    record_nulls: tuple[str, ...] = ()


def subject_of(config: JobConfig, subject: str) -> SubjectConfig:
    """The subject's configuration; `ConfigError` naming the subjects the job declares."""
    subjects = config.personal_data.subjects
    if subject not in subjects:
        raise ConfigError(f"job {config.job.name} has no subject {subject!r} (subjects: "
                          f"{', '.join(sorted(subjects)) or 'none'})", key="--subject")
    return subjects[subject]


def places(plan: Plan, warehouse: Warehouse, subject: SubjectConfig) -> list[Place]:
    """Where the job keeps the subject's value, in the order `forget` erases them."""
    config = plan.config
    found: list[Place] = []
    quarantines: dict[str, Place] = {}
    for name, where in subject.found_in.items():
        nulls = nulled(subject, where)
        column = f"`{where.column}`"
        record = f"get_json_object(record, '$.{where.column}')"
        if name in config.sources:
            source = config.sources[name]
            if source.type in STAGED:
                pages = source.rest.records_path if source.rest is not None else None
                found.append(Place("staged", name, f"{warehouse.root}/staging/{name}", column,
                                   nulls, records_path=pages, field=where.column))
            if source.bronze:
                table = config.targets[source.bronze].table
                found.append(Place("bronze", name, warehouse.table("bronze", table), column, nulls))
            quarantine = plan.quarantine_table(name)
        else:
            target = config.targets[name]
            found.append(Place(target.layer, name, warehouse.table(target.layer, target.table),
                               column, nulls))
            quarantine = target.table
        # a quarantined row keeps its raw record with the key null, or goes whole
        quarantines.setdefault(quarantine, Place("quarantine", quarantine,
                                                 warehouse.quarantine(quarantine), record,
                                                 record_nulls=nulls))
    found.extend(quarantines.values())
    found.append(Place("dead letters", config.job.name, warehouse.records(DEAD_LETTERS.name),
                       "reason"))
    return found


@dataclass
class Report:
    """What `forget` changed (or, dry, would change): one row per place that held the value."""

    subject: str
    value_hash: str
    dry_run: bool = False
    erased: list[tuple[Place, Erased]] = field(default_factory=list)
    #: Gold targets recomputed: name -> values of ``replace_by``.
    recomputed: dict[str, int] = field(default_factory=dict)
    exports: list[str] = field(default_factory=list)
    #: Set when the ledger already recorded the value: (finished_at, run id).
    already: tuple[Any, str] | None = None

    @property
    def rows(self) -> int:
        return sum(e.rows for _, e in self.erased)

    @property
    def files(self) -> list[str]:
        return sorted({f for _, e in self.erased for f in e.files})

    @property
    def tables(self) -> list[str]:
        return [p.path for p, e in self.erased if e.rows or e.files]

    def format(self) -> str:
        head = f"subject {self.subject}, value hash {self.value_hash[:16]}…"
        if self.already is not None:
            finished, run_id = self.already
            return (f"{head}: already erased (run {run_id}, {finished:%Y-%m-%d %H:%M:%S} UTC); "
                    "nothing to do")
        verb = "would change" if self.dry_run else "changed"
        lines = [f"{head}: {'dry run, nothing changed' if self.dry_run else 'erased'}",
                 f"{'where':13}  {'of':18}  {'rows ' + verb:>18}  {'files':>6}  table"]
        for place, erased in self.erased:
            lines.append(f"{place.kind:13}  {place.name:18}  {erased.rows:>18,}  "
                         f"{len(erased.files):>6,}  {place.path}")
        lines.append(f"{'total':13}  {'':18}  {self.rows:>18,}  {len(self.files):>6,}")
        if self.dry_run:
            lines += [f"  file: {f}" for f in self.files]
        for name, count in self.recomputed.items():
            lines.append(f"recomputed {name} for {count} values of its replace_by")
        for name in self.exports:
            lines.append(f"export {name} rewritten")
        return "\n".join(lines)


def _matches(expression: str, value: str) -> Column:
    return F.expr(expression) == F.lit(value)


def _recount(spark: SparkSession, folder: str, manifest: dict[str, Any]) -> None:
    """The staged extract's manifest, with ``rows`` what the folder holds now."""
    manifest["rows"] = spark.read.parquet(folder).count()
    storage.write_text(spark, f"{folder}/{MANIFEST}", json.dumps(manifest, default=str))


def _erase_staged(spark: SparkSession, place: Place, value: str, dry_run: bool) -> Erased:
    """Every staged extract of the source, rewritten without the value; manifests recounted."""
    if place.records_path is not None:
        return _erase_pages(spark, place, value, dry_run)
    rows, files = 0, list[str]()
    for folder in storage.glob(spark, f"{place.path}/*/*"):
        manifest = json.loads(storage.read_text(spark, f"{folder}/{MANIFEST}"))
        if manifest.get("format", "parquet") != "parquet":
            raise StateError(f"{folder}: erasing from staged {manifest['format']} extracts is not "
                             "supported; delete the folder")
        erased = erase_parquet_folder(spark, folder, _matches(place.expression, value),
                                      null_columns=place.null_columns, dry_run=dry_run)
        rows, files = rows + erased.rows, files + list(erased.files)
        if erased.rows and not dry_run:
            _recount(spark, folder, manifest)
    return Erased(place.path, rows, tuple(files))


def _rewrite_pages(spark: SparkSession, paths: Sequence[str], records_path: str, field: str,
                   matches: Callable[[str], bool], null_columns: Sequence[str] = (), *,
                   dry_run: bool = False) -> tuple[int, list[str]]:
    """REST pages files (`etl.readers.rest.stage_pages`: one JSON line per page, its body as
    text) rewritten without the records whose ``field`` ``matches`` (a number or boolean as its
    JSON text), or with ``null_columns`` set to null in them; a page keeps its number and URL.
    Returns the records that matched and the files that held them."""
    steps = [s for s in records_path.split(".") if s]
    nulls = dict.fromkeys(null_columns)
    held = 0

    def holds(record: Any) -> bool:
        if not isinstance(record, dict) or record.get(field) is None:
            return False
        found = record[field]
        return matches(found if isinstance(found, str) else json.dumps(found))

    def change(records: list[Any]) -> list[Any]:
        nonlocal held
        found = [holds(r) for r in records]
        held += sum(found)
        if nulls:
            return [{**r, **nulls} if f else r for r, f in zip(records, found, strict=True)]
        return [r for r, f in zip(records, found, strict=True) if not f]

    def at(node: Any, path: Sequence[str]) -> Any:
        if not path:
            return change(node) if isinstance(node, list) else node
        if not isinstance(node, dict) or path[0] not in node:
            return node
        return {**node, path[0]: at(node[path[0]], path[1:])}

    rows, files = 0, list[str]()
    for path in paths:
        # page by page, as stage_pages wrote it: the file is a whole extract
        held, changed = 0, f"{path}.erasing"
        output = (contextlib.nullcontext(lambda _: None) if dry_run
                  else storage.text_stream(spark, changed))
        with storage.text_lines(spark, path) as lines, output as write:
            for line in lines:
                page = json.loads(line)
                page["body"] = json.dumps(at(json.loads(page["body"]), steps))
                write(json.dumps(page) + "\n")
        if not dry_run:
            if held:
                storage.delete(spark, path)
                storage.rename(spark, changed, path)
            else:
                storage.delete(spark, changed)
        if held:
            rows, files = rows + held, [*files, path]
    return rows, files


def _erase_pages(spark: SparkSession, place: Place, value: str, dry_run: bool) -> Erased:
    """A REST source's staged pages, rewritten without the value (`_rewrite_pages`)."""
    from etl.readers.rest import PAGES_FILE

    assert place.records_path is not None
    rows, files = _rewrite_pages(
        spark, storage.glob(spark, f"{place.path}/*/*/{PAGES_FILE}"), place.records_path,
        place.field, value.__eq__, place.null_columns, dry_run=dry_run)
    return Erased(place.path, rows, tuple(files))


def _erase_dead_letters(spark: SparkSession, place: Place, job: str, value: str,
                        dry_run: bool, run_id: str) -> Erased:
    """The job's dead letters whose reason names the value, deleted; the DELETE's predicate
    names the reasons by their SHA-256, not by their text."""
    if not table_exists(spark, place.path):
        return Erased(place.path, 0)
    reasons = (read_delta(spark, place.path)
               .where((F.col("job") == job) & (F.instr("reason", value) > 0))
               .select(F.sha2("reason", 256).alias("h")).distinct().collect())
    if not reasons:
        return Erased(place.path, 0)
    hashes = ", ".join(sql_literal(r.h) for r in reasons)
    condition = f"job = {sql_literal(job)} AND sha2(reason, 256) IN ({hashes})"
    erase = DeltaErase(spark, place.path).where(condition).user_metadata(run_id)
    return erase.dry_run() if dry_run else erase.execute()


def erase_place(spark: SparkSession, place: Place, job: str, value: str, *, dry_run: bool,
                run_id: str) -> Erased:
    """The value erased from one place (nothing when the place does not exist yet)."""
    if place.kind == "staged":
        return _erase_staged(spark, place, value, dry_run)
    if place.kind == "dead letters":
        return _erase_dead_letters(spark, place, job, value, dry_run, run_id)
    if not table_exists(spark, place.path):
        return Erased(place.path, 0)
    erase = DeltaErase(spark, place.path).where_equals(place.expression, value).user_metadata(run_id)
    if place.null_columns:
        erase = erase.set_null(*place.null_columns)
    if place.record_nulls:
        erase = erase.set_json_null("record", *place.record_nulls)
    return erase.dry_run() if dry_run else erase.execute()


def recorded(spark: SparkSession, warehouse: Warehouse, job: str) -> DataFrame | None:
    """The job's rows of the erasure ledger (``None`` when nothing was ever erased)."""
    ledger = ERASURES.read(spark, warehouse.records(ERASURES.name))
    return None if ledger is None else ledger.where(F.col("job") == job)


def forget(spark: SparkSession, ctx: RunContext, plan: Plan, subject: str, value: str, *,
           dry_run: bool = False) -> Report:
    """Erase ``value`` of ``subject`` from everything ``plan``'s job keeps (module docstring)."""
    from etl.flow.run import Run

    config = plan.config
    spec = subject_of(config, subject)
    digest = keyed_hash(key_of(config), value)
    report = Report(subject, digest, dry_run)
    ledger = recorded(spark, ctx.warehouse, ctx.job)
    if ledger is not None:
        done = (ledger.where((F.col("subject") == subject) & (F.col("value_hash") == digest))
                .orderBy(F.col("finished_at").desc()).first())
        if done is not None:
            report.already = (done.finished_at, done.run_id)
            return report
    requested = utcnow()
    run = Run(spark, ctx, plan)
    where = places(plan, ctx.warehouse, spec)
    touched = [] if dry_run else _touched_before(spark, run, plan, where, value)
    for place in where:
        erased = erase_place(spark, place, ctx.job, value, dry_run=dry_run, run_id=ctx.run_id)
        report.erased.append((place, erased))
        ctx.log.info("erased" if not dry_run else "would erase", kind=place.kind,
                     table=place.path, rows=erased.rows, files=len(erased.files))
    if dry_run:
        return report
    forget_stored_references(spark, ctx)
    for built, values in touched:
        run.recompute(built, values)
        report.recomputed[built.name] = len(values)
    if touched:
        run.export()
        report.exports = [n for n, e in config.exports.items() if e.path]
    ERASURES.append(spark, ctx.warehouse.records(ERASURES.name), [(
        ctx.job, subject, digest, report.tables, report.files, report.rows, requested, utcnow(),
        ctx.run_id)], run_id=ctx.run_id)
    ctx.note(f"subject {subject} erased (value hash {digest[:16]}…): {report.rows} rows in "
             f"{len(report.tables)} tables, {len(report.files)} files purged")
    return report


def forget_stored_references(spark: SparkSession, ctx: RunContext) -> None:
    """Remove the job's stored typed references (`etl.flow.build.stored_references`): they
    are rows of its bronze tables as they were; the next run types the tables again."""
    from etl.flow.build import stored_references

    folder = stored_references(ctx.warehouse, ctx.job)
    if storage.delete(spark, folder):
        ctx.log.info("stored typed references removed", path=folder)


def _touched_before(spark: SparkSession, run: Run, plan: Plan, where: Sequence[Place],
                    value: str) -> list[tuple[Built, list[Any]]]:
    """For each target built from an erased target: the values of its ``replace_by`` the
    erased rows touch, found as a run's publish would (`Run.touched`), before they change."""
    from etl.flow.build import Batch

    erased = {p.name: p for p in where if p.kind not in ("staged", "bronze", "quarantine",
                                                          "dead letters")}
    built_of = {b.name: b for b in (*plan.from_sources, *plan.from_targets)}
    found: list[tuple[Built, list[Any]]] = []
    for built in plan.from_targets:
        inputs = [i for i in built.inputs if i in erased]
        if not inputs or not built.target.replace_by:
            continue
        tables = {i: read_delta(spark, run.path_of(i)) for i in built.inputs}
        batches = {}
        for name in inputs:
            rows = tables[name].where(_matches(erased[name].expression, value))
            # held in memory: the table changes under a lazy frame
            held = spark.createDataFrame(rows.collect(), rows.schema)
            batches[name] = Batch(built_of[name], held, rows=-1)
        values = run.touched(built, batches, tables, built.target.replace_by)
        if values:
            found.append((built, values))
    return found


@dataclass(frozen=True)
class ErasedValues:
    """The keyed hashes of the values erased from a job, by subject, read from the ledger once
    per run, and the filter that keeps them out of what a run ingests: a source's rows whose key
    hashes to one of them are dropped (``erase: delete``) or have the key and ``also_null``
    columns set to null (``erase: null``). The key is read only when the ledger holds hashes
    for the job."""

    config: JobConfig
    hashes: dict[str, frozenset[str]]
    key: bytes = b""

    @classmethod
    def load(cls, spark: SparkSession, warehouse: Warehouse, config: JobConfig) -> ErasedValues:
        subjects = config.personal_data.subjects
        ledger = recorded(spark, warehouse, config.job.name) if subjects else None
        rows = [] if ledger is None else ledger.select("subject", "value_hash").collect()
        hashes: dict[str, set[str]] = {}
        for row in rows:
            if row.subject in subjects:
                hashes.setdefault(row.subject, set()).add(row.value_hash)
        if not hashes:
            return cls(config, {})
        return cls(config, {k: frozenset(v) for k, v in hashes.items()}, key_of(config))

    def rules(self, source: str) -> list[tuple[Column, tuple[str, ...]]]:
        """For ``source``: (rows holding an erased value, columns to null; none: drop them)."""
        found = []
        for subject, hashes in self.hashes.items():
            spec = self.config.personal_data.subjects[subject]
            where = spec.found_in.get(source)
            if where is None:
                continue
            held = keyed_hash_column(self.key, F.col(f"`{where.column}`").cast("string")).isin(
                sorted(hashes))
            found.append((F.coalesce(held, F.lit(False)), nulled(spec, where)))
        return found

    def apply(self, source: str, df: DataFrame) -> tuple[DataFrame, int]:
        """``df`` without the erased values of ``source``'s subjects, and how many rows held
        one (one Spark action; none when nothing was erased from the source)."""
        rules = self.rules(source)
        if not rules:
            return df, 0
        held = df.where(functools.reduce(lambda a, b: a | b, [r for r, _ in rules])).count()
        if not held:
            return df, 0
        for rows, nulls in rules:
            if nulls:
                df = df.select(*(F.when(rows, F.lit(None).cast(f.dataType))
                                 .otherwise(F.col(f"`{f.name}`")).alias(f.name)
                                 if f.name in nulls else F.col(f"`{f.name}`")
                                 for f in df.schema.fields))
            else:
                df = df.where(~rows)
        return df, held

    def _erased(self, hashes: frozenset[str], value: str) -> bool:
        return keyed_hash(self.key, value) in hashes

    def clean_pages(self, spark: SparkSession, source: str, path: str, records_path: str) -> int:
        """Rewrite a REST source's staged pages at ``path`` (its pages file) without ``source``'s
        erased values, before they are parsed; returns the records that held one."""
        total = 0
        for subject, hashes in self.hashes.items():
            spec = self.config.personal_data.subjects[subject]
            where = spec.found_in.get(source)
            if where is None:
                continue
            total += _rewrite_pages(spark, [path], records_path, where.column,
                                    functools.partial(self._erased, hashes),
                                    nulled(spec, where))[0]
        return total

    def clean_staged(self, spark: SparkSession, source: str, path: str) -> int:
        """Rewrite the staged extract at ``path`` without ``source``'s erased values (its
        manifest recounted); returns the rows that held one."""
        total = 0
        for rows, nulls in self.rules(source):
            total += erase_parquet_folder(spark, path, rows, null_columns=nulls).rows
        if total:
            _recount(spark, path, json.loads(storage.read_text(spark, f"{path}/{MANIFEST}")))
        return total


__all__ = ["ErasedValues", "Place", "Report", "erase_place", "forget", "places", "recorded",
           "subject_of"]
