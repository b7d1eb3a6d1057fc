"""The plan of a job's flow, made from its configuration before Spark starts: which sources
feed targets (their rows are counted) and which are only looked up (references), the targets
built from a source and those built from other targets (in dependency order), and the job's
functions that `derive`, `transform` and `touched` name, imported and checked against the
arguments the flow will give them; and which personal columns each table gets in another form
than its input holds (`personal_actions`), with the job's key read once when one is hashed.

Every problem raises `ConfigError` with the job's file and the dotted key, so ``etl run`` exits
2 before Spark starts.
"""

from __future__ import annotations

import graphlib
import importlib
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

from etl.config import JobConfig, SourceConfig, TargetConfig
from etl.config.privacy import Action
from etl.errors import ConfigError
from etl.privacy import STRENGTH, key_of, protect_columns

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

#: Columns of landed rows kept for the quarantine and bronze; a target built without a
#: transform does not get them (``_rescued_data`` stays in bronze).
RAW_COLUMNS = ("_record", "_corrupt_record", "_rescued_data")
#: Ingestion metadata of landed files, in bronze and in the rows built from them.
FILE_METADATA = ("_source_file", "_source_modified", "_run_id", "_ingested_at")
#: The default order of a file source's versions: a later landed file wins.
FILE_SEQUENCE = ("_source_modified", "_source_file")
#: Source types whose batch is read back from their bronze table (the others' batch is the
#: extract itself, staged as landed).
FROM_BRONZE = ("files", "kafka")


@dataclass(frozen=True)
class Built:
    """A target the flow builds: from one source (``source``) or from targets (``inputs``)."""

    name: str
    target: TargetConfig
    source: str | None
    inputs: tuple[str, ...]
    transform: Callable[..., Any] | None
    touched: Callable[..., Any] | None

    @property
    def table(self) -> str:
        return f"{self.target.layer}/{self.target.table}"


@dataclass(frozen=True)
class Plan:
    """What the flow of one job does (see the module docstring)."""

    config: JobConfig
    module: ModuleType | None
    #: Sources in the order of the YAML (the order they are extracted).
    sources: tuple[str, ...]
    #: Targets built from one source each, in the order of the YAML.
    from_sources: tuple[Built, ...]
    #: Targets built from targets, inputs first.
    from_targets: tuple[Built, ...]
    derive: Mapping[str, Callable[..., Any]]
    #: Table (a target, bronze ones included) -> its personal columns to change, and how
    #: (`personal_actions`).
    personal: Mapping[str, Mapping[str, Action]] = field(default_factory=dict)
    #: The job's key, read when some table pseudonymises (never printed).
    key: bytes | None = field(default=None, repr=False)

    @property
    def job_file(self) -> str:
        return self.config.file

    def protection(self, name: str) -> Callable[[DataFrame], DataFrame]:
        """The transform that gives target ``name``'s rows their layer's form of the personal
        columns (`etl.privacy.protect_columns`); the rows unchanged when it has none."""
        return protect_columns(self.personal.get(name, {}), self.key)

    def source(self, name: str) -> SourceConfig:
        return self.config.sources[name]

    def target_of(self, source: str) -> Built | None:
        """The target built from ``source`` (a batch source), or ``None`` (a reference)."""
        return next((b for b in self.from_sources if b.source == source), None)

    @property
    def batch_sources(self) -> tuple[str, ...]:
        return tuple(b.source for b in self.from_sources if b.source is not None)

    @property
    def references(self) -> tuple[str, ...]:
        """Sources some target looks up, in the order of the YAML."""
        used = {r for b in self.from_sources for r in b.target.references}
        return tuple(s for s in self.sources if s in used)

    def downstream(self, name: str) -> list[Built]:
        """The targets built from target ``name``."""
        return [b for b in self.from_targets if name in b.inputs]

    def quarantine_table(self, source: str) -> str:
        """Where rows of ``source`` that fail typing go: its configured table, else the table of
        the target it feeds, else its own name."""
        configured = self.source(source).quarantine
        if configured:
            return configured
        built = self.target_of(source)
        return built.target.table if built is not None else source

    def sequence(self, source: str) -> tuple[str, ...]:
        """How the versions of a key of ``source`` are ordered when it is a reference."""
        spec = self.source(source)
        if spec.sequence_by:
            return tuple(spec.sequence_by)
        return FILE_SEQUENCE if spec.type == "files" else ()


def job_module(config: JobConfig) -> ModuleType | None:
    """The module of the job's transforms (``job.transforms``), imported. A module the Python
    path does not have is looked for next to the configuration folder (its parent holds
    ``jobs/``), so a project's jobs need not be installed."""
    name = config.job.transforms
    if not name:
        return None
    where = {"file": config.file, "key": "job.transforms"}
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not name.startswith(exc.name):
            raise ConfigError(f"cannot import {name!r}: {exc}", **where) from exc
    root = str(Path(config.conf_dir).resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {name!r} (looked in the Python path and in {root}): "
                          f"{exc}", **where) from exc


