"""Which files under a folder hold a value, read independently of Spark: every Parquet file with
pyarrow (every string cell, nested values as JSON), every other file as UTF-8 text.

pyarrow is not in the library's virtualenv (the library does not need it); it runs in
.venv-airflow (`make airflow-venv`; ``ETL_AIRFLOW_PYTHON`` names another interpreter), as the DAG
tests do. A value matches where it stands alone: not inside a longer word of letters or digits
(``N101`` does not match ``N1012``).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYARROW_PYTHON = Path(os.environ.get("ETL_AIRFLOW_PYTHON", ROOT / ".venv-airflow" / "bin" / "python"))

SCAN = r"""
import json, os, re, sys
import pyarrow.parquet as pq
import pyarrow.types as t

roots, value, skip = sys.argv[1].split(os.pathsep), sys.argv[2], sys.argv[3].split(",")
columns = [c for c in sys.argv[4].split(",") if c]
pattern = re.compile(r"(?<![A-Za-z0-9])" + re.escape(value) + r"(?![A-Za-z0-9])")
if columns:  # the value as a JSON field's: "customer_id":7 or "customer_id":"7"
    pattern = re.compile('"(?:' + "|".join(map(re.escape, columns)) + ')"\\s*:\\s*"?'
                         + re.escape(value) + '"?(?![A-Za-z0-9])')
found, scanned = [], 0
for root in roots:
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in files:
            path = os.path.join(folder, name)
            scanned += 1
            if name.endswith(".parquet"):
                table = pq.read_table(path)
                cells = []
                for field, column in zip(table.schema, table.columns):
                    if t.is_string(field.type) or t.is_large_string(field.type):
                        cells += [v for v in column.to_pylist() if v is not None]
                    elif t.is_nested(field.type):
                        cells += [json.dumps(v, default=str) for v in column.to_pylist()]
                hit = any(pattern.search(c) for c in cells) or any(
                    str(v) == value for c in columns if c in table.column_names
                    for v in table.column(c).to_pylist())
            else:
                with open(path, "rb") as handle:
                    hit = bool(pattern.search(handle.read().decode("utf-8", "replace")))
            if hit:
                found.append(path)
print(json.dumps({"found": sorted(found), "scanned": scanned}))
"""


def scan(roots: list[str | Path], value: str, skip: tuple[str, ...] = (),
         columns: tuple[str, ...] = ()) -> tuple[list[str], int]:
    """The files under ``roots`` holding ``value`` (sorted) and how many files were read;
    folders named in ``skip`` are not entered. With ``columns`` (a numeric key, which would
    match every number), a Parquet file holds it in one of those columns (any type) or a text
    holds it as one of those JSON fields."""
    assert PYARROW_PYTHON.exists(), f"no Python with pyarrow at {PYARROW_PYTHON}: run `make airflow-venv`"
    done = subprocess.run(
        [str(PYARROW_PYTHON), "-c", SCAN, os.pathsep.join(str(r) for r in roots), value,
         ",".join(skip), ",".join(columns)],
        capture_output=True, text=True, timeout=600, check=False, env={"PATH": os.environ["PATH"]})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["found"], result["scanned"]
