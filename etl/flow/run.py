"""One run of a job's flow: extract, transform, audit, publish, export, then the records.

=========  ===================================================================================
step       what happens
=========  ===================================================================================
extract    every source lands what is new (`etl.flow.landing`): ``files`` sources side by
           side (`LANDING_THREADS`: their bronze commits wait on the driver, not on data),
           then the others in the order of the YAML; a run with nothing new in any source
           that feeds a target stops here (references that changed are still ingested and
           recorded)
transform  references typed side by side, once per version of their bronze table
           (`TypedReferences`: kept for the session; stored for later runs by a run that did
           not change them; their new rows' rejects quarantined, with one action counting
           them), then each target built from a source (`etl.flow.build`), books kept
audit      every target's rules (`etl.quality.audit`), all targets before any gate; rows
           failing a ``quarantine: true`` rule move from loaded to quarantined
publish    each target in dependency order, one commit each (`etl.writers.targets`):
           targets built from a source as their mode says (a dated run replaces its dates
           instead); targets built from targets for the values the run touched, their
           personal columns in their layer's form (`Plan.protection`) before their audit
export     ``exports`` copies written, after the publish
(records)  ledger, watermarks, slots, staging retention (`Landing.commit`); the runner then
           writes the run record and the lineage events
=========  ===================================================================================

A failure anywhere before the records leaves the ledger, watermarks and slots where they were:
the next run reads the same input again, and bronze's replace-by-file, MERGE by key with
sequence and replace-by-value make that redo harmless.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from etl.config import JobConfig
from etl.context import RunContext
from etl.errors import ConfigError, EtlError
from etl.faults import kill_point
from etl.flow.build import (
    TYPED_REFERENCES,
    Batch,
    build,
    dates_of,
    reference,
    row_counts,
    rows_for,
    typed,
)
from etl.flow.landing import Landed, Landing
from etl.flow.plan import Built, Plan, make_plan
from etl.quality import AuditResult, audit
from etl.session import in_threads
from etl.tables import in_predicate, read_delta, sql_literal, table_exists, table_name
from etl.transforms.cleaning import split_rejected
from etl.writers.cdc import CdcApply
from etl.writers.quarantine import write_quarantine
from etl.writers.targets import write_target

#: How many sources land, and how many references are typed, at a time.
LANDING_THREADS = 4


@dataclass(frozen=True)
class Replay:
    """Rows to send through the flow instead of ``source``'s extract (``etl replay``)."""

    source: str
    landed: Landed


