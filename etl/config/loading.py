"""Loading a configuration: YAML files merged in order, ``--set`` overrides, ``${VAR}``
references, then conversion into the typed dataclasses of `etl.config.model`.

A job's configuration is three YAML documents merged in order, later ones winning key by key:

1. ``conf/base.yml``       settings shared by every job and environment,
2. ``conf/jobs/<job>.yml`` the job: its sources, targets, quality rules and parameters,
3. ``conf/<env>.yml``      the environment overlay (``local`` by default, or ``$ETL_ENV``),

then ``--set key.path=value`` overrides from the command line. String values may refer to the
environment as ``${NAME}`` (required) or ``${NAME:-default}``. The merged document is converted
with `convert`; an unknown key, a missing required value or a value of the wrong type raises
`ConfigError` naming the file and the dotted key, so ``etl run`` exits 2 with one message, before
Spark starts. `etl.config.checks` then checks what the types alone cannot say.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from etl.config.checks import check_job, origin_of, with_bronze_modes
from etl.config.model import JobConfig, Settings
from etl.config.names import check_env, check_target_names
from etl.errors import ConfigError

DEFAULT_ENV = "local"
#: The environment variable naming the environment overlay when ``--env`` is not given.
ENV_VARIABLE = "ETL_ENV"
_ENV_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_JOB_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def default_env() -> str:
    """The environment of commands that are not given ``--env``: ``$ETL_ENV``, else
    ``local``."""
    return os.environ.get(ENV_VARIABLE) or DEFAULT_ENV


def conf_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The configuration folder: the argument, else ``$ETL_CONF_DIR``, else ``./conf``."""
    return Path(explicit or os.environ.get("ETL_CONF_DIR") or "conf")


def list_jobs(directory: str | os.PathLike[str] | None = None) -> list[str]:
    root = conf_dir(directory) / "jobs"
    if not root.is_dir():
        raise ConfigError("folder of job configurations not found", file=str(root))
    return sorted(p.stem for p in root.glob("*.yml"))


