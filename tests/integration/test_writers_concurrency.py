"""Two OS processes, each with its own SparkSession, merge into disjoint partitions of one Delta
table at the same moment: both commit, without retrying, and the table holds both changes. The
commit history proves they overlapped: both commits read version 0, so the second was made
on a snapshot older than the first commit (merge_worker.py holds each MERGE until the other's
has started, and the 2014 worker's until the 2013 worker has committed: on a local disk two
commits of one version in the same instant would race, see merge_worker.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable

from etl.tables import read_delta
from etl.writers.delta import DeltaMerge

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = "id int, v string, seq int, year int"


def test_two_processes_merging_disjoint_partitions_both_succeed(spark, tmp_path):
    path = str(tmp_path / "silver" / "t")
    DeltaMerge(spark, path).keys("id").partitioned_by("year").execute(spark.createDataFrame(
        [(20131, "old 2013", 1, 2013), (20141, "old 2014", 1, 2014)], SCHEMA
    ))
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SPARK_VERSION": "3.5"}
    env.pop("PYSPARK_GATEWAY_PORT", None)
    env.pop("PYSPARK_GATEWAY_SECRET", None)

    first_commit = [str(Path(path) / "_delta_log" / f"{1:020d}.json")]
    workers = [
        subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("merge_worker.py")), path, str(year),
             str(barrier), str(ROOT / ".jars"), *after],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for year, after in ((2013, []), (2014, first_commit))
    ]
    outputs = [w.communicate(timeout=600) for w in workers]

    for worker, (_out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
    metrics = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert [(m["operation"], m["rows_inserted"], m["rows_updated"]) for m in metrics] == [
        ("MERGE", 1, 1), ("MERGE", 1, 1)
    ]
    assert [m["version"] for m in metrics] == [1, 2]
    history = DeltaTable.forPath(spark, path).history().where("version > 0").collect()
    assert sorted((h.version, h.operation, h.readVersion, h.isolationLevel, h.userMetadata)
                  for h in history) == [
        (1, "MERGE", 0, "Serializable", "worker-2013"),
        (2, "MERGE", 0, "Serializable", "worker-2014"),
    ]
    assert_df_equality(
        read_delta(spark, path),
        spark.createDataFrame([
            (20131, "updated 2013", 2, 2013), (20139, "new 2013", 1, 2013),
            (20141, "updated 2014", 2, 2014), (20149, "new 2014", 1, 2014),
        ], SCHEMA),
        ignore_row_order=True,
    )