class Run:
    """The steps of one run (see the module docstring)."""

    def __init__(self, spark: SparkSession, ctx: RunContext, plan: Plan,
                 replay: Replay | None = None):
        self.spark, self.ctx, self.plan, self.replay = spark, ctx, plan, replay
        self.config: JobConfig = plan.config
        self.landing = Landing(spark, ctx, plan)
        self.landed: dict[str, Landed] = {}
        self.refs: dict[str, DataFrame] = {}
        #: Whether references typed here are stored for later runs (`TypedReferences`); a
        #: reference that lands rows this run is not.
        self.store_references = True

    # -- extract ---------------------------------------------------------------------------

    def extract(self) -> list[Built]:
        """Land every source; the targets built from a source that brought rows."""
        batch_sources = set(self.plan.batch_sources)
        with self.ctx.step("extract") as step:
            replayed = set(batch_sources) if self.replay is not None else set()
            landed_files = self._land_files(
                [name for name in self.plan.sources
                 if self.plan.source(name).type == "files" and name not in replayed],
                batch_sources)
            for name in self.plan.sources:
                if name in replayed:
                    assert self.replay is not None
                    self.landed[name] = (self.replay.landed if name == self.replay.source
                                         else Landed(name))
                elif name in landed_files:
                    self.landed[name] = landed_files[name]
                else:
                    self.landed[name] = self.landing.land(name, as_batch=name in batch_sources)
            step.rows_out = sum(len(files) for files in self.landing.ingested.values()) or sum(
                landed.read or 0 for landed in self.landed.values())
        self._count_landing_only()
        return [b for b in self.plan.from_sources if self.landed[b.source or ""].rows is not None]

    def _land_files(self, names: list[str], batch_sources: set[str]) -> dict[str, Landed]:
        """Land the ``files`` sources ``names`` side by side; their bronze commits are
        recorded in the order of the YAML, whichever finished first."""
        written = len(self.ctx.writes)
        landed = dict(zip(names, in_threads(
            lambda name: self.landing.land(name, as_batch=name in batch_sources), names,
            threads=LANDING_THREADS), strict=True))
        order = {self._bronze_table(name): i for i, name in enumerate(names)}
        self.ctx.writes[written:] = sorted(self.ctx.writes[written:],
                                           key=lambda w: order.get(w.table, len(order)))
        return landed

    def _bronze_table(self, name: str) -> str | None:
        """Source ``name``'s bronze table as its writes name it (`table_name`)."""
        return table_name(self.landing.bronze_path(name)) if self.plan.source(name).bronze else None

    def _count_landing_only(self) -> None:
        """Sources that feed no target and are no reference: their rows count as loaded when
        they land (bronze is their target)."""
        used = set(self.plan.batch_sources) | set(self.plan.references)
        for name, landed in self.landed.items():
            if name in used or not landed.new:
                continue
            bronze = self._bronze_table(name)
            rows = sum(w.rows_inserted for w in self.ctx.writes if bronze and w.table == bronze)
            self.ctx.rows_read += rows + landed.quarantined
            self.ctx.rows_loaded += rows
            self.ctx.rows_quarantined += landed.quarantined

    # -- transform -------------------------------------------------------------------------

    def references(self) -> dict[str, DataFrame]:
        """Every reference, typed; the rejects of rows landed this run are quarantined (one
        action counts them all)."""
        rejects = {}
        names = list(self.plan.references)
        self.refs.update(zip(names, in_threads(
            lambda name: self._whole(name, self.landed[name]), names, threads=LANDING_THREADS),
            strict=True))
        for name in names:
            landed = self.landed[name]
            if landed.new and landed.rows is not None:
                rejects[name] = split_rejected(typed(self.plan, self.ctx, landed, batch=False))[1]
        for name, count in row_counts(rejects).items():
            if count:
                written = write_quarantine(rejects[name], self.ctx,
                                           self.plan.quarantine_table(name),
                                           list(self.landed[name].columns))
                self.ctx.note("reference rows quarantined", source=name, rows=written)
        return self.refs

    def _whole(self, name: str, landed: Landed) -> DataFrame:
        """A reference's whole current table, typed: its bronze table (typed once per version
        of it, `TYPED_REFERENCES`), else what it landed."""
        bronze = self.plan.source(name).bronze
        if bronze is None:
            if landed.rows is None:
                raise EtlError(f"source {name}: a reference without a bronze table brought no "
                               "rows this run")
            return reference(self.plan, self.ctx, landed)[0]
        path = self.ctx.warehouse.table("bronze", self.config.targets[bronze].table)
        return TYPED_REFERENCES.get(self.spark, self.plan, self.ctx, name, path,
                                    store=self.store_references and not landed.new)

    def transform(self, todo: list[Built]) -> dict[str, Batch]:
        batches = {}
        with self.ctx.step("transform") as step:
            refs = self.references()
            for built in todo:
                merging = table_exists(self.spark, self.path_of(built.name))
                batches[built.name] = build(self.spark, self.ctx, self.plan, built,
                                            self.landed[built.source or ""], refs, merging=merging)
            step.rows_in, step.rows_out = self.ctx.rows_read, self.ctx.rows_loaded
            self.ctx.check_reconciled()
        return batches

    # -- audit -----------------------------------------------------------------------------

    def audit(self, batches: Mapping[str, Batch]) -> None:
        """Every batch's rules, then every gate."""
        with self.ctx.step("audit") as step:
            step.rows_in = self.ctx.rows_loaded
            results = [self._audit(batch, self._record_columns(batch.built))
                       for batch in batches.values()]
            self.ctx.check_reconciled()
            step.rows_out = self.ctx.rows_loaded
            for result in results:
                result.raise_if_failed()

    def _record_columns(self, built: Built) -> list[str]:
        return list(self.landed[built.source].columns) if built.source else []

    def _audit(self, batch: Batch, record_columns: list[str]) -> AuditResult:
        rules = self.config.quality.get(batch.built.name, [])
        result = audit(self.spark, self.ctx, batch.built.table, batch.df, rules,
                       references=self.refs,
                       record_columns=[c for c in record_columns if c in batch.df.columns])
        if result.quarantined:
            self.ctx.rows_quarantined += result.quarantined
            self.ctx.rows_loaded -= result.quarantined
            batch.rows -= result.quarantined
            batch.df = result.batch
            batch.touched = {}  # recomputed from the rows that passed, when needed
        return result

    # -- publish ---------------------------------------------------------------------------

    def path_of(self, name: str) -> str:
        target = self.config.targets[name]
        return self.ctx.warehouse.table(target.layer, target.table)

    def _dated(self, column: str) -> str:
        first, last = dates_of(self.ctx)
        return f"`{column}` BETWEEN {sql_literal(first)} AND {sql_literal(last)}"

    def publish(self, batches: Mapping[str, Batch]) -> dict[str, Batch]:
        """Every target, inputs first; returns the batches published (by target name)."""
        dated = self.ctx.mode == "backfill" and bool(self.config.job.date_column)
        if dated:
            self._refuse_empty(batches)
        published: dict[str, Batch] = {}
        with self.ctx.step("publish") as step:
            for name, batch in batches.items():
                if batch.rows == 0 and not dated:
                    self.ctx.log.info("nothing to publish", table=batch.built.table)
                    continue
                self._write(batch, dated)
                published[name] = batch
            for built in self.plan.from_targets:
                derived = self._derive(built, published, dated)
                if derived is not None:
                    published[built.name] = derived
            step.rows_out = self.ctx.rows_loaded
        return published

    def _refuse_empty(self, batches: Mapping[str, Batch]) -> None:
        """A dated run replaces its dates: with no rows that would delete them."""
        for batch in batches.values():
            if batch.rows or self.ctx.allow_empty or batch.built.target.allow_empty:
                continue
            first, last = dates_of(self.ctx)
            raise EtlError(
                f"the run for {first}..{last} found no rows for {batch.built.table}: publishing "
                "would delete those dates from it and the tables built from it; nothing was "
                f"written (run with --allow-empty, or set targets.{batch.built.name}.allow_empty"
                ", to do that)")

    def _write(self, batch: Batch, dated: bool) -> None:
        built, target = batch.built, batch.built.target
        if target.mode == "apply_changes":
            self._apply_changes(batch)
            return
        replace = self._dated(self.config.job.date_column) if dated else None
        write_target(self.spark, self.ctx, built.name, target, batch.df, replace_where=replace,
                     keys_unique=batch.deduplicated)

    def _apply_changes(self, batch: Batch) -> None:
        from etl.flow.cdc import cdc_writer, tombstones_path

        source = self.plan.source(batch.built.source or "")
        assert source.cdc is not None
        writer: CdcApply = cdc_writer(
            self.spark, source.cdc, self.path_of(batch.built.name),
            tombstones=tombstones_path(self.ctx.warehouse, self.ctx.job, batch.built.source or ""))
        self.ctx.record_write(writer.user_metadata(self.ctx.run_id).execute(batch.df))

    def _derive(self, built: Built, published: Mapping[str, Batch], dated: bool) -> Batch | None:
        """A target built from targets, for the values of ``replace_by`` its inputs' batches
        touched (all of it without ``replace_by``); ``None`` when no input changed."""
        changed = [published[i] for i in built.inputs if i in published]
        if not changed:
            return None
        target = built.target
        tables = {i: read_delta(self.spark, self.path_of(i)) for i in built.inputs}
        predicate = None
        if target.replace_by:
            column = target.replace_by
            if dated and column == self.config.job.date_column:
                predicate = self._dated(column)
            else:
                values = self.touched(built, published, tables, column)
                if not values:
                    self.ctx.log.info("no value to recompute", table=built.table, column=column)
                    return None
                predicate = in_predicate(column, values)
        return self._rebuild(built, tables, predicate)

    def recompute(self, built: Built, values: list[Any]) -> Batch:
        """Rebuild ``built`` (a target built from targets, with ``replace_by``) for ``values``
        from its inputs as they are now: ``etl forget`` after erasing rows of an input."""
        tables = {i: read_delta(self.spark, self.path_of(i)) for i in built.inputs}
        return self._rebuild(built, tables, in_predicate(built.target.replace_by or "", values))

    def _rebuild(self, built: Built, tables: Mapping[str, DataFrame],
                 predicate: str | None) -> Batch:
        """Build ``built`` from ``tables``, audit it and write the rows ``predicate`` selects
        (replacing them in an ``overwrite`` target)."""
        target = built.target
        if built.transform is not None:
            frame = built.transform(**tables)
        else:
            frame = tables[built.inputs[0]]
        if predicate is not None:
            if target.replace_by not in frame.columns:
                raise ConfigError(
                    f"column {target.replace_by!r} is not in the rows built for {built.table} "
                    f"(columns: {', '.join(frame.columns)})", file=self.plan.job_file,
                    key=f"targets.{built.name}.replace_by")
            frame = frame.where(predicate)
        batch = Batch(built, frame.transform(self.plan.protection(built.name)), rows=-1)
        rules = self.config.quality.get(built.name, [])
        if rules:
            self._audit(batch, []).raise_if_failed()
        write_target(self.spark, self.ctx, built.name, target, batch.df,
                     replace_where=predicate if target.mode == "overwrite" else None)
        return batch

    def touched(self, built: Built, published: Mapping[str, Batch],
                 tables: Mapping[str, DataFrame], column: str) -> list[Any]:
        """The values of ``column`` the inputs' batches touched."""
        if built.touched is not None:
            batches = {i: published[i].df if i in published else tables[i].limit(0)
                       for i in built.inputs}
            found = built.touched(batches=batches, tables=tables)
            return [r[0] for r in found.select(column).distinct().collect()]
        values: set[Any] = set()
        for name in built.inputs:
            batch = published.get(name)
            if batch is None:
                continue
            if column not in batch.df.columns:
                raise ConfigError(
                    f"column {column!r} is not in the batch of {name}: name a function that "
                    f"computes the values touched (targets.{built.name}.touched)",
                    file=self.plan.job_file, key=f"targets.{built.name}.replace_by")
            if column in batch.touched:
                values.update(batch.touched[column])
            else:
                values.update(r[0] for r in batch.df.select(column).distinct().collect())
        return sorted(values, key=lambda v: (v is None, v))

    # -- export ----------------------------------------------------------------------------

    def export(self) -> None:
        exports = {n: e for n, e in self.config.exports.items() if e.path}
        if not exports:
            return
        with self.ctx.step("export"):
            for name, export in exports.items():
                df = read_delta(self.spark, self.path_of(export.input))
                if export.order_by:
                    df = df.orderBy(*export.order_by)
                if export.single_file:
                    df = df.coalesce(1)
                (df.write.mode("overwrite").format(export.format).options(**export.options)
                 .save(f"{export.path.rstrip('/')}/{name}"))


