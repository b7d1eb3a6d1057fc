"""The flow's extract step: what is new in each source lands as read, and what to record once
the targets are published.

By source type (a bronze table holds the personal columns ``personal_data`` declares in their
bronze form, `Plan.protection`, as landed unless declared; staged extracts hold them as landed):

* ``files``: the landed files the ledger has not seen (or whose size or modification time
  changed) are written to the source's bronze table in one commit: an ``append`` source
  replaces those files' rows (so a changed file never duplicates), a ``snapshot`` source
  replaces the table with its newest file. The batch is those rows (``append``) or the whole
  table (``snapshot``); the rows read come from the bronze commit, not from a count.
* ``jdbc``: the rows past the stored watermark are staged (`etl.readers.jdbc.stage_extract`,
  or an earlier run's staged copy with ``--from-staging``) and read back, with ``_run_id``.
* ``rest``: every page is fetched and staged, then parsed (`etl.readers.rest.read_rest`); the
  records that do not fit the schema are quarantined with the batch's typing rejects.
* ``kafka``: the messages published since the last run land in bronze exactly once
  (`etl.flow.kafka.load_kafka`); the batch is the rows bronze gained since the version the
  targets were last built from (its change data feed).
* ``delta_cdf``: the upstream table's changes after the stored version; ``pg_logical``: the
  slot's changes, staged (`etl.flow.cdc`).

Nothing here advances the ledger, a watermark or a slot: `Landing.commit` does, after the
publish, so a run that fails anywhere before reads the same input again.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from etl.config import TargetConfig
from etl.context import RunContext, WriteMetrics, landing_path, utcnow
from etl.erasure import ErasedValues
from etl.errors import EtlError, SourceError
from etl.flow.cdc import feed_table_path, stored_position
from etl.flow.plan import Plan
from etl.readers.delta_cdf import VERSION_COLUMN, read_change_feed
from etl.readers.drift import FilesRead, SetAside, isolate_unreadable, read_files
from etl.readers.files import LandedFile, explain_read_failure, list_files
from etl.readers.json_records import RESCUED
from etl.records import DEAD_LETTERS
from etl.staging import StagedExtract, Staging
from etl.state import FileLedger
from etl.tables import in_predicate, latest_version, read_delta, table_exists
from etl.watermarks import WatermarkStore, WatermarkValue, parse_value
from etl.writers.targets import target_writer

#: The watermark column under which the bronze version a kafka source's targets were built
#: from is stored.
BRONZE_VERSION = "_bronze_version"


@dataclass
class Landed:
    """What one source brought this run.

    ``rows`` is the batch as landed (``None``: nothing new); ``read`` the rows read when known
    without a Spark action; ``columns`` the landed columns (kept as the quarantine's record);
    ``rejected`` records the reader itself could not use (``_errors``, ``_record``)."""

    source: str
    rows: DataFrame | None = None
    read: int | None = None
    columns: tuple[str, ...] = ()
    rejected: DataFrame | None = None
    #: Newly landed: a reference's typing rejects are quarantined only then.
    new: bool = False
    #: Records read and quarantined while landing (a stream's messages that did not parse).
    quarantined: int = 0


@dataclass
class Landing:
    """The extract step of one run (see the module docstring)."""

    spark: SparkSession
    ctx: RunContext
    plan: Plan
    ingested: dict[str, list[LandedFile]] = field(default_factory=dict)
    positions: dict[str, tuple[str, WatermarkValue]] = field(default_factory=dict)
    after_publish: list[Callable[[], None]] = field(default_factory=list)
    staged: bool = False
    set_aside: dict[str, list[SetAside]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        warehouse = self.ctx.warehouse
        self.ledger = FileLedger(self.spark, warehouse.records("state/files"))
        self.store = WatermarkStore(self.spark, warehouse.records("state/watermarks"))
        self.staging = Staging(self.spark, f"{warehouse.root}/staging")
        self._erased: ErasedValues | None = None
        self._erased_lock = threading.Lock()

    @property
    def erased(self) -> ErasedValues:
        """The values `etl forget` erased from the job (the ledger read once per run)."""
        with self._erased_lock:  # sources land side by side
            if self._erased is None:
                self._erased = ErasedValues.load(self.spark, self.ctx.warehouse,
                                                 self.plan.config)
        return self._erased

    def _without_erased(self, name: str, df: DataFrame) -> DataFrame:
        """``df`` without the values erased from source ``name``; the count is noted."""
        kept, held = self.erased.apply(name, df)
        if held:
            self.ctx.note(f"source {name}: {held} rows held erased values and were "
                          "filtered on ingest", source=name, rows=held)
        return kept

    def land(self, name: str, *, as_batch: bool) -> Landed:
        """Land source ``name``; ``as_batch``: its rows feed a target (else it is looked up)."""
        kind = self.plan.source(name).type
        if kind == "files":
            return self._files(name, as_batch)
        if kind == "jdbc":
            return self._jdbc(name)
        if kind == "rest":
            return self._rest(name)
        if kind == "kafka":
            return self._kafka(name)
        return self._changes(name)

    def commit(self) -> None:
        """After the publish: the ingested and set-aside files in the ledger (the latter also
        as dead letters), the positions in the watermarks, replication slots advanced, staged
        days past retention deleted."""
        aside = {name: [(LandedFile(f.path, f.uri, f.size, f.modified_ms), f.reason)
                        for f in files] for name, files in self.set_aside.items()}
        self.ledger.record(self.ctx.job, self.ingested, self.ctx.run_id, set_aside=aside)
        if self.set_aside:
            now = utcnow()
            DEAD_LETTERS.append(self.spark, self.ctx.warehouse.records(DEAD_LETTERS.name), [
                (self.ctx.job, self.ctx.run_id, name, "SetAside", f.reason, now, f.path, f.size,
                 f.modified_ms)
                for name, files in self.set_aside.items() for f in files],
                run_id=self.ctx.run_id)
        for advance in self.after_publish:
            advance()
        self.store.advance(self.ctx.job, self.positions, self.ctx.run_id)
        retention = self.plan.config.retention.days_of("staging")
        if self.staged and not self.ctx.staged_run and retention:
            removed = self.staging.purge(retention, self.ctx.started_at.date(), self.plan.sources)
            if removed:
                self.ctx.log.info("staged extracts past retention deleted", folders=len(removed))

    # -- files ---------------------------------------------------------------------------

    def bronze_path(self, name: str) -> str:
        bronze = self.plan.config.targets[self.plan.source(name).bronze or ""]
        return self.ctx.warehouse.table("bronze", bronze.table)

    def _files(self, name: str, as_batch: bool) -> Landed:
        source = self.plan.source(name)
        path = self.bronze_path(name)
        columns = tuple(source.columns)
        if self.ctx.mode != "incremental":  # a backfill or replay reads what bronze holds
            if not table_exists(self.spark, path):
                raise SourceError(f"source {name}: no bronze table yet at {path}; run the job "
                                  "first")
            return Landed(name, read_delta(self.spark, path) if as_batch else None,
                          columns=columns)
        files = list_files(self.spark, landing_path(self.ctx.landing, source.path),
                           source.pattern)
        discovery = self.ledger.discover(self.ctx.job, name, files)
        for changed in discovery.changed:
            self.ctx.note("landed file changed since it was ingested; ingesting the new version",
                          path=changed.path)
        if discovery.set_aside:
            self.ctx.log.info("files set aside earlier are not read again (etl dead-letters; "
                              "etl state readmit)", source=name, files=len(discovery.set_aside))
        if not discovery.to_ingest:
            if not as_batch and not table_exists(self.spark, path):
                raise SourceError(
                    f"source {name}: no files landed in {source.path} and no bronze table")
            if as_batch:
                self.ctx.log.info("nothing new landed", source=name,
                                  known_files=len(discovery.known))
            return Landed(name, columns=columns)
        snapshot = source.kind == "snapshot"
        to_land = files[-1:] if snapshot else discovery.to_ingest
        metrics, landed = self._ingest(name, to_land, path, replace_files=not snapshot)
        aside = {s.uri for s in self.set_aside.get(name, [])}
        self.ingested[name] = [f for f in discovery.to_ingest if f.uri not in aside]
        if metrics is None:  # every file set aside: bronze is as it was
            if not as_batch and not table_exists(self.spark, path):
                raise SourceError(f"source {name}: no usable file landed in {source.path} and "
                                  "no bronze table")
            return Landed(name, columns=columns)
        rows = read_delta(self.spark, path)
        if not snapshot:
            rows = rows.where(F.col("_source_file").isin([f.uri for f in landed]))
        return Landed(name, rows, metrics.rows_inserted, columns, new=True)

    def _ingest(self, name: str, files: list[LandedFile], path: str, *,
                replace_files: bool) -> tuple[WriteMetrics | None, list[LandedFile]]:
        """Land the usable ``files`` in bronze in one commit: replace those files' rows, or (a
        snapshot) the whole table, whose newest file must hold rows. Files that cannot be used
        are set aside (`etl.readers.drift`), also those whose rows Spark fails to read: the
        write is then redone without them. Returns the commit's metrics (``None`` when every
        file was set aside) and the files landed."""
        source = self.plan.source(name)
        bronze_name = source.bronze or ""
        target = self.plan.config.targets[bronze_name]
        known = ({f.name: f.dataType.simpleString() for f in read_delta(self.spark, path).schema}
                 if source.format == "parquet" and table_exists(self.spark, path) else {})

        def read(batch: list[LandedFile]) -> FilesRead:
            found = read_files(self.spark, batch, source, run_id=self.ctx.run_id,
                               ingested_at=self.ctx.started_at, known_types=known)
            if found.df is not None:
                found.df = self._without_erased(name, found.df)
            return found

        found = read(files)
        for note in found.notes:
            self.ctx.note(f"source {name}: {note}", source=name)
        self._set_aside(name, found.set_aside)
        if found.df is None:
            return None, []
        try:
            metrics = self._write_bronze(name, target, found, replace_files)
        except EtlError:
            raise
        except Exception as exc:  # Spark raises a file's read errors when the write runs
            def alone(file: LandedFile) -> DataFrame:
                df = read([file]).df
                assert df is not None  # the file was usable when the batch was read
                return df

            bad = isolate_unreadable(found.files, alone)
            if not bad:
                raise explain_read_failure(name, exc) from exc
            self._set_aside(name, bad)
            unusable = {b.uri for b in bad}
            found = read([f for f in found.files if f.uri not in unusable])
            if found.df is None:
                return None, []
            metrics = self._write_bronze(name, target, found, replace_files)
        self.ctx.record_write(metrics)
        return metrics, found.files

    def _write_bronze(self, name: str, target: TargetConfig, found: FilesRead,
                      replace_files: bool) -> WriteMetrics:
        bronze_name = self.plan.source(name).bronze or ""
        if found.widens:  # _rescued_data or evolved columns join bronze's schema
            target = dataclasses.replace(target, schema_policy="evolve")
        assert found.df is not None
        if replace_files:
            writer = target_writer(self.spark, self.ctx, bronze_name, target, replace_where=(
                in_predicate("_source_file", [f.uri for f in found.files])))
        else:
            if found.df.isEmpty() and not (target.allow_empty or self.ctx.allow_empty):
                raise SourceError(
                    f"source {name}: the newest file {found.files[-1].path} holds no rows; "
                    f"replacing bronze/{target.table} with it would empty the table "
                    f"(allow it with targets.{bronze_name}.allow_empty: true or --allow-empty)")
            writer = target_writer(self.spark, self.ctx, bronze_name, target).overwrite_schema()
        metrics: WriteMetrics = writer.execute(found.df.transform(self.plan.protection(
            bronze_name)))
        return metrics

    def _set_aside(self, name: str, files: list[SetAside]) -> None:
        """Files that cannot be used: the run fails (``on_bad_file: fail``) or goes on without
        them; they are recorded after the publish (`commit`)."""
        if not files:
            return
        listed = "; ".join(f"{f.path}: {f.reason}" for f in files)
        if self.plan.source(name).schema_drift.on_bad_file == "fail":
            raise SourceError(f"source {name}: files that cannot be used: {listed} "
                              "(schema_drift.on_bad_file: fail)")
        self.set_aside.setdefault(name, []).extend(files)
        for f in files:
            self.ctx.files_set_aside.append(f"{name}: {f.path.rsplit('/', 1)[-1]}: {f.reason}")
        self.ctx.note(f"source {name}: {len(files)} files set aside: {listed}", source=name)

    # -- databases and APIs --------------------------------------------------------------

    def _jdbc(self, name: str) -> Landed:
        from etl.readers.jdbc import stage_extract

        source = self.plan.source(name)
        assert source.jdbc is not None
        staged: StagedExtract
        if self.ctx.staged_run:
            staged = self.staging.read(name, self.ctx.staged_run)
        else:
            staged = stage_extract(
                self.spark, source.jdbc, self.staging, source_name=name, run_id=self.ctx.run_id,
                ingest_date=self.ctx.started_at.date(),
                watermark=self.store.get(self.ctx.job, name), started_at=self.ctx.started_at)
            self.staged = True
            mark = staged.manifest.get("watermark") or {}
            if mark.get("high") is not None:
                self.positions[name] = (mark["column"], parse_value(mark["high"], mark["kind"]))
        held = self.erased.clean_staged(self.spark, name, staged.path)
        if held:
            self.ctx.note(f"source {name}: {held} staged rows held erased values and were "
                          "filtered on ingest", source=name, rows=held)
            staged = dataclasses.replace(self.staging.read(name, staged.run_id),
                                         rejected=staged.rejected)
        self.ctx.log.info("source extracted", source=name, path=staged.path, **{
            k: v for k, v in staged.manifest.items() if k in ("rows", "query", "watermark")})
        read = int(staged.manifest["rows"])
        rows = staged.df.withColumn("_run_id", F.lit(self.ctx.run_id))
        self._to_bronze(name, rows)
        rejected = staged.rejected
        if rejected is not None:
            beyond = rejected.count()
            if beyond:
                column = (source.jdbc.incremental.column if source.jdbc.incremental else "")
                self.ctx.note(f"source {name}: {beyond} rows with {column} after the run's start "
                              "plus the allowed skew were quarantined; the watermark stays below "
                              "them", source=name, rows=beyond)
            else:
                rejected = None
        new = read > 0 or rejected is not None
        return Landed(name, rows if new else None, read, tuple(staged.df.columns),
                      rejected, new=new)

    def _rest(self, name: str) -> Landed:
        from etl.readers.rest import read_rest

        source = self.plan.source(name)
        assert source.rest is not None
        rest, held = source.rest, 0

        def clean(pages: str) -> None:
            nonlocal held
            held = self.erased.clean_pages(self.spark, name, pages, rest.records_path)

        extract = read_rest(self.spark, rest, source_name=name, staging=self.staging,
                            ctx=self.ctx, watermark=self.store.get(self.ctx.job, name),
                            extra=source.schema_drift.extra, prepare_pages=clean)
        if held:
            self.ctx.note(f"source {name}: {held} records held erased values and were removed "
                          "from the staged pages on ingest", source=name, rows=held)
        self.staged = True
        if extract.watermark is not None and extract.watermark.high is not None:
            self.positions[name] = (extract.watermark.column, extract.watermark.high)
        if extract.beyond:
            field = source.rest.incremental.field if source.rest.incremental else ""
            self.ctx.note(f"source {name}: {extract.beyond} records with {field} after the run's "
                          "start plus the allowed skew were quarantined; the watermark stays "
                          "below them", source=name, rows=extract.beyond)
        rows = extract.df.withColumn("_run_id", F.lit(self.ctx.run_id))
        self._to_bronze(name, rows)
        return Landed(name, rows, None, tuple(extract.df.columns), extract.rejected, new=True)

    def _to_bronze(self, name: str, rows: DataFrame) -> None:
        """Append a record source's rows to its bronze table, when it has one."""
        bronze = self.plan.source(name).bronze
        if bronze is None or self.ctx.staged_run:
            return
        target = self.rescuing(name, self.plan.config.targets[bronze])
        metrics = target_writer(self.spark, self.ctx, bronze, target).execute(
            rows.transform(self.plan.protection(bronze)))
        self.ctx.record_write(metrics)

    def rescuing(self, name: str, target: TargetConfig) -> TargetConfig:
        """``target`` (a record source's bronze), allowed to gain ``_rescued_data`` when the
        source rescues unknown fields and the table predates that column."""
        path = self.bronze_path(name)
        if (self.plan.source(name).schema_drift.extra not in ("rescue", "evolve")
                or not table_exists(self.spark, path)
                or RESCUED in read_delta(self.spark, path).columns):
            return target
        return dataclasses.replace(target, schema_policy="evolve")

    # -- streams and change feeds --------------------------------------------------------

    def _kafka(self, name: str) -> Landed:
        """Messages into bronze (exactly once), then the rows bronze gained since the version
        this job's targets were last built from."""
        from etl.flow.kafka import load_kafka

        source = self.plan.source(name)
        assert source.kafka is not None and source.bronze is not None
        target = self.plan.config.targets[source.bronze]
        # the rows bronze gains are read back from its change data feed
        target = dataclasses.replace(self.rescuing(name, target), properties={
            **target.properties, "delta.enableChangeDataFeed": "true"})
        protect = self.plan.protection(source.bronze)
        result = load_kafka(self.spark, self.ctx, source.kafka, source_name=name,
                            target_name=source.bronze, target=target,
                            extra=source.schema_drift.extra,
                            prepare=lambda batch: protect(self._without_erased(name, batch)))
        path = self.bronze_path(name)
        rejected = result.rows_quarantined
        if not table_exists(self.spark, path):
            return Landed(name, quarantined=rejected)
        stored = stored_position(self.store.get(self.ctx.job, name), BRONZE_VERSION)
        end = latest_version(self.spark, path)
        if stored is not None and end <= stored:
            return Landed(name, quarantined=rejected)
        if stored is None:
            rows = self.spark.read.format("delta").option("versionAsOf", end).load(path)
        else:
            rows = (self.spark.read.format("delta").option("readChangeFeed", "true")
                    .option("startingVersion", stored + 1).option("endingVersion", end).load(path)
                    .where(F.col("_change_type") == "insert")
                    .drop("_change_type", "_commit_version", "_commit_timestamp"))
        self.positions[name] = (BRONZE_VERSION, end)
        return Landed(name, rows, None, tuple(rows.columns), new=True, quarantined=rejected)

    def _changes(self, name: str) -> Landed:
        """A change feed's new events as envelopes (see `etl.flow.cdc`)."""
        source = self.plan.source(name)
        column = VERSION_COLUMN if source.type == "delta_cdf" else "lsn"
        stored = stored_position(self.store.get(self.ctx.job, name), column)
        if source.type == "delta_cdf":
            feed = read_change_feed(self.spark, feed_table_path(self.ctx.warehouse, source),
                                    source_name=name, last_version=stored)
            if feed.end is None:
                return Landed(name)
            self.positions[name] = (column, feed.end)
            return Landed(name, feed.df, None, (), new=True)
        from etl.readers.pg_logical import PgLogicalReader

        assert source.jdbc is not None and source.cdc is not None
        reader = PgLogicalReader(self.spark, name, source.jdbc, source.cdc.slot)
        slot = reader.extract(self.staging, self.ctx.run_id, self.ctx.started_at.date(),
                              snapshot=stored is None)
        self.staged = True
        self.after_publish.append(lambda: reader.advance(slot.upto))
        if stored != slot.position:
            self.positions[name] = (column, slot.position)
        if not (slot.changes or slot.snapshot_rows):
            return Landed(name)
        return Landed(name, slot.df, None, (), new=True)


