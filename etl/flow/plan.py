"""The plan of a job's flow, made from its configuration before Spark starts: which sources
feed targets (their rows are counted) and which are only looked up (references), the targets
built from a source and those built from other targets (in dependency order), and the job's
functions that `derive`, `transform` and `touched` name, imported and checked against the
arguments the flow will give them.

Every problem raises `ConfigError` with the job's file and the dotted key, so ``etl run`` exits
2 before Spark starts.
"""

from __future__ import annotations

import graphlib
import importlib
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from etl.config import JobConfig, SourceConfig, TargetConfig
from etl.errors import ConfigError

#: Columns of landed rows kept for the quarantine and bronze; a target built without a
#: transform does not get them (``_rescued_data`` stays in bronze).
RAW_COLUMNS = ("_record", "_corrupt_record", "_rescued_data")
#: Ingestion metadata of landed files, in bronze and in the rows built from them.
FILE_METADATA = ("_source_file", "_source_modified", "_run_id", "_ingested_at")
#: The default order of a file source's versions: a later landed file wins.
FILE_SEQUENCE = ("_source_modified", "_source_file")


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

    @property
    def job_file(self) -> str:
        return self.config.file

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


def make_plan(config: JobConfig) -> Plan:
    """The plan of ``config``'s job (see the module docstring); imports the job's module."""
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
    return Plan(config=config, module=module, sources=tuple(sources),
                from_sources=tuple(from_sources), from_targets=tuple(specs[n] for n in order),
                derive=derive)


__all__ = ["FILE_METADATA", "FILE_SEQUENCE", "RAW_COLUMNS", "Built", "Plan", "job_module",
           "make_plan"]