def run_flow(spark: SparkSession, ctx: RunContext, config: JobConfig, *,
             plan: Plan | None = None, replay: Replay | None = None) -> None:
    """Run the flow of ``config``'s job (see the module docstring): the runner's entry for a
    job without ``job.entrypoint``."""
    run = Run(spark, ctx, plan or make_plan(config), replay)
    todo = run.extract()
    if not todo:
        ctx.log.info("nothing new to load")
        run.landing.commit()
        return
    batches = run.transform(todo)
    try:
        run.audit(batches)
        published = run.publish(batches)
        kill_point("after_publish")
        if published:
            run.export()
        run.landing.commit()
    finally:
        for batch in batches.values():
            batch.release()


def preview(spark: SparkSession, ctx: RunContext, config: JobConfig,
            target: str | None = None) -> DataFrame:
    """The rows a dated run of ``ctx``'s dates would publish to ``target`` (default: the first
    target built from a source), before the audit; reads bronze and writes nothing."""
    from etl.flow.build import KEEP, VERSIONS

    plan = make_plan(config)
    built = next((b for b in plan.from_sources if target in (None, b.name)), None)
    if built is None or built.source is None:
        raise ConfigError(f"job {config.job.name} has no target {target!r} built from a source")
    dates_of(ctx)
    run = Run(spark, ctx, plan)
    run.store_references = False
    landed = {name: run.landing.land(name, as_batch=name == built.source)
              for name in [*plan.references, built.source]}
    run.landed = landed
    refs = run.references()
    valid, _ = split_rejected(typed(plan, ctx, landed[built.source]))
    out = rows_for(plan, built, valid, refs)
    if KEEP in out.columns:
        out = out.where(F.col(KEEP)).drop(KEEP)
    return out.drop(VERSIONS)


