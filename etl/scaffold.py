"""``etl new``: a job's YAML (and, when asked, its page of transforms) scaffolded from a landed
folder, so that ``etl run JOB`` works with no edit.

What is written, from the newest file of ``<landing>/<folder>``:

* ``conf/jobs/<job>.yml``: the source (the folder, its format, the columns of the file's header
  or schema, the keys required), a bronze table ``bronze/<job>``, typing of each column guessed
  from the file's first rows (``int``, ``bigint``, ``double``, ``date``, ``timestamp``,
  ``boolean``, else ``string``; a Parquet file's own types are kept), a silver table
  ``silver/<job>`` merged on the keys (a later landed file's version of a key wins), and
  ``unique`` and ``complete`` rules on the keys;
* with ``transforms``, ``jobs/<job>.py``: a page with one function, the silver transform,
  returning its input unchanged, named by the YAML.

The header is the file's first line (CSV), the first record (JSON, JSON lines) or the Parquet
footer; no data is scanned beyond the rows sampled for the types. An existing job, a folder
without files, or a key the header lacks is refused with one message (exit 2).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from etl.errors import ConfigError

FORMATS = ("csv", "json", "jsonl", "parquet")
SAMPLE_ROWS = 200
_JOB_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_HEAD_BYTES = 1 << 20
_INT32 = 2**31


@dataclass(frozen=True)
class Landed:
    """The newest landed file of the folder and what it says of its columns."""

    path: Path
    columns: list[str]
    #: column -> Spark SQL type (guessed from text, or the Parquet file's own)
    types: dict[str, str]


def guess_type(values: Iterable[str | None], na_values: Sequence[str] = ("", "NA")) -> str:
    """The narrowest Spark SQL type every present value of a text column parses as."""
    present = [v.strip() for v in values if v is not None and v.strip() not in na_values]
    if not present:
        return "string"
    checks: list[tuple[str, Any]] = [
        ("boolean", lambda v: v.lower() in ("true", "false")),
        ("int", lambda v: re.fullmatch(r"[+-]?\d+", v) and abs(int(v)) < _INT32),
        ("bigint", lambda v: re.fullmatch(r"[+-]?\d{1,18}", v)),
        ("double", lambda v: re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", v)),
        ("date", lambda v: re.fullmatch(r"\d{4}-\d{2}-\d{2}", v) and _parses(dt.date, v)),
        ("timestamp", lambda v: re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?"
                                             r"(Z|[+-]\d{2}:?\d{2})?", v)),
    ]
    for name, fits in checks:
        if all(fits(v) for v in present):
            return name
    return "string"


def _parses(kind: Any, text: str) -> bool:
    try:
        kind.fromisoformat(text)
    except ValueError:
        return False
    return True


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def read_header(path: Path, fmt: str) -> Landed:
    """The columns (and guessed types) of a landed file: see the module docstring."""
    if fmt == "parquet":
        return _parquet_header(path)
    head = path.open("rb").read(_HEAD_BYTES).decode("utf-8", errors="replace")
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(head)))
        if not rows or not any(rows[0]):
            raise ConfigError(f"{path}: no header line")
        columns = [c.strip() for c in rows[0]]
        sample = [r for r in rows[1:SAMPLE_ROWS + 1] if len(r) == len(columns)]
        records = [dict(zip(columns, r, strict=True)) for r in sample]
    else:
        records = _json_records(path, head, fmt)
        columns = list(dict.fromkeys(k for r in records for k in r))
    if not columns:
        raise ConfigError(f"{path}: no columns found in the file's first record")
    types = {c: guess_type(_text(r.get(c)) for r in records) for c in columns}
    return Landed(path, columns, types)


def _json_records(path: Path, head: str, fmt: str) -> list[dict[str, Any]]:
    decoder = json.JSONDecoder()
    records: list[dict[str, Any]] = []
    if fmt == "jsonl":
        for line in head.splitlines()[:SAMPLE_ROWS]:
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue  # the last line of the head may be cut
            if isinstance(value, dict):
                records.append(value)
        if not records:
            raise ConfigError(f"{path}: no JSON object on its first lines (format jsonl)")
        return records
    text = head.lstrip()
    position = 1 if text.startswith("[") else 0
    while len(records) < SAMPLE_ROWS:
        while position < len(text) and text[position] in " \r\n\t,":
            position += 1
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            break
        if not isinstance(value, dict):
            break
        records.append(value)
        if not text.startswith("["):
            break
    if not records:
        raise ConfigError(f"{path}: no JSON object at its start (format json)")
    return records


def _parquet_header(path: Path) -> Landed:
    """A Parquet file's columns and types from its footer (Spark reads the footer only)."""
    from etl.config import load_settings
    from etl.session import get_spark

    spark = get_spark(load_settings().spark)
    schema = spark.read.parquet(str(path)).schema
    return Landed(path, [f.name for f in schema.fields],
                  {f.name: f.dataType.simpleString() for f in schema.fields})


