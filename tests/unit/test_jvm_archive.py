"""The class archive the tests' drivers start from (tests/jvm_archive.py) is really used: a
driver started the way the tests start them maps Spark's and Delta's classes from it, and runs
with the tests' JIT thresholds and collector (tests/small_data.py) and their Python daemon
(tests/python_daemon.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.jvm_archive import ARCHIVE, QUIET, ROOT, archive_options, submit_args
from tests.python_daemon import spark_copies
from tests.small_data import GC, JIT

DRIVER = """
import json
from pyspark.sql import SparkSession
spark = SparkSession.builder.master("local[1]").getOrCreate()
spark._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()
runtime = spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
print("JVM", json.dumps(list(runtime.getInputArguments())))
spark.stop()
"""


def test_before_the_archive_is_dumped_the_drivers_keep_the_jit_thresholds(tmp_path):
    *_, java = archive_options(tmp_path / "drivers.jsa")
    assert java == f"spark.driver.defaultJavaOptions={' '.join(JIT)} -XX:+UseParallelGC {QUIET}"


@pytest.mark.skipif(not ARCHIVE.is_file(), reason="no class archive yet: make jvm-archive")
def test_a_driver_maps_spark_and_delta_classes_from_the_archive(tmp_path):
    log = tmp_path / "classes.log"
    *options, java = archive_options()
    env = {**os.environ, "PYSPARK_SUBMIT_ARGS": submit_args(
        *options, f"{java} -Xlog:class+load=info:file={log}")}
    done = subprocess.run([sys.executable, "-c", DRIVER], cwd=ROOT, env=env, check=False,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("JVM ")]
    arguments = json.loads(line[len("JVM "):])
    assert set(JIT) | set(GC) | {f"-XX:SharedArchiveFile={ARCHIVE}"} <= set(arguments)
    sources = {}
    for line in log.read_text().splitlines():
        name, _, source = line.partition(" source: ")
        sources[name.rsplit(" ", 1)[-1]] = source
    assert sources["org.apache.spark.sql.SparkSession"] == "shared objects file (top)"
    assert sources["org.apache.spark.sql.delta.DeltaLog"] == "shared objects file (top)"


def test_spark_copies_of_pyspark_and_its_jars_are_the_entries_taken_off_the_path(tmp_path):
    home = tmp_path / "pyspark"
    (home / "python" / "lib").mkdir(parents=True)
    (home / "jars").mkdir()
    path = [str(ROOT), str(home / "python" / "lib" / "pyspark.zip"),
            str(home / "python" / "lib" / "py4j-0.10.9.7-src.zip"),
            str(home / "jars" / "spark-core_2.12-3.5.9.jar"), str(tmp_path / "mine.zip"),
            str(tmp_path / "site-packages")]
    assert spark_copies(path, str(home)) == path[1:4]


def test_the_python_workers_of_a_test_driver_import_the_installed_pyspark(spark):
    """Without Spark's zip files on their path, a task's importlib.invalidate_caches() reads no
    archive again (tests/python_daemon.py)."""
    import pyspark

    def where(_):
        import os
        import sys

        import pyspark

        yield pyspark.__file__, [p for p in sys.path if os.path.isfile(p)]  # archives

    found = spark.sparkContext.parallelize([0], 1).mapPartitions(where).collect()
    assert found == [(pyspark.__file__, [])]