def references(spark: SparkSession, ctx: RunContext, config: JobConfig) -> dict[str, DataFrame]:
    """The job's references typed as its targets and rules see them; reads only."""
    plan = make_plan(config)
    run = Run(spark, ctx, plan)
    for name in plan.references:
        bronze = plan.source(name).bronze
        if bronze is None:
            raise ConfigError(f"reference {name!r} has no bronze table to read",
                              file=plan.job_file, key=f"sources.{name}.bronze")
        path = ctx.warehouse.table("bronze", config.targets[bronze].table)
        if not table_exists(spark, path):
            raise EtlError(f"source {name}: no bronze table yet at {path}; run the job first")
        run.refs[name] = TYPED_REFERENCES.get(spark, plan, ctx, name, path, store=False)
    return run.refs


def replay_entry(config: JobConfig, table: str, quarantined: DataFrame) -> Any:
    """The runner entry (``entry`` of `etl.runner.run_job`) that sends ``quarantined`` rows of
    ``quarantine/<table>`` through the flow: typing, the target's transform, the gate and the
    publish, as a normal run would; rows that fail again are quarantined under the replay."""
    from etl.flow.landing import replayed

    plan = make_plan(config)
    sources = [s for s in plan.batch_sources if plan.quarantine_table(s) == table]
    if not sources:
        tables = sorted({plan.quarantine_table(s) for s in plan.batch_sources})
        raise ConfigError(f"job {config.job.name} quarantines no source's rows in {table!r} "
                          f"(its quarantine tables: {', '.join(tables)})")

    def entry(spark: SparkSession, ctx: RunContext, config: JobConfig) -> None:
        landed = replayed(spark, ctx, plan, sources[0], quarantined)
        run_flow(spark, ctx, config, plan=plan, replay=Replay(sources[0], landed))

    return entry


__all__ = ["Replay", "Run", "preview", "references", "replay_entry", "run_flow"]
