"""Personal values as a layer holds them (docs/privacy.md, "Personal columns"): keyed hashes
(the pseudonyms silver holds and the erasure ledger's hashes), masked forms, and the transform
that gives a table's personal columns their layer's action (`protect_columns`).

Hashes are HMAC-SHA-256 (hex) under the job's key (``personal_data.key_env``, read from the
environment where the job runs; never configuration). `keyed_hash` computes it in Python and
`keyed_hash_column` in Spark with the same function (a UDF, so no plan shows the key).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from etl.config.privacy import Action
from etl.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from etl.config.model import JobConfig


def key_of(config: JobConfig, environ: Mapping[str, str] | None = None) -> bytes:
    """The job's HMAC key, from the variable ``personal_data.key_env`` names; a secret
    reference there (``aws-sm://...``, ``gcp-sm://...``) that the command did not resolve yet
    is read from its secrets manager now (`etl.secrets`), so a reference never becomes the key.
    Messages name the variable, never the value."""
    from etl import secrets

    env = os.environ if environ is None else environ
    name = config.personal_data.key_env
    value = env.get(name, "")
    try:
        reference = secrets.parse_reference(value)
    except ConfigError as exc:
        raise ConfigError(str(exc), key=f"environment variable {name}") from None
    if reference is not None:
        value = secrets.resolve(reference)
    if not value:
        raise ConfigError(f"the job declares personal data: set {name} to its key (a value or "
                          "a secret reference such as aws-sm://ID#KEY)",
                          file=config.file, key="personal_data.key_env")
    if len(value) < 16:
        raise ConfigError(f"{name} is too short for a key: give at least 16 characters",
                          file=config.file, key="personal_data.key_env")
    return value.encode("utf-8")


def keyed_hash(key: bytes, value: object) -> str:
    """HMAC-SHA-256 of ``str(value)`` (UTF-8), as 64 hex digits."""
    return hmac.new(key, str(value).encode("utf-8"), hashlib.sha256).hexdigest()


def keyed_hash_column(key: bytes, column: Column | str) -> Column:
    """The same hash as `keyed_hash`, of a column cast to string; null stays null.

    A Python UDF whose closure holds the key: the key travels to the executors inside the
    pickled function, never as a literal of the query plan, so `explain`, the Spark UI and the
    event logs show ``hmac_sha256(column)`` and nothing derived from the key. The function uses
    the standard library only, so an executor's Python needs nothing of this package."""
    from pyspark.sql import functions as F

    def hmac_sha256(value: str | None) -> str | None:
        import hashlib as hashes
        import hmac as hmacs

        if value is None:
            return None
        return hmacs.new(key, value.encode("utf-8"), hashes.sha256).hexdigest()

    value = (F.col(column) if isinstance(column, str) else column).cast("string")
    return F.udf(hmac_sha256, "string")(value)


def masked(column: Column | str) -> Column:
    """The masked form of a personal value (cast to string): its first character then ``***``;
    an e-mail address (a value with an ``@``) keeps its domain, the part after the last ``@``.
    ``Jane Doe`` -> ``J***``, ``jane.doe@example.com`` -> ``j***@example.com``, ``""`` ->
    ``***``; null stays null. The length and the rest of the value are gone."""
    from pyspark.sql import functions as F

    value = (F.col(column) if isinstance(column, str) else column).cast("string")
    domain = F.when(F.instr(value, "@") > 0,
                    F.concat(F.lit("@"), F.substring_index(value, "@", -1))).otherwise(F.lit(""))
    return F.concat(F.substring(value, 1, 1), F.lit("***"), domain)


#: The actions from the weakest to the strongest: two sources' columns of one name that meet in
#: a table get the stronger of their actions.
STRENGTH: tuple[Action, ...] = ("keep", "pseudonymise", "mask", "drop")


def protect_columns(actions: Mapping[str, Action], key: bytes | None = None
                    ) -> Callable[[DataFrame], DataFrame]:
    """The transform giving each column of ``actions`` (a column name, matched case-
    insensitively as Spark does, -> its action) that the rows have its action: ``keep`` leaves
    it, ``pseudonymise`` replaces it by `keyed_hash_column` under ``key`` (of the value cast to
    string), ``mask`` by `masked`, ``drop`` removes it. Columns the rows lack are skipped.
    A ``pseudonymise`` without ``key`` is a `ValueError`, raised here, before Spark works.

    Example::

        customers.transform(protect_columns({"name": "mask", "email": "pseudonymise"}, key))
    """
    wanted = {column.lower(): action for column, action in actions.items() if action != "keep"}
    if "pseudonymise" in wanted.values() and key is None:
        raise ValueError("protect_columns: pseudonymise needs the key (key=None given)")

    def replacement(column: str, action: Action) -> Column:
        from pyspark.sql import functions as F

        if action == "mask":
            return masked(column)
        assert key is not None  # checked above
        return keyed_hash_column(key, F.col(column).cast("string"))

    def transform(df: DataFrame) -> DataFrame:
        present = {c: wanted[c.lower()] for c in df.columns if c.lower() in wanted}
        replaced = {c: replacement(c, action) for c, action in present.items()
                    if action != "drop"}
        out = df.withColumns(replaced) if replaced else df
        return out.drop(*(c for c, action in present.items() if action == "drop"))

    return transform
