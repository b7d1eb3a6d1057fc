"""What the types of the configuration cannot say: sections that fit a source's type, targets
whose settings fit together, quality rules that fit their type and their target. Each problem
raises `ConfigError` with the file and the dotted key, before Spark starts."""

from __future__ import annotations

import dataclasses
import graphlib
import re
from collections.abc import Callable, Mapping
from typing import Literal

from etl.config.model import JobConfig
from etl.config.rules import RuleConfig, rule_problems
from etl.config.sources import SourceConfig
from etl.errors import ConfigError

_SLOT = re.compile(r"^[a-z0-9_]{1,63}$")


def origin_of(origin: Mapping[str, str], dotted: str) -> str:
    """The file a dotted key came from (the nearest key above it that has one)."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        found = origin.get(".".join(parts[:end]))
        if found:
            return found
    return "configuration"


def with_bronze_modes(config: JobConfig, origin: Mapping[str, str], job_file: str) -> JobConfig:
    """The configuration with the mode of each files source's bronze target set from the
    source's ``kind`` (``append``: the files' rows are added, a changed file's rows replaced;
    ``snapshot``: the newest file replaces the table). A mode given in YAML must agree."""
    targets = dict(config.targets)
    for name, source in config.sources.items():
        if source.type != "files" or source.bronze not in targets \
                or targets[source.bronze].layer != "bronze":
            continue  # a missing or wrong bronze target is check_flow's to report
        wanted: Literal["overwrite", "append"] = (
            "overwrite" if source.kind == "snapshot" else "append")
        target = targets[source.bronze]
        key = f"targets.{source.bronze}.mode"
        if key in origin and target.mode != wanted:
            raise ConfigError(
                f"the bronze table of {source.kind} source {name!r} is written in mode {wanted}, "
                f"got {target.mode!r} (remove the key or set {wanted})",
                file=origin_of(origin, key), key=key)
        targets[source.bronze] = dataclasses.replace(target, mode=wanted)
    return dataclasses.replace(config, targets=targets)


def check_job(config: JobConfig, origin: Mapping[str, str], job_file: str) -> None:
    """Every check of a converted job configuration (``job_file``: where keys without an origin
    are said to be)."""
    for name, source in config.sources.items():
        check_source(name, source, origin, job_file)
    if not config.job.entrypoint:
        check_flow(config, origin, job_file)
    for name, target in config.targets.items():
        for key, message in target.problems():
            raise ConfigError(message, file=origin.get(f"targets.{name}", job_file),
                              key=f"targets.{name}.{key}")
    for name in config.quality:
        if name not in config.targets:
            raise ConfigError(
                f"quality rules for unknown target {name!r}; targets: {sorted(config.targets)}",
                file=origin.get(f"quality.{name}", job_file),
                key=f"quality.{name}",
            )
    check_rules(config.quality, origin, job_file)
    check_personal_data(config, origin, job_file)
    check_retention(config, origin, job_file)


def check_retention(config: JobConfig, origin: Mapping[str, str], job_file: str) -> None:
    """Durations are ``N days``; ``retention.tables`` names Delta targets of the job (the
    column's type is checked when `etl maintain` enforces it)."""

    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(message, file=origin_of(origin, key) if key in origin else job_file,
                           key=key)

    for key, message in config.retention.problems():
        raise fail(f"retention.{key}", message)
    for name in config.retention.tables:
        key = f"retention.tables.{name}"
        target = config.targets.get(name)
        if target is None:
            raise fail(key, f"{name!r} is not a target (targets: {sorted(config.targets)})")
        if target.format != "delta":
            raise fail(key, f"target {name!r} is written as {target.format}: retention deletes "
                            "rows of Delta targets only")


def check_personal_data(config: JobConfig, origin: Mapping[str, str], job_file: str) -> None:
    """The tables ``personal_data`` names exist: ``columns`` names sources, a subject's
    ``found_in`` sources or targets."""

    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(message, file=origin_of(origin, key) if key in origin else job_file,
                           key=key)

    declared = config.personal_data
    for name in declared.columns:
        if name not in config.sources:
            raise fail(f"personal_data.columns.{name}",
                       f"{name!r} is not a source (sources: {sorted(config.sources)})")
    for subject, spec in declared.subjects.items():
        key = f"personal_data.subjects.{subject}.found_in"
        if not spec.found_in:
            raise fail(key, "name the sources or targets holding the subject's key")
        for name in spec.found_in:
            if name not in config.sources and name not in config.targets:
                raise fail(f"{key}.{name}", f"{name!r} is neither a source nor a target "
                           f"(sources: {sorted(config.sources)}; targets: {sorted(config.targets)})")


def check_source(
    name: str, source: SourceConfig, origin: Mapping[str, str], default_file: str
) -> None:
    """A files source needs ``path``; a jdbc source needs ``jdbc`` with a table or a query and
    one way to get credentials; rest and kafka sources, see `check_stream_source`; delta_cdf and
    pg_logical sources, see `check_cdc_source`. Only the sections of the source's own type may be
    given."""
    key = f"sources.{name}"

    def fail(message: str, sub: str) -> ConfigError:
        return ConfigError(message, file=origin_of(origin, key) or default_file, key=f"{key}.{sub}")

    owners = {"jdbc": ("jdbc", "pg_logical"), "rest": ("rest",), "kafka": ("kafka",)}
    sections = {"jdbc": source.jdbc, "rest": source.rest, "kafka": source.kafka}
    for section, value in sections.items():
        if value is not None and source.type not in owners[section]:
            raise fail(f"only a source of type {' or '.join(owners[section])} has a {section} section",
                       section)
    if source.type in ("delta_cdf", "pg_logical"):
        check_cdc_source(source, fail)
        if source.type == "delta_cdf":
            return
    elif source.cdc is not None:
        raise fail("only a delta_cdf or pg_logical source has a cdc section", "cdc")
    if source.type in ("rest", "kafka"):
        check_stream_source(source, fail)
        return
    if source.type == "files":
        if not source.path:
            raise fail("required value missing for a files source (expected str)", "path")
        return
    jdbc = source.jdbc
    if jdbc is None:
        raise fail(f"required value missing for a {source.type} source (expected a mapping)",
                   "jdbc")
    if source.type == "pg_logical" and not jdbc.table:
        raise fail("required value missing for a pg_logical source (expected schema.table)",
                   "jdbc.table")
    if bool(jdbc.table) == bool(jdbc.query):
        raise fail("give exactly one of table and query", "jdbc.table")
    if jdbc.partitioning and jdbc.query:
        raise fail("partitioned reads need table, not query", "jdbc.partitioning")
    if jdbc.partitioning and jdbc.partitioning.num_partitions < 1:
        raise fail(
            f"expected at least 1, got {jdbc.partitioning.num_partitions}",
            "jdbc.partitioning.num_partitions",
        )
    creds = jdbc.credentials
    if bool(creds.secret_id) == bool(creds.user_env or creds.password_env):
        raise fail("give either secret_id or user_env and password_env", "jdbc.credentials")
    if not creds.secret_id and not (creds.user_env and creds.password_env):
        raise fail("give both user_env and password_env", "jdbc.credentials")


def check_cdc_source(source: SourceConfig, fail: Callable[[str, str], ConfigError]) -> None:
    """A change-feed source needs ``cdc`` with keys; delta_cdf a ``path``, pg_logical a slot
    name PostgreSQL accepts."""
    cdc = source.cdc
    if cdc is None:
        raise fail(f"required value missing for a {source.type} source (expected a mapping)",
                   "cdc")
    if not cdc.keys:
        raise fail("expected at least one key column", "cdc.keys")
    if source.type == "delta_cdf":
        if not source.path:
            raise fail("required value missing for a delta_cdf source (expected str)", "path")
        if source.jdbc is not None or cdc.slot:
            raise fail("a delta_cdf source has no jdbc section and no slot", "cdc.slot")
        return
    if not _SLOT.match(cdc.slot):
        raise fail(f"expected lower-case letters, digits and _ (at most 63), got {cdc.slot!r}",
                   "cdc.slot")


def check_stream_source(source: SourceConfig, fail: Callable[[str, str], ConfigError]) -> None:
    """A rest source needs its ``rest`` section and a kafka source its ``kafka`` section; their
    settings must be in range."""
    if getattr(source, source.type) is None:
        raise fail(f"required value missing for a {source.type} source (expected a mapping)",
                   source.type)
    if source.rest is not None:
        rest = source.rest
        checks = [
            (rest.pagination.page_size >= 1, "pagination.page_size", "expected at least 1"),
            (rest.pagination.max_pages >= 1, "pagination.max_pages", "expected at least 1"),
            (rest.retry.attempts >= 1, "retry.attempts", "expected at least 1"),
            (rest.timeout_s > 0, "timeout_s", "expected a positive number of seconds"),
            (rest.url.startswith(("http://", "https://")), "url", "expected an http(s) URL"),
            (rest.max_response_bytes >= 1, "max_response_bytes", "expected at least 1"),
            (0 < rest.deadline_s < float("inf"), "deadline_s",
             "expected a finite positive number of seconds"),
            (bool(rest.schema.strip()), "schema", "required value missing (expected str)"),
        ]
        if rest.auth is not None:
            checks.append((bool(rest.auth.token_env) != bool(rest.auth.secret_id), "auth",
                           "give exactly one of token_env and secret_id"))
        for ok, key, message in checks:
            if not ok:
                raise fail(message, f"rest.{key}")
    if source.kafka is not None:
        kafka = source.kafka
        if bool(kafka.topics) == bool(kafka.subscribe_pattern):
            raise fail("give exactly one of topics and subscribe_pattern", "kafka.topics")
        if not kafka.schema.strip():
            raise fail("required value missing (expected str)", "kafka.schema")
        if kafka.max_offsets_per_trigger < 0:
            raise fail("expected 0 (no limit) or more", "kafka.max_offsets_per_trigger")


def check_rules(
    quality: Mapping[str, list[RuleConfig]], origin: Mapping[str, str], default_file: str
) -> None:
    """Each rule's parameters must fit its type, and names must be unique per target."""
    for target, rules in quality.items():
        seen: set[str] = set()
        for i, rule in enumerate(rules):
            where = f"quality.{target}[{i}]"
            file = origin.get(f"quality.{target}", default_file)
            if rule.name in seen:
                raise ConfigError(f"duplicate rule name {rule.name!r}", file=file,
                                  key=f"{where}.name")
            seen.add(rule.name)
            for param, problem in rule_problems(rule):
                raise ConfigError(f"rule {rule.name!r} ({rule.type}): {problem}", file=file,
                                  key=f"{where}.{param}")


#: Source types that land in a bronze table, and those whose extract is staged.
LANDS_IN_BRONZE = ("files", "kafka")
STAGED = ("jdbc", "rest", "pg_logical")


def check_flow(config: JobConfig, origin: Mapping[str, str], job_file: str) -> None:
    """What the flow needs of a job (`etl.flow`): every name a source or target gives exists and
    is of the right kind, each built target says how it is written, the targets form no cycle.
    Functions of the transforms module are checked by `etl.flow.plan` when it imports it."""

    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(message, file=origin_of(origin, key) if key in origin else job_file,
                           key=key)

    sources, targets = config.sources, config.targets
    fed: dict[str, str] = {}
    for name, source in sources.items():
        key = f"sources.{name}"
        if source.bronze is not None:
            target = targets.get(source.bronze)
            if target is None or target.layer != "bronze":
                raise fail(f"{key}.bronze", f"expected a bronze target, got {source.bronze!r} "
                           f"(bronze targets: {sorted(t for t, c in targets.items() if c.layer == 'bronze')})")
            if source.bronze in fed:
                raise fail(f"{key}.bronze", f"target {source.bronze!r} is already the bronze table "
                           f"of source {fed[source.bronze]!r}")
            fed[source.bronze] = name
        elif source.type in LANDS_IN_BRONZE:
            raise fail(f"{key}.bronze", f"a {source.type} source lands in a bronze target: name it")
        if source.type in STAGED and not config.staging.enabled:
            raise fail("staging.enabled", f"source {name!r} ({source.type}) is staged before it "
                       "is loaded: set staging.enabled: true")
        for column in source.required:
            if source.columns and column not in source.columns and column not in source.types \
                    and source.derive is None:
                raise fail(f"{key}.required", f"column {column!r} is not a column of the source "
                           f"({', '.join(source.columns)})")
        if source.sequence_by and not source.keys:
            raise fail(f"{key}.sequence_by", "sequence_by orders the versions of a key: give keys")
    graph: dict[str, set[str]] = {}
    for name, target in targets.items():
        key = f"targets.{name}"
        if target.layer == "bronze" or not target.inputs:
            if target.inputs:
                raise fail(f"{key}.inputs", "a bronze target is fed by its source (sources.<name>."
                           "bronze), not built from inputs")
            continue
        from_sources = [i for i in target.inputs if i in sources]
        # a name is a source's when a source has it (sources and targets are named apart)
        from_targets = [i for i in target.inputs if i in targets and i not in sources]
        unknown = [i for i in target.inputs if i not in sources and i not in targets]
        if unknown:
            raise fail(f"{key}.inputs", f"{unknown[0]!r} is neither a source nor a target "
                       f"(sources: {sorted(sources)}; targets: {sorted(targets)})")
        if from_sources and (len(from_sources) > 1 or from_targets):
            raise fail(f"{key}.inputs", "a target is built from one source, or from targets")
        if f"{key}.mode" not in origin:
            raise fail(f"{key}.mode", "required: how the flow writes the target (append, "
                       "overwrite, overwrite_partitions, merge, insert_only or scd2)")
        for ref in target.references:
            if ref not in sources:
                raise fail(f"{key}.references", f"{ref!r} is not a source ({sorted(sources)})")
            if ref in from_sources:
                raise fail(f"{key}.references", f"{ref!r} is the target's input")
        for ref in target.narrow:
            if ref not in target.references:
                raise fail(f"{key}.narrow", f"{ref!r} is not one of the target's references")
        changes = bool(from_sources) and sources[from_sources[0]].type in ("delta_cdf",
                                                                         "pg_logical")
        if changes != (target.mode == "apply_changes"):
            raise fail(f"{key}.mode", "a target built from a change feed (delta_cdf, pg_logical) "
                       "has mode apply_changes, and only such a target has it")
        if changes and target.keys:
            raise fail(f"{key}.keys", f"the keys of applied changes are the source's "
                       f"(sources.{from_sources[0]}.cdc.keys)")
        if from_sources:
            if target.replace_by or target.touched:
                raise fail(f"{key}.replace_by", "replace_by applies to targets built from targets")
            if target.mode in ("merge", "insert_only") and not (
                    target.sequence_by or target.duplicates == "reject"):
                raise fail(f"{key}.sequence_by", "give sequence_by (the newest version wins)")
        elif target.touched and not target.replace_by:
            raise fail(f"{key}.touched", "touched computes the values of replace_by: give it")
        graph[name] = set(from_targets)
    for name, export in config.exports.items():
        if export.input not in targets:
            raise fail(f"exports.{name}.input", f"expected a target, got {export.input!r}")
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        cycle = " -> ".join(reversed(exc.args[1]))
        raise fail("targets", f"the targets' inputs form a cycle: {cycle}") from None
    if config.job.date_column:
        dated = [n for n, t in targets.items() if t.inputs]
        if not dated:
            raise fail("job.date_column", "no target is built from an input")
