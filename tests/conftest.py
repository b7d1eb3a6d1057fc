"""One SparkSession for the whole test run (local[2], 2 shuffle partitions, no UI), built by the
library's own factory so tests exercise the same Delta and jar set-up as real runs.

Every Spark driver started from the tests' processes (this session, and the `etl run`, worker
and notebook-kernel processes the tests start, which inherit the environment) is launched with
:data:`TEST_JAVA_OPTIONS`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("SPARK_VERSION", "3.5")
#: The key of the shop job's pseudonyms in tests (conf/jobs/shop.yml, personal_data): a fixed
#: value, not a secret, so expected pseudonyms can be computed (etl.privacy.keyed_hash).
TEST_PII_KEY = "etl-tests-pseudonym-key"
os.environ["ETL_PII_KEY"] = TEST_PII_KEY  # golden digests depend on it

#: JVM options of the tests' Spark drivers. The tests plan many small queries over a few rows,
#: where the JIT's optimising tier (C2) costs more CPU than it saves: the first tier (C1) alone
#: halves the CPU of a session's start and first Delta write (49 s -> 26 s on two busy cores).
TEST_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1"
# PySpark launches its driver JVM with spark-submit's arguments from $PYSPARK_SUBMIT_ARGS;
# spark.driver.defaultJavaOptions come before the library's own extraJavaOptions (log4j).
os.environ.setdefault(
    "PYSPARK_SUBMIT_ARGS", f"--conf spark.driver.defaultJavaOptions={TEST_JAVA_OPTIONS} pyspark-shell"
)


@pytest.fixture(scope="session")
def spark():
    from etl.config import SparkSettings
    from etl.session import get_spark

    settings = SparkSettings(
        app_name="etl-tests",
        master="local[2]",
        shuffle_partitions=2,
        driver_memory="2g",
        jars_dir=str(ROOT / ".jars"),
        conf={
            "spark.sql.session.timeZone": "UTC",
            "spark.default.parallelism": "2",
            "spark.databricks.delta.snapshotPartitions": "2",
            "spark.sql.sources.parallelPartitionDiscovery.parallelism": "2",
        },
    )
    session = get_spark(settings)
    yield session
    session.stop()


@pytest.fixture()
def conf_dir() -> Path:
    return ROOT / "conf"
