"""The personal data a job keeps, declared in its YAML (``personal_data:``), and how long each
layer keeps its rows (``retention:``). docs/privacy.md describes both.

Example (shop)::

    personal_data:
      key_env: ETL_PII_KEY              # the HMAC key; never in YAML
      columns:
        customers:                      # a source: the tables built from it
          name: {silver: mask}
          email: {silver: pseudonymise}
      subjects:
        customer:
          erase: delete                 # the subject's rows go
          found_in:
            customers: {column: id}
            orders: {column: customer_id}
            silver_customers: {column: id}
            silver_orders: {column: customer_id}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

#: What a layer holds of a personal column: the value as landed, its keyed hash (HMAC-SHA-256,
#: hex), a masked form, or nothing (the column is dropped).
Action = Literal["keep", "pseudonymise", "mask", "drop"]
#: How a subject's value leaves a table: its rows deleted, or the value set to null.
Erase = Literal["delete", "null"]


@dataclass(frozen=True)
class SubjectTable:
    """One table (a source: its staged extracts, bronze table, quarantine and dead letters; or a
    target) and the column holding the subject's key there."""

    column: str
    #: Overrides the subject's ``erase`` for this table.
    erase: Erase | None = None
    #: With ``erase: null``: other columns that describe the subject only (e.g. a plane's
    #: model joined to a flight by its tail number), set to null with the key.
    also_null: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SubjectConfig:
    """A kind of person (or thing tied to one) whose data `etl forget` erases by key."""

    description: str = ""
    erase: Erase = "delete"
    #: Source or target name -> where the key is in it.
    found_in: dict[str, SubjectTable] = field(default_factory=dict)


@dataclass(frozen=True)
class PrivacyConfig:
    #: The environment variable holding the key of pseudonyms and of the erasure ledger's
    #: hashes (a value or a secret reference, ``aws-sm://...``, resolved where the job runs).
    key_env: str = "ETL_PII_KEY"
    #: Source name -> personal column -> layer (bronze, silver, gold) -> action; layers not
    #: named keep the value.
    columns: dict[str, dict[str, dict[Literal["bronze", "silver", "gold"], Action]]] = field(
        default_factory=dict)
    subjects: dict[str, SubjectConfig] = field(default_factory=dict)

    @property
    def declared(self) -> bool:
        return bool(self.columns or self.subjects)