def load_job_config(
    job: str,
    *,
    env: str = DEFAULT_ENV,
    overrides: list[str] | tuple[str, ...] = (),
    directory: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> JobConfig:
    """Read, merge, substitute and validate the configuration of ``job`` in ``env``."""
    root = conf_dir(directory)
    if not _JOB_NAME.match(job):
        raise ConfigError(f"job name {job!r} must match {_JOB_NAME.pattern}")
    check_env(env)
    job_file = root / "jobs" / f"{job}.yml"
    if not job_file.exists():
        known = ", ".join(list_jobs(root)) if (root / "jobs").is_dir() else "none"
        raise ConfigError(f"unknown job {job!r} (known jobs: {known})", file=str(job_file))
    env_file = root / f"{env}.yml"
    if not env_file.exists():
        raise ConfigError(f"unknown environment {env!r}", file=str(env_file))

    merged, origin = _merged_documents(
        (root / "base.yml", job_file, env_file), env, overrides, environ
    )
    merged["conf_dir"] = str(root)
    origin["conf_dir"] = "--conf-dir"
    _default_schema_drift(merged, origin)
    _refuse_moved_keys(merged, origin, str(job_file))
    config = convert(JobConfig, merged, origin, "", str(job_file))
    if config.job.name != job:
        raise ConfigError(
            f"names job {config.job.name!r} but the file is for {job!r}",
            file=origin.get("job.name", str(job_file)),
            key="job.name",
        )
    config = with_bronze_modes(config, origin, str(job_file))
    check_job(config, origin, str(job_file))
    check_target_names(config, origin, str(job_file))
    return config


def _default_schema_drift(merged: dict[str, Any], origin: dict[str, str]) -> None:
    """Each source's ``schema_drift``: the job's top-level one, overridden key by key."""
    default = merged.get("schema_drift")
    sources = merged.get("sources")
    if not isinstance(default, dict) or not isinstance(sources, dict):
        return
    for name, source in sources.items():
        if not isinstance(source, dict):
            continue
        own = source.get("schema_drift")
        if own is None or isinstance(own, dict):
            source["schema_drift"] = {**default, **(own or {})}
            for key in default:
                origin.setdefault(f"sources.{name}.schema_drift.{key}",
                                  origin.get(f"schema_drift.{key}", origin.get("schema_drift", "")))


#: Keys that moved: old dotted key -> what to write instead.
MOVED_KEYS = {"staging.retention_days": "retention.staging (e.g. retention: {staging: 30 days})"}


def _refuse_moved_keys(merged: dict[str, Any], origin: dict[str, str], job_file: str) -> None:
    """A key of an older configuration that moved is an error naming its new place."""
    for dotted, instead in MOVED_KEYS.items():
        node: Any = merged
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            raise ConfigError(f"this key moved: write {instead}",
                              file=origin.get(dotted, job_file), key=dotted)


def load_settings(
    *,
    env: str = DEFAULT_ENV,
    overrides: list[str] | tuple[str, ...] = (),
    directory: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read base.yml and the ``env`` overlay (no job), e.g. to find the warehouse."""
    check_env(env)
    root = conf_dir(directory)
    env_file = root / f"{env}.yml"
    if not env_file.exists():
        raise ConfigError(f"unknown environment {env!r}", file=str(env_file))
    merged, origin = _merged_documents((root / "base.yml", env_file), env, overrides, environ)
    wanted = {f.name for f in dataclasses.fields(Settings)}
    return convert(
        Settings, {k: v for k, v in merged.items() if k in wanted}, origin, "", str(env_file)
    )


def _merged_documents(
    files: tuple[Path, ...],
    env: str,
    overrides: list[str] | tuple[str, ...],
    environ: Mapping[str, str] | None,
) -> tuple[dict[str, Any], dict[str, str]]:
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for path in files:
        _merge(merged, read_yaml(path), origin, str(path), prefix="")
    for item in overrides:
        _apply_override(merged, origin, item)
    merged["env"] = env
    origin["env"] = "--env"
    merged = _substitute(merged, origin, "", os.environ if environ is None else environ)
    return merged, origin


class _StrictLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (YAML would keep the last one
    silently, dropping the first block). Keys a ``<<`` merge brings in may be overridden."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = key_node.value
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (first at line {seen[key]})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML file's top-level mapping. A missing file is an error, never an empty config."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError("file not found", file=str(path)) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"YAML syntax error{where}: {problem}", file=str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping at the top, got {type(data).__name__}", file=str(path))
    return data


def _merge(
    into: dict[str, Any], new: Mapping[str, Any], origin: dict[str, str], file: str, prefix: str
) -> None:
    for key, value in new.items():
        key = str(key)
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            origin.setdefault(dotted, file)
            _merge(into[key], value, origin, file, prefix=f"{dotted}.")
        else:
            into[key] = _deep_copy(value)
            _record_origin(value, origin, file, dotted)


def _record_origin(value: Any, origin: dict[str, str], file: str, dotted: str) -> None:
    origin[dotted] = file
    if isinstance(value, Mapping):
        for key, item in value.items():
            _record_origin(item, origin, file, f"{dotted}.{key}")


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _apply_override(merged: dict[str, Any], origin: dict[str, str], item: str) -> None:
    """Apply one ``--set a.b.c=value``; the value is parsed as YAML (numbers, booleans, lists)."""
    if "=" not in item:
        raise ConfigError(f"expected KEY=VALUE, got {item!r}", file="--set")
    dotted, raw = item.split("=", 1)
    dotted = dotted.strip()
    parts = dotted.split(".")
    if dotted.startswith("spark.conf.") and len(parts) > 3:
        parts = ["spark", "conf", dotted[len("spark.conf."):]]  # Spark setting names have dots
    if not all(parts):
        raise ConfigError(f"bad key {dotted!r}", file="--set")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    node: Any = merged
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part) if isinstance(node, dict) else None
        if child is None:
            child = {}
            node[part] = child
            origin[".".join(parts[: depth + 1])] = "--set"
        if not isinstance(child, dict):
            raise ConfigError(
                f"{'.'.join(parts[: depth + 1])} is a value, not a section", file="--set", key=dotted
            )
        node = child
    node[parts[-1]] = value
    _record_origin(value, origin, "--set", dotted)


def _substitute(value: Any, origin: dict[str, str], dotted: str, environ: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {
            k: _substitute(v, origin, f"{dotted}.{k}" if dotted else k, environ)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_substitute(v, origin, dotted, environ) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value
    whole = _ENV_REF.fullmatch(value)

    def replace(match: re.Match[str]) -> str:
        name, default = match.group("name"), match.group("default")
        if name in environ and environ[name] != "":
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"environment variable {name} is not set (write ${{{name}:-default}} for a default)",
            file=origin_of(origin, dotted),
            key=dotted,
        )

    result = _ENV_REF.sub(replace, value)
    if whole and result.strip():
        # a value that is only ${VAR} takes the variable's YAML type: ${N:-8} is the integer 8
        try:
            parsed = yaml.safe_load(result)
        except yaml.YAMLError:
            return result
        if isinstance(parsed, (bool, int, float)):
            return parsed
    return result


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (list,):
        return f"a list of {_type_name(get_args(tp)[0])}"
    if origin in (dict,):
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{value!r} ({type(value).__name__})"


def convert(tp: Any, value: Any, origin: Mapping[str, str], dotted: str, default_file: str) -> Any:
    """Convert a YAML value to ``tp``, raising `ConfigError` with file and key on mismatch."""

    def fail(message: str, key: str = dotted) -> ConfigError:
        return ConfigError(message, file=origin_of(origin, key) if key else default_file, key=key)

    if tp is Any:
        return value
    type_origin = get_origin(tp)
    if type_origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return convert(args[0], value, origin, dotted, default_file)
    if value is None:
        raise fail(f"required value missing (expected {_type_name(tp)})")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise fail(f"expected a mapping, got {_describe(value)}")
        hints = typing.get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp)}
        unknown = sorted(set(value) - set(fields))
        if unknown:
            key = f"{dotted}.{unknown[0]}" if dotted else unknown[0]
            allowed = sorted(n for n, f in fields.items() if f.metadata.get("yaml", True))
            raise fail(f"unknown key (allowed: {', '.join(allowed)})", key)
        kwargs = {}
        for name, f in fields.items():
            key = f"{dotted}.{name}" if dotted else name
            if name in value:
                kwargs[name] = convert(hints[name], value[name], origin, key, default_file)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(
                    f"required value missing (expected {_type_name(hints[name])})",
                    file=origin_of(origin, dotted) if dotted else default_file,
                    key=key,
                )
        return tp(**kwargs)  # type: ignore[operator]
    if type_origin is Literal:
        if value not in get_args(tp):
            raise fail(f"expected {_type_name(tp)}, got {_describe(value)}")
        return value
    if type_origin is list:
        (item_type,) = get_args(tp)
        if not isinstance(value, list):
            raise fail(f"expected {_type_name(tp)}, got {_describe(value)}")
        return [
            convert(item_type, item, origin, f"{dotted}[{i}]", default_file)
            for i, item in enumerate(value)
        ]
    if type_origin is dict:
        _, item_type = get_args(tp)
        if not isinstance(value, dict):
            raise fail(f"expected a mapping, got {_describe(value)}")
        return {
            str(k): convert(item_type, v, origin, f"{dotted}.{k}", default_file)
            for k, v in value.items()
        }
    if tp is bool:
        if not isinstance(value, bool):
            raise fail(f"expected true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(f"expected an integer, got {_describe(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail(f"expected a number, got {_describe(value)}")
        return float(value)
    if tp is str:
        if isinstance(value, (dict, list)):
            raise fail(f"expected a string, got {_describe(value)}")
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    raise TypeError(f"unsupported configuration type {tp!r} at {dotted}")