def _function(module: ModuleType | None, config: JobConfig, name: str | None, key: str,
              arguments: Sequence[str] | None) -> Callable[..., Any] | None:
    """The function ``name`` of the job's module, checked to take ``arguments`` by keyword
    (``None``: one positional DataFrame)."""
    if name is None:
        return None
    where = {"file": config.file, "key": key}
    if module is None:
        raise ConfigError(f"names function {name!r}, but the job has no transforms module "
                          "(set job.transforms, e.g. jobs.<job>)", **where)
    function = getattr(module, name, None)
    if not callable(function):
        known = sorted(n for n, v in vars(module).items()
                       if callable(v) and not n.startswith("_") and getattr(
                           v, "__module__", None) == module.__name__)
        raise ConfigError(f"{module.__name__} has no function {name!r} (functions: "
                          f"{', '.join(known) or 'none'})", **where)
    try:
        signature = inspect.signature(function)
        if arguments is None:
            signature.bind(None)
        else:
            signature.bind(**{a: None for a in arguments})
    except (TypeError, ValueError) as exc:
        given = "one DataFrame" if arguments is None else ", ".join(arguments)
        raise ConfigError(f"{module.__name__}.{name} cannot be called with {given}: {exc}",
                          **where) from None
    return function


def ddl_columns(ddl: str) -> list[str]:
    """The top-level column names of a Spark SQL DDL (``"id bigint, tags array<string>"``),
    read without Spark; ``[]`` when it cannot tell."""
    names, depth, start = [], 0, 0
    for i, char in enumerate(ddl + ","):
        depth += 1 if char in "<(" else -1 if char in ">)" else 0
        if char == "," and depth == 0:
            part = ddl[start:i].strip()
            start = i + 1
            if not part:
                return []
            name = part.split("`")[1] if part.startswith("`") else part.split()[0]
            names.append(name.rstrip(":"))
    return names


def known_columns(source: SourceConfig) -> list[str] | None:
    """The columns of a source's typed rows when the configuration alone says them (files with
    ``columns``; REST and Kafka with a ``schema``), else ``None``."""
    if source.type == "files" and source.columns:
        return [*source.columns, *FILE_METADATA]
    ddl = source.rest.schema if source.rest else source.kafka.schema if source.kafka else ""
    fields = ddl_columns(ddl)
    if not fields:
        return None
    return [*fields, "_run_id"] if source.type == "rest" else fields


def _check_columns(config: JobConfig, built: Built, columns: list[str] | None) -> None:
    """A target built without Python has the source's columns: every column its settings name
    must be one of them (checked before Spark starts)."""
    if columns is None:
        return
    target = built.target
    wanted = [("keys", c) for c in target.keys] + [("sequence_by", c) for c in target.sequence_by]
    wanted += [("partition_by", c) for c in target.partition_by]
    for key, column in wanted:
        if column not in columns:
            raise ConfigError(f"column {column!r} is not a column of the rows of source "
                              f"{built.source!r} (columns: {', '.join(columns)})",
                              file=config.file, key=f"targets.{built.name}.{key}")
    date_column = config.job.date_column
    if date_column and date_column not in columns:
        raise ConfigError(f"column {date_column!r} is not a column of the rows of source "
                          f"{built.source!r} (columns: {', '.join(columns)})",
                          file=config.file, key="job.date_column")


Forms = dict[tuple[str, str], frozenset[Action]]


def personal_actions(config: JobConfig, from_sources: Sequence[Built],
                     from_targets: Sequence[Built]) -> dict[str, dict[str, Action]]:
    """Table -> personal column -> the action the flow applies to the table's rows.

    A table built from source S (its bronze table; a target built from S, or looking S up as a
    reference; a target built from such targets) gives each column ``personal_data.columns``
    declares for S its layer's action (a layer not named: ``keep``), applied to the column as
    the table's inputs hold it, unless they all hold it in that form already (an upstream
    layer did the same: a pseudonym is never hashed again). Inputs: the bronze table for a
    source whose batch is read from it (`FROM_BRONZE`) and for a reference with one, else the
    extract as landed; for targets built from targets, those targets. Columns of one name from
    two sources get the stronger action (`etl.privacy.STRENGTH`)."""
    declared = config.personal_data.columns
    if not declared:
        return {}
    held: dict[str, Forms] = {}
    actions: dict[str, dict[str, Action]] = {}

    def landed(source: str) -> Forms:
        return {(source, c): frozenset({"keep"}) for c in declared.get(source, {})}

    def build(name: str, layer: Literal["bronze", "silver", "gold"], inputs: list[Forms]
              ) -> None:
        before: Forms = {}
        for forms in inputs:
            for pair, found in forms.items():
                before[pair] = before.get(pair, frozenset()) | found
        after: Forms = {}
        for (source, column), found in before.items():
            action = declared[source][column].get(layer, "keep")
            after[(source, column)] = found if action == "keep" else frozenset({action})
            if action != "keep" and found != {action}:
                mine = actions.setdefault(name, {})
                mine[column] = max(mine.get(column, "keep"), action, key=STRENGTH.index)
        held[name] = after

    for source, spec in config.sources.items():
        if spec.bronze:
            for column, layers in declared.get(source, {}).items():
                if layers.get("bronze") == "drop" and spec.type in FROM_BRONZE:
                    raise ConfigError(
                        f"the flow types source {source!r}'s rows from its bronze table, which "
                        f"would have no {column!r}: drop it in silver, or pseudonymise or mask "
                        "it in bronze", file=config.file,
                        key=f"personal_data.columns.{source}.{column}.bronze")
            build(spec.bronze, "bronze", [landed(source)])

    def read(source: str, *, batch: bool) -> Forms:
        spec = config.sources[source]
        if spec.bronze and (not batch or spec.type in FROM_BRONZE):
            return held[spec.bronze]
        return landed(source)

    for built in from_sources:
        assert built.source is not None
        build(built.name, built.target.layer, [read(built.source, batch=True)] + [
            read(ref, batch=False) for ref in built.target.references])
    for built in from_targets:
        build(built.name, built.target.layer, [held.get(i, {}) for i in built.inputs])
    return actions


