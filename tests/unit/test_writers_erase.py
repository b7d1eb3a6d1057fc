"""`DeltaErase` and `erase_parquet_folder` (etl.writers.erase) on small real tables: plain,
partitioned, with change data feed, with deletion vectors. Every Parquet file left under the
table is read with pyarrow (tests.parquet_scan): none may hold the erased value; the current
table is the expected frame."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from etl.errors import WriteError
from etl.tables import latest_version, read_delta
from etl.writers.erase import DeltaErase, erase_parquet_folder, files_holding
from tests.parquet_scan import scan

SCHEMA = "id int, tailnum string, seats int, year int"
ROWS = [(1, "N1", 10, 2013), (2, "N2", 20, 2013), (3, "N1", 30, 2014), (4, "N3", 40, 2014)]
VALUE = "N1"

TABLES = {
    "plain": ("", {}),
    "partitioned": ("PARTITIONED BY (year)", {}),
    "change data feed": ("PARTITIONED BY (year)", {"delta.enableChangeDataFeed": "true"}),
    "deletion vectors": ("", {"delta.enableDeletionVectors": "true"}),
}


def parquet_files(root: str) -> list[str]:
    return sorted(os.path.join(d, f) for d, _, files in os.walk(root) for f in files
                  if f.endswith(".parquet"))


def holders(root: str, value: str = VALUE) -> set[str]:
    """The Parquet files under ``root`` holding ``value``, read with pyarrow."""
    found, _ = scan([root], value, skip=("_delta_log",))
    return {f for f in found if f.endswith(".parquet")}


def build(spark, path: str, kind: str) -> str:
    """The table in two appends (one file each), then an UPDATE of a row holding the value,
    so an older version's file (and, with CDF, a change file) holds it too."""
    clause, properties = TABLES[kind]
    props = ", ".join(f"'{k}' = '{v}'" for k, v in properties.items())
    spark.sql(f"CREATE TABLE delta.`{path}` ({SCHEMA}) USING DELTA {clause}"
              + (f" TBLPROPERTIES ({props})" if props else ""))
    for chunk in (ROWS[:2], ROWS[2:]):
        spark.createDataFrame(chunk, SCHEMA).coalesce(1).write.format("delta").mode("append").save(path)
    DeltaTable.forPath(spark, path).update("id = 3", {"seats": "seats + 1"})
    return path


def qualified(files: set[str]) -> tuple[str, ...]:
    return tuple(sorted(f"file:{f}" for f in files))


@pytest.mark.parametrize("kind", list(TABLES))
def test_delete_leaves_no_file_holding_the_value(spark, tmp_path, kind):
    path = build(spark, str(tmp_path / "t"), kind)
    before = holders(path)
    if kind == "change data feed":
        assert any("/_change_data/" in f for f in before)

    version = latest_version(spark, path)

    erased = DeltaErase(spark, path).where_equals("tailnum", VALUE).user_metadata("run-1").execute()

    expected = [r for r in ROWS if r[1] != VALUE]
    assert_df_equality(read_delta(spark, path), spark.createDataFrame(expected, SCHEMA),
                       ignore_row_order=True)
    assert holders(path) == set()
    assert erased.rows == len(ROWS) - len(expected)
    assert erased.table == path
    # exactly the files that held the value, plus change files the erase itself wrote
    assert set(erased.files) >= set(qualified(before))
    assert all("/_change_data/" in f for f in set(erased.files) - set(qualified(before)))
    assert not any(os.path.exists(f.removeprefix("file:")) for f in erased.files)
    history = DeltaTable.forPath(spark, path).history().collect()
    assert {h.operation for h in history if h.version > version} == (
        {"MERGE", "REORG"} if kind == "deletion vectors" else {"MERGE"})
    assert {h.userMetadata for h in history if h.version > version} == {"run-1"}
    # the erasing commits record the predicate "tailnum = value" (the source's column), never
    # the value (their files' column statistics may: docs/privacy.md)
    infos = [json.dumps(json.loads(line)["commitInfo"])
             for v in range(version + 1, latest_version(spark, path) + 1)
             for line in Path(path, "_delta_log", f"{v:020d}.json").read_text().splitlines()
             if "commitInfo" in json.loads(line)]
    assert len(infos) == latest_version(spark, path) - version
    assert [i for i in infos if re.search(rf"\b{VALUE}\b", i)] == []
    assert json.loads(infos[0])["operation"] == "MERGE"


@pytest.mark.parametrize("kind", ["plain", "change data feed", "deletion vectors"])
def test_set_null_keeps_the_rows_without_the_value(spark, tmp_path, kind):
    path = build(spark, str(tmp_path / "t"), kind)

    erased = DeltaErase(spark, path).where(f"tailnum = '{VALUE}'").set_null("tailnum").execute()

    expected = [(i, None if t == VALUE else t, s + (i == 3), y) for i, t, s, y in ROWS]
    assert_df_equality(read_delta(spark, path), spark.createDataFrame(expected, SCHEMA),
                       ignore_row_order=True)
    assert holders(path) == set()
    assert erased.rows == 2


