"""The notebook API: ``import etl`` then ``etl.run("flights", date="2013-01-02")``.

For ad-hoc work in a notebook or a REPL (local Jupyter, EMR Studio, Dataproc Jupyter). Every
function takes the job's name (and ``env``, ``overrides``, ``conf_dir`` like ``etl run``), reuses
the SparkSession the notebook already has (`SparkSession.getActiveSession`), and builds one with
the project's factory (`etl.session.get_spark`) only when there is none. Nothing here forks the
library's logic: runs go through `etl.runner.run_job` (run record, lineage, quality gate as for
``etl run``), checks through `etl.quality.evaluate`, sources through the file readers.

Example::

    import etl
    ctx = etl.run("flights", date="2013-01-02")        # a backfill of one day
    etl.table("gold/carrier_daily_performance").show()
    etl.check("silver/flights", job="flights").show()   # rule results, nothing stored
    etl.preview("flights", date="2013-01-02").count()   # silver rows, nothing written
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from etl.config import JobConfig, default_env, load_job_config, load_settings
from etl.context import RunContext, Warehouse, landing_path
from etl.errors import ConfigError, SourceError

DateLike = dt.date | str | None

_LAYERS = ("bronze", "silver", "gold", "quarantine", "_etl")

CHECK_SCHEMA = T.StructType(
    [
        T.StructField("table", T.StringType(), False),
        T.StructField("rule", T.StringType(), False),
        T.StructField("severity", T.StringType(), False),
        T.StructField("passed", T.BooleanType(), False),
        T.StructField("constraint", T.StringType(), False),
        T.StructField("value", T.DoubleType(), True),
        T.StructField("rows_failed", T.LongType(), True),
        T.StructField("message", T.StringType(), True),
    ]
)


def load_config(
    job: str,
    *,
    env: str | None = None,
    overrides: Sequence[str] = (),
    conf_dir: str | os.PathLike[str] | None = None,
) -> JobConfig:
    """The typed configuration of ``job`` (base.yml, jobs/JOB.yml, ENV.yml, then ``overrides``
    as ``KEY=VALUE`` strings), exactly as ``etl run`` reads it."""
    return load_job_config(job, env=env or default_env(), overrides=list(overrides),
                           directory=conf_dir)


def spark(env: str | None = None, conf_dir: str | os.PathLike[str] | None = None) -> SparkSession:
    """The active SparkSession, else a new one built from ``env``'s ``spark`` settings."""
    from etl.session import get_spark

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    return get_spark(load_settings(env=env or default_env(), directory=conf_dir).spark)


def _date(value: DateLike, argument: str) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{argument} must be a date or 'YYYY-MM-DD', got {value!r}") from None


def _dates(date: DateLike, start: DateLike, end: DateLike) -> tuple[dt.date | None, dt.date | None]:
    """``date`` or ``start``/``end`` -> ``(date_from, date_to)``, checked on the driver."""
    from etl.runner import check_dates

    if date is not None and (start is not None or end is not None):
        raise ConfigError("give either date or start/end, not both")
    first = _date(date, "date") if date is not None else _date(start, "start")
    last = _date(date, "date") if date is not None else _date(end, "end")
    check_dates(first, last)
    return first, last


def run(
    job: str,
    *,
    date: DateLike = None,
    start: DateLike = None,
    end: DateLike = None,
    env: str | None = None,
    overrides: Sequence[str] = (),
    conf_dir: str | os.PathLike[str] | None = None,
) -> RunContext:
    """Run ``job`` like ``etl run``: incremental without dates, else a backfill of ``date`` or
    ``start``..``end`` (inclusive). Returns the run's context (``rows_read``, ``rows_loaded``,
    ``rows_quarantined``, ``writes``, ``steps``, ``quality``); the run record, lineage and
    quality metrics are written as for the command line, and a failed quality gate raises
    `etl.errors.QualityGateError`. Logs go to stderr as configured by the job's ``logging``."""
    from etl import logs
    from etl.runner import run_job

    first, last = _dates(date, start, end)
    config = load_config(job, env=env, overrides=overrides, conf_dir=conf_dir)
    logs.configure(config.logging.format, config.logging.level)
    return run_job(config, spark=spark(env, conf_dir), date_from=first, date_to=last)


def _warehouse(env: str | None, conf_dir: str | os.PathLike[str] | None, overrides: Sequence[str]) -> Warehouse:
    settings = load_settings(env=env or default_env(), overrides=list(overrides),
                             directory=conf_dir)
    return Warehouse.at(settings.paths.warehouse)