def _check_personal(config: JobConfig, built: Built, actions: Mapping[str, Action]) -> None:
    """A personal column a target's settings need keeps what they need of it: a key or a
    partition column is not masked or dropped; an ordering or dated column is kept."""
    target = built.target
    masked: tuple[Action, ...] = ("mask", "drop")
    needs = [("keys", c, masked) for c in target.keys]
    needs += [("partition_by", c, masked) for c in target.partition_by]
    needs += [("sequence_by", c, STRENGTH[1:]) for c in target.sequence_by]
    if target.replace_by:
        needs.append(("replace_by", target.replace_by, STRENGTH[1:]))
    lowered = {c.lower(): a for c, a in actions.items()}
    for setting, column, refused in needs:
        action = lowered.get(column.lower(), "keep")
        if action in refused:
            raise ConfigError(
                f"personal_data gives column {column!r} of {built.table} the action {action!r}, "
                f"but targets.{built.name}.{setting} needs its values (allowed there: "
                f"{', '.join(a for a in STRENGTH if a not in refused)})",
                file=config.file, key=f"targets.{built.name}.{setting}")


def make_plan(config: JobConfig) -> Plan:
    """The plan of ``config``'s job (see the module docstring); imports the job's module and,
    when a table pseudonymises a personal column, reads the job's key (`etl.privacy.key_of`:
    a `ConfigError` naming ``personal_data.key_env`` when it is missing)."""
    module = job_module(config)
    sources, targets = config.sources, config.targets
    derive = {}
    for name, spec in sources.items():
        function = _function(module, config, spec.derive, f"sources.{name}.derive", None)
        if function is not None:
            derive[name] = function
    fed: dict[str, str] = {}
    from_sources: list[Built] = []
    graph: dict[str, set[str]] = {}
    specs: dict[str, Built] = {}
    for name, target in targets.items():
        if target.layer == "bronze" or not target.inputs:
            continue
        source = target.inputs[0] if target.inputs[0] in sources else None
        if source is not None:
            if source in fed:
                raise ConfigError(f"source {source!r} already feeds target {fed[source]!r}; "
                                  f"build further targets from {fed[source]!r}",
                                  file=config.file,
                                  key=f"targets.{name}.inputs")
            fed[source] = name
        arguments = [*target.inputs, *target.references]
        transform = _function(module, config, target.transform, f"targets.{name}.transform",
                              arguments)
        touched = _function(module, config, target.touched, f"targets.{name}.touched",
                            ["batches", "tables"])
        built = Built(name, target, source, () if source else tuple(target.inputs), transform,
                      touched)
        if source is not None:
            if transform is None and source not in derive:
                _check_columns(config, built, known_columns(sources[source]))
            from_sources.append(built)
        else:
            graph[name] = set(target.inputs)
            specs[name] = built
    order = [n for n in graphlib.TopologicalSorter(graph).static_order() if n in specs]
    from_targets = [specs[n] for n in order]
    personal = personal_actions(config, from_sources, from_targets)
    for built in [*from_sources, *from_targets]:
        _check_personal(config, built, personal.get(built.name, {}))
    hashes = any("pseudonymise" in columns.values() for columns in personal.values())
    return Plan(config=config, module=module, sources=tuple(sources),
                from_sources=tuple(from_sources), from_targets=tuple(from_targets),
                derive=derive, personal=personal, key=key_of(config) if hashes else None)


__all__ = ["FILE_METADATA", "FILE_SEQUENCE", "FROM_BRONZE", "RAW_COLUMNS", "Built", "Plan",
           "job_module", "make_plan", "personal_actions"]
