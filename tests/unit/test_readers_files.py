"""etl.readers.files on small files written by the tests: every format, schemas from conf,
malformed records quarantined with their raw text and reasons, mismatches named by file and
column, and the ledger's incremental discovery."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from chispa import assert_df_equality

from etl.config import SourceConfig
from etl.context import RunContext, Warehouse
from etl.errors import SchemaMismatchError
from etl.readers.files import (
    CORRUPT,
    list_files,
    malformed_records,
    read_landed,
    read_table,
)
from etl.state import FileLedger
from etl.transforms.cleaning import split_rejected
from etl.writers.quarantine import write_quarantine

NOW = dt.datetime(2026, 1, 1, 12, 0)
STRINGS = "id string, name string"


def read(spark, folder, **source):
    config = SourceConfig(path=str(folder), **source)
    files = list_files(spark, str(folder), config.pattern)
    return read_landed(spark, files, config, source_name="things", run_id="r1", ingested_at=NOW)


def write(folder, name: str, text: str):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def test_csv_with_malformed_rows_loads_the_good_ones_and_quarantines_the_rest(spark, tmp_path):
    folder = tmp_path / "things"
    write(folder, "a.csv", "id,name\n1,kettle\n2,mug,extra\n3,teapot\n4\n5,tea\n")
    ctx = RunContext(job="things", env="test", warehouse=Warehouse.at(str(tmp_path / "wh")),
                     landing=str(tmp_path), run_id="r1")

    raw = read(spark, folder, columns=["id", "name"], options={"header": "true"}).cache()
    good, rejected = split_rejected(raw.transform(malformed_records("csv")))
    quarantined = write_quarantine(rejected, ctx, "things", ["id", "name", CORRUPT])

    assert_df_equality(good.select("id", "name"),
                       spark.createDataFrame([("1", "kettle"), ("3", "teapot"), ("5", "tea")],
                                             STRINGS), ignore_row_order=True)
    assert (raw.count(), good.count(), quarantined) == (5, 3, 2)
    rows = spark.read.format("delta").load(ctx.warehouse.quarantine("things")).collect()
    assert sorted((r.record, r.reasons, r.source_file, r.run_id) for r in rows) == [
        ('{"id":"2","name":"mug","_corrupt_record":"2,mug,extra"}',
         ["malformed record: wrong number of fields"], f"file:{folder}/a.csv", "r1"),
        ('{"id":"4","_corrupt_record":"4"}',
         ["malformed record: wrong number of fields"], f"file:{folder}/a.csv", "r1"),
    ]


def test_jsonl_reads_configured_columns_as_strings_and_flags_bad_lines(spark, tmp_path):
    folder = tmp_path / "things"
    write(folder, "a.jsonl", '{"id": 1, "name": "kettle", "colour": "red"}\n{"id": 2,\n'
                             '{"id": 3}\n')

    raw = read(spark, folder, format="jsonl", columns=["id", "name"])
    good, rejected = split_rejected(raw.transform(malformed_records("jsonl")))

    assert_df_equality(good.select("id", "name"),
                       spark.createDataFrame([("1", "kettle"), ("3", None)], STRINGS),
                       ignore_row_order=True)
    assert [(r[CORRUPT], r._errors) for r in rejected.collect()] == [
        ('{"id": 2,', ["malformed record: not valid JSON"])]


def test_json_documents_span_lines(spark, tmp_path):
    folder = tmp_path / "things"
    write(folder, "a.json", '[{"id": "1",\n  "name": "kettle"},\n {"id": "2", "name": "mug"}]\n')

    raw = read(spark, folder, format="json", columns=["id", "name"])

    assert_df_equality(raw.select("id", "name"),
                       spark.createDataFrame([("1", "kettle"), ("2", "mug")], STRINGS),
                       ignore_row_order=True)


def test_csv_columns_are_read_by_name_whatever_the_header_says(spark, tmp_path):
    """A header with another order, an extra column and a missing one: values under their own
    names, the extra one rescued, the missing one null."""
    folder = tmp_path / "things"
    write(folder, "a.csv", "title,id\nkettle,1\n")

    raw = read(spark, folder, columns=["id", "name"], options={"header": "true"})

    assert [(r.id, r.name, r._rescued_data) for r in raw.collect()] == [
        ("1", None, '{"title":"kettle"}')]


def test_a_csv_file_missing_a_required_column_cannot_be_used(spark, tmp_path):
    folder = tmp_path / "things"
    file = write(folder, "a.csv", "id,title\n1,kettle\n")

    with pytest.raises(SchemaMismatchError) as info:
        read(spark, folder, columns=["id", "name"], options={"header": "true"},
             required=["name"])

    assert str(info.value) == (
        f"source things: file file:{file} cannot be used: required columns ['name'] are "
        "missing (the file has: id, title)")


def test_parquet_keeps_types_and_names_a_file_missing_a_required_column(spark, tmp_path):
    folder = tmp_path / "things"
    spark.createDataFrame([(1, "kettle")], "id long, name string").coalesce(1).write.parquet(
        str(folder / "batch1"))
    spark.createDataFrame([(2,)], "id long").coalesce(1).write.parquet(str(folder / "batch2"))
    [bad_file] = [str(p) for p in (folder / "batch2").glob("*.parquet")]

    raw = read(spark, folder / "batch1", format="parquet", pattern="*.parquet",
               columns=["id", "name"])
    assert_df_equality(raw.select("id", "name"),
                       spark.createDataFrame([(1, "kettle")], "id long, name string"))
    lacking = read(spark, folder / "batch2", format="parquet", pattern="*.parquet",
                   columns=["id", "name"])
    assert [(r.id, r.name) for r in lacking.collect()] == [(2, None)]

    with pytest.raises(SchemaMismatchError) as info:
        read(spark, folder / "batch2", format="parquet", pattern="*.parquet",
             columns=["id", "name"], required=["name"])
    assert str(info.value) == (
        f"source things: file file:{bad_file} cannot be used: required columns ['name'] are "
        "missing (the file has: id)")


def test_text_lines_and_delta_tables(spark, tmp_path):
    folder = tmp_path / "logs"
    write(folder, "a.log", "first line\nsecond line\n")
    lines = read(spark, folder, format="text")
    assert sorted(r.value for r in lines.collect()) == ["first line", "second line"]

    table = str(tmp_path / "table")
    spark.createDataFrame([(1, "a", True)], "id long, name string, ok boolean").write.format(
        "delta").save(table)
    source = SourceConfig(path=table, format="delta", columns=["id", "name"])
    assert_df_equality(read_table(spark, table, source, source_name="t"),
                       spark.createDataFrame([(1, "a")], "id long, name string"))
    with pytest.raises(SchemaMismatchError) as info:
        read_table(spark, table, SourceConfig(path=table, format="delta", columns=["nope"]),
                   source_name="t")
    assert str(info.value) == (
        f"source t: delta table {table} has no column 'nope' (its columns: id, name, ok)")


def test_ledger_discovers_new_then_known_then_changed_files(spark, tmp_path):
    folder = tmp_path / "things"
    first = write(folder, "a.csv", "id,name\n1,kettle\n")
    ledger = FileLedger(spark, str(tmp_path / "_etl" / "state" / "files"))

    files = list_files(spark, str(folder))
    assert [f.path for f in ledger.discover("j", "things", files).new] == [f"file:{first}"]
    ledger.record("j", {"things": files}, "r1")
    assert ledger.discover("j", "things", files).to_ingest == []

    first.write_text("id,name\n1,kettle\n2,mug\n")
    os.utime(first, (NOW.timestamp(), NOW.timestamp()))
    discovery = ledger.discover("j", "things", list_files(spark, str(folder)))
    assert ([f.path for f in discovery.changed], discovery.new) == ([f"file:{first}"], [])
