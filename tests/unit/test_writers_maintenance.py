"""`etl maintain TABLE` (etl.writers.maintenance, etl.commands.maintain) on a real Delta table:
compaction and vacuum with before/after file counts, and the retention guard."""

from __future__ import annotations

import re

import pytest

from etl.cli import main
from etl.tables import read_delta
from etl.writers.delta import DeltaAppend
from etl.writers.maintenance import file_stats, retention_hours

SCHEMA = "id int, v string, year int"


@pytest.fixture()
def small_files(spark, tmp_path) -> str:
    """A table of three one-file commits whose properties allow vacuuming at once."""
    path = str(tmp_path / "silver" / "t")
    append = DeltaAppend(spark, path).properties({"delta.deletedFileRetentionDuration": "interval 0 hours"})
    for i in range(3):
        append.execute(spark.createDataFrame([(i, "x", 2013)], SCHEMA).coalesce(1))
    return path


def test_maintain_compacts_and_vacuums_and_prints_file_counts(spark, small_files, conf_dir, capsys):
    code = main(["--conf-dir", str(conf_dir), "maintain", small_files, "--retain-hours", "0"])

    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0] == f"{small_files}: OPTIMIZE, VACUUM RETAIN 0 HOURS"
    counts = [re.split(r"\s+", line.strip()) for line in out[2:4]]
    assert [(c[0], c[1], c[3]) for c in counts] == [("before", "3", "3"), ("after", "1", "1")]
    after = file_stats(spark, small_files)
    assert (after.table_files, after.storage_files) == (1, 1)
    assert counts[1][2] == f"{after.table_bytes:,}"
    assert read_delta(spark, small_files).count() == 3


def test_vacuum_refuses_a_retention_shorter_than_the_table_s(spark, tmp_path, conf_dir, capsys):
    path = str(tmp_path / "gold" / "t")
    DeltaAppend(spark, path).execute(spark.createDataFrame([(1, "x", 2013)], SCHEMA))

    code = main(["--conf-dir", str(conf_dir), "maintain", path, "--retain-hours", "1"])

    assert code == 2
    assert capsys.readouterr().err == (
        "etl: error: --retain-hours: retention of 1 hours is shorter than the table's "
        "delta.deletedFileRetentionDuration (168 hours); refusing to VACUUM\n"
    )


@pytest.mark.parametrize(
    ("text", "hours"),
    [(None, 168.0), ("interval 7 days", 168.0), ("interval 2 hours", 2.0), ("INTERVAL 1 WEEK", 168.0)],
)
def test_retention_hours_reads_delta_intervals(text, hours):
    assert retention_hours(text) == hours


@pytest.mark.parametrize(("value", "shown"), [("nan", "nan"), ("inf", "inf"), ("-inf", "-inf"),
                                              ("-1", "-1.0"), ("-0.5", "-0.5")])
def test_a_retention_that_is_not_a_finite_number_of_hours_exits_2_before_spark_starts(
    tmp_path, conf_dir, capsys, monkeypatch, value, shown
):
    import etl.session

    def no_spark(*args, **kwargs):
        raise AssertionError("Spark must not start for a refused retention")

    monkeypatch.setattr(etl.session, "get_spark", no_spark)

    code = main(["--conf-dir", str(conf_dir), "maintain", str(tmp_path / "t"),
                 f"--retain-hours={value}"])

    assert code == 2
    assert capsys.readouterr().err == (
        f"etl: error: --retain-hours: expected a finite number of hours >= 0, got {shown}\n"
    )


def test_maintain_refuses_nan_before_looking_at_the_table(spark, small_files):
    """nan passes `nan < minimum` (always false): without the check it would reach VACUUM."""
    from etl.errors import ConfigError
    from etl.writers.maintenance import maintain

    before = file_stats(spark, small_files)
    with pytest.raises(ConfigError) as caught:
        maintain(spark, small_files, optimize=False, retain_hours=float("nan"))

    assert str(caught.value) == "--retain-hours: expected a finite number of hours >= 0, got nan"
    assert file_stats(spark, small_files) == before
