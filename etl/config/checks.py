"""What the types of the configuration cannot say: sections that fit a source's type, targets
whose settings fit together, quality rules that fit their type and their target. Each problem
raises `ConfigError` with the file and the dotted key, before Spark starts."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

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


def check_job(config: JobConfig, origin: Mapping[str, str], job_file: str) -> None:
    """Every check of a converted job configuration (``job_file``: where keys without an origin
    are said to be)."""
    for name, source in config.sources.items():
        check_source(name, source, origin, job_file)
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