def test_dry_run_reports_rows_and_files_and_changes_nothing(spark, tmp_path):
    path = build(spark, str(tmp_path / "t"), "partitioned")
    files, version = parquet_files(path), latest_version(spark, path)

    erased = DeltaErase(spark, path).where(f"tailnum = '{VALUE}'").dry_run()

    assert (erased.rows, erased.files) == (2, qualified(holders(path)))
    assert len(erased.files) == 3  # the two appends' 2014 file, its rewrite and the 2013 file
    assert (parquet_files(path), latest_version(spark, path)) == (files, version)


def test_erasing_nothing_changes_nothing(spark, tmp_path):
    path = build(spark, str(tmp_path / "t"), "plain")
    version = latest_version(spark, path)

    erased = DeltaErase(spark, path).where("tailnum = 'N9'").execute()

    assert (erased.rows, erased.files, latest_version(spark, path)) == (0, (), version)


def test_bad_arguments_are_refused_naming_the_table(spark, tmp_path):
    path = build(spark, str(tmp_path / "t"), "partitioned")

    with pytest.raises(WriteError) as by_partition:
        DeltaErase(spark, path).where("year = 2013").execute()
    with pytest.raises(WriteError) as unknown:
        DeltaErase(spark, path).where("id = 1").set_null("tail").execute()
    with pytest.raises(WriteError) as no_condition:
        DeltaErase(spark, path).execute()

    assert str(by_partition.value) == (f"{path}: cannot erase by or null the partition columns "
                                       "['year']: their values are folder names")
    assert str(unknown.value) == (f"{path}: set_null() columns ['tail'] are not columns of the "
                                  "table ['id', 'tailnum', 'seats', 'year']")
    assert str(no_condition.value) == f"{path}: call where() or where_equals() before erasing"
    with pytest.raises(WriteError, match="no Delta table to erase from"):
        DeltaErase(spark, str(tmp_path / "none")).where("id = 1").execute()


@pytest.mark.parametrize("null", [False, True])
def test_a_parquet_folder_is_rewritten_without_the_value(spark, tmp_path, null):
    folder = tmp_path / "staged"
    spark.createDataFrame(ROWS, SCHEMA).repartition(2, "year").write.parquet(str(folder))
    (folder / "_manifest.json").write_text(json.dumps({"rows": 4}))
    before = holders(str(folder))
    untouched = {f: Path(f).read_bytes() for f in parquet_files(str(folder)) if f not in before}

    erased = erase_parquet_folder(spark, str(folder), f"tailnum = '{VALUE}'",
                                  null_columns=["tailnum"] if null else [])

    expected = ([(i, None if t == VALUE else t, s, y) for i, t, s, y in ROWS] if null
                else [r for r in ROWS if r[1] != VALUE])
    assert_df_equality(spark.read.parquet(str(folder)), spark.createDataFrame(expected, SCHEMA),
                       ignore_row_order=True, ignore_nullable=True)
    assert holders(str(folder)) == set()
    assert (erased.rows, erased.files) == (2, qualified(before))
    assert {f: Path(f).read_bytes() for f in untouched} == untouched
    assert json.loads((folder / "_manifest.json").read_text()) == {"rows": 4}


def test_a_parquet_folder_dry_run_changes_nothing(spark, tmp_path):
    folder = tmp_path / "staged"
    spark.createDataFrame(ROWS, SCHEMA).coalesce(1).write.parquet(str(folder))
    content = {f: Path(f).read_bytes() for f in parquet_files(str(folder))}

    erased = erase_parquet_folder(spark, str(folder), f"tailnum = '{VALUE}'", dry_run=True)

    assert (erased.rows, erased.files) == (2, qualified(set(content)))
    assert {f: Path(f).read_bytes() for f in parquet_files(str(folder))} == content


def test_quarantined_records_keep_their_row_with_the_key_null_in_the_json(spark, tmp_path):
    path = str(tmp_path / "quarantine")
    rows = [("flights", '{"tailnum":"N1","dest":"IAH","x":null}'),
            ("flights", '{"tailnum":"N2","dest":"ATL"}'),
            ("planes", '{"tailnum":"N1","model":"ü"}')]
    spark.createDataFrame(rows, "table string, record string").coalesce(1) \
        .write.format("delta").save(path)

    erased = (DeltaErase(spark, path)
              .where_equals("get_json_object(record, '$.tailnum')", "N1")
              .set_json_null("record", "tailnum", "model", "absent")
              .execute())

    assert erased.rows == 2
    assert_df_equality(
        spark.read.format("delta").load(path),
        spark.createDataFrame([("flights", '{"tailnum":null,"dest":"IAH","x":null}'),
                               ("flights", '{"tailnum":"N2","dest":"ATL"}'),
                               ("planes", '{"tailnum":null,"model":null}')],
                              "table string, record string"),
        ignore_row_order=True, ignore_nullable=True)
    assert files_holding(spark, path, F.expr("instr(record, 'N1') > 0")) == []