def newest_file(folder: Path, pattern: str) -> Path:
    files = [p for p in folder.glob(pattern) if p.is_file() and not p.name.startswith((".", "_"))]
    if not files:
        raise ConfigError(f"no {pattern} file in landing folder {folder}")
    return max(files, key=lambda p: (p.stat().st_mtime, p.name))


def job_document(job: str, folder: str, fmt: str, landed: Landed, keys: Sequence[str],
                 transforms: bool) -> dict[str, Any]:
    """The YAML document of the new job (see the module docstring)."""
    source: dict[str, Any] = {
        "path": folder, "format": fmt, "pattern": f"*.{fmt}", "kind": "append",
        "columns": landed.columns, "bronze": f"bronze_{job}",
    }
    if fmt == "csv":
        source["options"] = {"header": "true"}
    if fmt != "parquet":
        source["types"] = dict(landed.types)
        source["na_values"] = ["", "NA"]
    source["required"] = list(keys)
    silver: dict[str, Any] = {
        "layer": "silver", "table": job, "inputs": [job], "mode": "merge", "keys": list(keys),
        "sequence_by": ["_source_modified", "_source_file"], "duplicates": "latest",
    }
    info: dict[str, Any] = {"name": job, "description": f"{folder} -> bronze, silver {job}"}
    if transforms:
        info["transforms"] = f"jobs.{job}"
        silver["transform"] = "silver"
    return {
        "job": info,
        "sources": {job: source},
        "targets": {f"bronze_{job}": {"layer": "bronze", "table": job}, job: silver},
        "quality": {job: [
            {"name": f"{job}_key_unique", "type": "unique", "columns": list(keys),
             "description": f"one row per key ({', '.join(keys)})"},
            {"name": f"{job}_key_complete", "type": "complete", "columns": list(keys),
             "description": "every row has its key columns"},
        ]},
    }


PAGE = '''"""The {job} job's transforms; conf/jobs/{job}.yml names them and declares the rest."""

from __future__ import annotations

from pyspark.sql import DataFrame


def silver({job}: DataFrame) -> DataFrame:
    """The silver rows of {job}: the typed landed rows as they are. Add columns or join
    references here (conf/jobs/{job}.yml, targets.{job}.references); keep every row."""
    return {job}
'''


def scaffold(job: str, folder: str, keys: Sequence[str], *, fmt: str, conf: Path,
             landing: Path, transforms: bool = False) -> list[Path]:
    """Write the new job's files (see the module docstring); returns them."""
    if not _JOB_NAME.match(job):
        raise ConfigError(f"job name {job!r} must match {_JOB_NAME.pattern}")
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    job_file = conf / "jobs" / f"{job}.yml"
    page = conf.resolve().parent / "jobs" / f"{job}.py"
    for existing in (job_file, page if transforms else None):
        if existing is not None and existing.exists():
            raise ConfigError(f"job {job!r} exists already", file=str(existing))
    if not keys or not all(keys):
        raise ConfigError("--keys needs at least one column, e.g. --keys id")
    if Path(folder).is_absolute() or ".." in Path(folder).parts:
        raise ConfigError(f"--from is a folder under the landing root, got {folder!r}")
    landed = read_header(newest_file(landing / folder, f"*.{fmt}"), fmt)
    missing = [k for k in keys if k not in landed.columns]
    if missing:
        raise ConfigError(f"key {missing[0]!r} is not a column of {landed.path} (columns: "
                          f"{', '.join(landed.columns)})")
    document = job_document(job, folder, fmt, landed, keys, transforms)
    job_file.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# Scaffolded by `etl new {job}` from {landed.path.name}; edit freely.\n"
              "# Reference: docs/configuration.md\n")
    job_file.write_text(header + yaml.safe_dump(document, sort_keys=False, width=100))
    written = [job_file]
    if transforms:
        page.parent.mkdir(parents=True, exist_ok=True)
        init = page.parent / "__init__.py"
        if not init.exists():
            init.write_text('"""The jobs of this project: per job, a module of pure transforms."""\n')
        page.write_text(PAGE.format(job=job))
        written.append(page)
    return written


__all__ = ["FORMATS", "Landed", "guess_type", "job_document", "read_header", "scaffold"]