def table(
    name: str,
    *,
    env: str | None = None,
    overrides: Sequence[str] = (),
    conf_dir: str | os.PathLike[str] | None = None,
) -> DataFrame:
    """The warehouse table ``name``: ``layer/table`` (``silver/flights``), ``quarantine/<table>``
    or one of the project's records (``_etl/runs``, ``_etl/quality_metrics``)."""
    from etl.tables import read_delta, table_exists

    layer, _, rest = name.partition("/")
    if layer not in _LAYERS or not rest:
        raise ConfigError(f"table must be layer/name with layer one of {', '.join(_LAYERS)}, "
                          f"got {name!r}")
    path = f"{_warehouse(env, conf_dir, overrides).root}/{name}"
    session = spark(env, conf_dir)
    if not table_exists(session, path):
        raise SourceError(f"table {name}: no Delta table at {path}")
    return read_delta(session, path)


def read(
    source: str,
    *,
    job: str,
    env: str | None = None,
    overrides: Sequence[str] = (),
    conf_dir: str | os.PathLike[str] | None = None,
) -> DataFrame:
    """The landed files of ``job``'s files source ``source`` as the job reads them (configured
    columns as strings, ``_corrupt_record``, ``_source_file`` ...), whether or not they were
    ingested already; nothing is recorded."""
    from etl.context import new_run_id, utcnow
    from etl.readers.files import list_files, read_landed

    config = load_config(job, env=env, overrides=overrides, conf_dir=conf_dir)
    spec = config.source(source)
    if spec.type != "files":
        raise ConfigError(f"source {source} is a {spec.type} source; etl.read reads files "
                          "sources only", file=config.file, key=f"sources.{source}")
    session = spark(env, conf_dir)
    files = list_files(session, landing_path(config.paths.landing, spec.path), spec.pattern)
    return read_landed(session, files, spec, source_name=source, run_id=new_run_id(),
                       ingested_at=utcnow())


def _context(config: JobConfig, first: dt.date | None = None, last: dt.date | None = None) -> RunContext:
    from etl.runner import new_context

    return new_context(config, first, last)


def preview(
    job: str,
    *,
    date: DateLike = None,
    start: DateLike = None,
    end: DateLike = None,
    env: str | None = None,
    overrides: Sequence[str] = (),
    conf_dir: str | os.PathLike[str] | None = None,
) -> DataFrame:
    """The rows ``job``'s transform step would publish for ``date`` (or ``start``..``end``) to
    its first target built from a source, computed from what is already in bronze, before the
    quality audit, without writing anything (`etl.flow.preview`)."""
    first, last = _dates(date, start, end)
    if first is None:
        raise ConfigError("preview needs date, or start and end")
    config = load_config(job, env=env, overrides=overrides, conf_dir=conf_dir)
    if config.job.entrypoint:
        raise ConfigError(f"job {job} cannot preview: it runs its own entrypoint, not the flow",
                          file=config.file, key="job.entrypoint")
    from etl.flow import preview as flow_preview

    return flow_preview(spark(env, conf_dir), _context(config, first, last), config)


def check(
    name: str,
    *,
    job: str,
    env: str | None = None,
    overrides: Sequence[str] = (),
    conf_dir: str | os.PathLike[str] | None = None,
) -> DataFrame:
    """Run ``job``'s quality rules for the target ``name`` (``silver/flights``) on the table's
    current contents; one row per rule result (table, rule, severity, passed, constraint, value,
    rows_failed, message), in the order of the rules. Anomaly rules compare with the stored
    history. Nothing is stored or quarantined. Reference frames of ``foreign_key`` rules are the
    job's references as the flow types them."""
    from etl.quality import evaluate

    config = load_config(job, env=env, overrides=overrides, conf_dir=conf_dir)
    targets = [t for t, spec in config.targets.items() if f"{spec.layer}/{spec.table}" == name]
    rules = [r for t in targets for r in config.quality.get(t, [])]
    if not rules:
        with_rules = sorted(f"{config.targets[t].layer}/{config.targets[t].table}"
                            for t in config.quality)
        raise ConfigError(f"job {job} has no quality rules for {name!r}; tables with rules: "
                          f"{with_rules}", file=config.file, key="quality")
    df = table(name, env=env, overrides=overrides, conf_dir=conf_dir)
    session = df.sparkSession
    ctx = _context(config)
    if config.job.entrypoint:
        refs: dict[str, DataFrame] = {}
    else:
        from etl.flow import references

        refs = references(session, ctx, config)
    _, results, _ = evaluate(session, ctx, name, df, rules, references=refs)
    rows = [(name, r.rule, r.severity, r.passed, r.constraint,
             None if r.value is None else float(r.value), r.rows_failed, r.message)
            for r in results]
    return session.createDataFrame(rows, CHECK_SCHEMA)


__all__ = ["check", "load_config", "preview", "read", "run", "spark", "table"]
