"""One SparkSession for the whole test run (local[2], 2 shuffle partitions, no UI), built by the
library's own factory so tests exercise the same Delta and jar set-up as real runs.

The drivers keep both tiers of the JVM's JIT, the optimising one compiling later than by
default (`tests.small_data.JIT`). The first tier alone (``-XX:TieredStopAtLevel=1``) starts a
driver with less CPU, but a session that lives for the whole run plans thousands of queries:
there the optimising tier pays for itself (a warm session's flights runs took 1.27 times as
long with the first tier only, and a first load of the full data in a fresh driver 1.08 times).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.jvm_archive import archive_options, submit_args
from tests.small_data import SMALL_DATA

pytest_plugins = ["tests.scheduling"]

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("SPARK_VERSION", "3.5")
#: The key of the shop job's pseudonyms in tests (conf/jobs/shop.yml, personal_data): a fixed
#: value, not a secret, so expected pseudonyms can be computed (etl.privacy.keyed_hash).
TEST_PII_KEY = "etl-tests-pseudonym-key"
os.environ["ETL_PII_KEY"] = TEST_PII_KEY  # golden digests depend on it


# Every driver pyspark's launcher starts here, the session below and those of child processes
# (`etl` commands, the notebook's kernel), starts from the class archive of `make jvm-archive`
# (tests/jvm_archive.py) and plans like the tests' own session (tests/small_data.py); a job's
# own settings still win (base.yml turns AQE on).
os.environ.setdefault("PYSPARK_SUBMIT_ARGS", submit_args(*archive_options()))


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
            **SMALL_DATA,
        },
    )
    session = get_spark(settings)
    yield session
    session.stop()


@pytest.fixture()
def conf_dir() -> Path:
    return ROOT / "conf"