def replayed(spark: SparkSession, ctx: RunContext, plan: Plan, source: str,
             quarantined: DataFrame) -> Landed:
    """Quarantined rows of a files ``source`` as landed again (``etl replay``): ``record`` is
    the row as landed; each row keeps its landed file and that file's modification time from
    bronze, so a newer landed version of a key still wins."""
    from pyspark.sql import types as T

    spec = plan.source(source)
    if spec.type != "files":
        raise EtlError(f"source {source}: replaying quarantined rows needs a files source (its "
                       f"records are the landed text), not {spec.type}")
    record = T.StructType([T.StructField(c, T.StringType()) for c in spec.columns])
    bronze = read_delta(spark, Landing(spark, ctx, plan).bronze_path(source))
    modified = bronze.groupBy("_source_file").agg(F.max("_source_modified").alias("_modified"))
    rows = (
        quarantined.select(F.from_json("record", record).alias("r"),
                           F.col("source_file").alias("_source_file"), "quarantined_at")
        .join(modified, "_source_file", "left")
        .select("r.*", F.lit(None).cast("string").alias("_corrupt_record"), "_source_file",
                F.coalesce("_modified", "quarantined_at").alias("_source_modified"),
                F.lit(ctx.run_id).alias("_run_id"),
                F.lit(ctx.started_at).cast("timestamp").alias("_ingested_at"))
    )
    return Landed(source, rows, quarantined.count(), tuple(spec.columns), new=True)


__all__ = ["BRONZE_VERSION", "Landed", "Landing", "replayed"]
