"""Scenario 10, permission denied on the warehouse: the tests run as root, which ignores file
modes, so the table's folder is bind-mounted read-only over itself (the kernel refuses writes
with EROFS, even to root; skipped where mounting is not allowed). A write fails with `WriteError`
naming the table's path and the cause, and the table, still readable, stays at its version."""

from __future__ import annotations

import re
import subprocess

import pytest
from chispa import assert_df_equality

from etl.errors import WriteError
from etl.tables import latest_version, read_delta
from etl.writers.delta import DeltaAppend

SCHEMA = "id int, v string"


def mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], check=False, capture_output=True, text=True)


@pytest.fixture()
def read_only(tmp_path):
    """``freeze(folder)`` makes ``folder`` read-only until the test ends."""
    frozen = []

    def freeze(folder):
        done = mount("--bind", str(folder), str(folder))
        if done.returncode != 0:
            pytest.skip(f"cannot bind-mount here: {done.stderr.strip()}")
        frozen.append(folder)
        done = mount("-o", "remount,ro,bind", str(folder))
        if done.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {done.stderr.strip()}")

    yield freeze
    for folder in reversed(frozen):
        subprocess.run(["umount", "-l", str(folder)], check=False)  # lazy: the JVM may hold it


def test_a_write_to_a_read_only_warehouse_names_the_table_and_changes_nothing(
        spark, tmp_path, read_only):
    path = str(tmp_path / "silver" / "t")
    first = spark.createDataFrame([(1, "a")], SCHEMA)
    DeltaAppend(spark, path).execute(first)
    read_only(tmp_path / "silver")

    with pytest.raises(WriteError) as info:
        DeltaAppend(spark, path).execute(spark.createDataFrame([(2, "b")], SCHEMA))

    # the data file's name is Spark's (a random UUID): everything else is matched exactly
    assert re.fullmatch(
        rf"{re.escape(path)}: the write failed: java\.io\.FileNotFoundException: "
        rf"{re.escape(path)}/part-00000-[0-9a-f-]{{36}}-c000\.snappy\.parquet "
        r"\(Read-only file system\)", str(info.value)), str(info.value)
    assert latest_version(spark, path) == 0
    assert_df_equality(read_delta(spark, path), first)
