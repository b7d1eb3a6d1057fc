"""Keyed hashes of personal values: the pseudonyms silver holds and the erasure ledger's hashes.

Both are HMAC-SHA-256 (hex) under the job's key (``personal_data.key_env``, read from the
environment where the job runs; never configuration). `keyed_hash` computes it in Python and
`keyed_hash_column` in Spark, without a Python UDF, as RFC 2104 defines it:
``H((K ^ opad) || H((K ^ ipad) || m))``, so the two agree byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from etl.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import Column

    from etl.config.model import JobConfig

_BLOCK = 64  # SHA-256's block size in bytes


def key_of(config: JobConfig, environ: Mapping[str, str] | None = None) -> bytes:
    """The job's HMAC key, from the variable ``personal_data.key_env`` names."""
    env = os.environ if environ is None else environ
    name = config.personal_data.key_env
    value = env.get(name, "")
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


def _pads(key: bytes) -> tuple[bytes, bytes]:
    block = hashlib.sha256(key).digest() if len(key) > _BLOCK else key
    block = block.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)


def keyed_hash_column(key: bytes, column: Column | str) -> Column:
    """The same hash as `keyed_hash`, of a column cast to string; null stays null."""
    from pyspark.sql import functions as F

    inner, outer = _pads(key)
    value = F.encode(F.col(column) if isinstance(column, str) else column, "UTF-8")
    first = F.unhex(F.sha2(F.concat(F.lit(inner), value), 256))
    return F.sha2(F.concat(F.lit(outer), first), 256)
