"""Names that become paths, file names or SQL identifiers, checked when they are read.

* an environment (``--env``) names ``conf/<env>.yml``, a pipeline ``conf/pipelines/<name>.yml``
  and a DAG id: letters, digits, ``_`` and ``-``, starting with a letter;
* a target's table names ``<warehouse>/<layer>/<table>``: letters, digits and ``_``;
  ``catalog_name`` and ``jdbc_table`` are one or two such names joined by a dot;
* the columns a target names (keys, partitions, sequence, tracked and delete columns) are
  quoted with backticks in the SQL the writers build, so they hold no backtick.

A bad name is a `ConfigError` naming the key, before anything is read or written (exit 2).

Example::

    check_env("prod")            # fine
    check_env("../secrets")      # ConfigError: --env: ...
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from etl.config.model import JobConfig
from etl.errors import ConfigError

_FILE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_TABLE = re.compile(r"^[A-Za-z0-9_]+$")
_QUALIFIED = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)?$")
_COLUMN_LISTS = ("keys", "partition_by", "sequence_by", "tracked_columns")
_COLUMNS = ("effective_from", "delete_column", "soft_delete_column")


def _check(name: str, pattern: re.Pattern[str], what: str, key: str, file: str | None = None) -> str:
    if not isinstance(name, str) or not pattern.match(name):
        raise ConfigError(f"{name!r} is not {what}", file=file, key=key)
    return name


def check_env(env: str) -> str:
    """An environment name (``--env``): it names a file of the configuration folder."""
    return _check(env, _FILE_NAME, "an environment name (letters, digits, '_' and '-', starting "
                  "with a letter)", "--env")


def check_pipeline_name(name: str) -> str:
    """A pipeline name: it names a file, a DAG id and a workflow template."""
    return _check(name, _FILE_NAME, "a pipeline name (letters, digits, '_' and '-', starting "
                  "with a letter)", "pipeline")


def check_target_names(config: JobConfig, origin: Mapping[str, str], default_file: str) -> None:
    """The table names and column identifiers of every target of ``config``."""
    for name, target in config.targets.items():
        def where(field: str, name: str = name) -> tuple[str, str]:
            key = f"targets.{name}.{field}"
            return key, origin.get(key, origin.get(f"targets.{name}", default_file))

        key, file = where("table")
        _check(target.table, _TABLE, "a table name (letters, digits and '_')", key, file)
        for field in ("catalog_name", "jdbc_table"):
            value = getattr(target, field)
            if value is not None:
                key, file = where(field)
                _check(value, _QUALIFIED, "a table name (NAME or SCHEMA.NAME of letters, digits "
                       "and '_')", key, file)
        columns = [(f, c) for f in _COLUMN_LISTS for c in getattr(target, f)]
        columns += [(f, getattr(target, f)) for f in _COLUMNS if getattr(target, f)]
        for field, column in columns:
            if "`" in column or not column.strip():
                key, file = where(field)
                raise ConfigError(f"{column!r} is not a column name (no backtick, not empty)",
                                  file=file, key=key)
