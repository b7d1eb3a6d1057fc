"""Describe the tables of a warehouse so that two versions of the code can be compared: per
Delta table, its schema (names, types, nullability), partition columns, table properties, row
count, and a digest of its rows and of each column, independent of row order.

Usage: python scripts/table_digest.py WAREHOUSE [--landing DIR] [--out FILE]

Values that differ from run to run by design are left out or normalised, so the same input
gives the same description whatever the run ids and clocks:

* the run's identity and clock columns (`VOLATILE`: ``_run_id``, ``_ingested_at``, a
  quarantine row's ``run_id`` and ``quarantined_at``, replay marks) are described by their type
  only;
* paths under the landing folder are written ``<landing>/...`` (``_source_file``,
  ``source_file``);
* doubles are rounded to 10 significant digits (an average summed in another order may differ
  in its last bits).

The project's own records (``_etl/``) and the staging area are not described: they hold run ids
and clock times throughout. Used by tests/e2e/test_golden_tables.py, whose expected descriptions
in tests/golden/ were written by the version before the jobs moved to the flow layer.
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

VOLATILE = frozenset({"_run_id", "_ingested_at", "run_id", "quarantined_at", "replayed_at",
                      "replay_run_id"})
PATH_COLUMNS = frozenset({"_source_file", "source_file"})
LAYERS = ("bronze", "silver", "gold", "quarantine")


def canonical(value: Any) -> Any:
    """A JSON-ready value that is the same for equal data whatever produced it."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return float(f"{value:.10g}")
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if hasattr(value, "asDict"):
        return {k: canonical(v) for k, v in value.asDict().items()}
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return str(value)


def _sha(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()[:16]


def describe_table(spark: Any, path: str, landing: str | None = None) -> dict[str, Any]:
    """The description of the Delta table at ``path`` (see the module docstring)."""
    from delta.tables import DeltaTable

    detail = DeltaTable.forPath(spark, path).detail().first()
    df = spark.read.format("delta").load(path)
    schema = [[f.name, f.dataType.simpleString(), f.nullable] for f in df.schema.fields]
    kept = [f.name for f in df.schema.fields if f.name not in VOLATILE]
    prefixes = []
    if landing:
        root = landing.rstrip("/")
        prefixes = [f"file:{root}", f"file://{root}", root]

    def value(name: str, raw: Any) -> Any:
        if name in PATH_COLUMNS and isinstance(raw, str):
            for prefix in prefixes:
                if raw.startswith(prefix):
                    return "<landing>" + raw[len(prefix):]
        return canonical(raw)

    rows = [{c: value(c, row[c]) for c in kept} for row in df.select(*kept).collect()]
    columns = {c: _sha([json.dumps(r[c], sort_keys=True) for r in rows]) for c in kept}
    return {
        "schema": schema,
        "partition_columns": list(detail["partitionColumns"]),
        "properties": dict(sorted((detail["properties"] or {}).items())),
        "rows": len(rows),
        "digest": _sha([json.dumps(r, sort_keys=True) for r in rows]),
        "columns": columns,
    }


def describe_warehouse(spark: Any, warehouse: str | Path, landing: str | Path | None = None
                       ) -> dict[str, dict[str, Any]]:
    """``{"layer/table": description}`` for every Delta table of the warehouse's layers and
    quarantine."""
    from delta.tables import DeltaTable

    root = Path(warehouse)
    tables = {}
    for layer in LAYERS:
        for folder in sorted(p for p in (root / layer).glob("*") if p.is_dir()):
            if DeltaTable.isDeltaTable(spark, str(folder)):
                tables[f"{layer}/{folder.name}"] = describe_table(
                    spark, str(folder), str(landing) if landing else None)
    return tables


def differences(expected: dict[str, dict[str, Any]], actual: dict[str, dict[str, Any]]) -> list[str]:
    """What differs between two warehouse descriptions, one line per table and property (and
    per column whose values differ)."""
    found = []
    for table in sorted(set(expected) | set(actual)):
        if table not in actual:
            found.append(f"{table}: missing")
            continue
        if table not in expected:
            found.append(f"{table}: not expected")
            continue
        want, got = expected[table], actual[table]
        for key in ("schema", "partition_columns", "properties", "rows"):
            if want[key] != got[key]:
                found.append(f"{table}: {key} {got[key]!r}, expected {want[key]!r}")
        if want["digest"] != got["digest"]:
            changed = sorted(c for c in set(want["columns"]) | set(got["columns"])
                             if want["columns"].get(c) != got["columns"].get(c))
            found.append(f"{table}: rows differ (in columns {changed})")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("warehouse")
    parser.add_argument("--landing", help="landing folder, written <landing> in paths")
    parser.add_argument("--out", help="write the description here (JSON) instead of stdout")
    parser.add_argument("--compare", help="a description written earlier: print the differences")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from etl.config import load_settings
    from etl.session import get_spark

    spark = get_spark(load_settings().spark)
    described = describe_warehouse(spark, args.warehouse, args.landing)
    text = json.dumps(described, indent=1, sort_keys=True) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    elif not args.compare:
        print(text, end="")
    if args.compare:
        found = differences(json.loads(Path(args.compare).read_text()), described)
        print("\n".join(found) if found else "identical", file=sys.stderr)
        return 1 if found else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
