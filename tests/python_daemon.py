"""The PySpark daemon of the tests' local drivers (``spark.python.daemon.module``, the hook
Spark has for such workarounds): pyspark's own daemon, started after Spark's copies of pyspark
and py4j (``$SPARK_HOME/python/lib/*.zip``) and its core jar (``$SPARK_HOME/jars/``) are taken
off ``sys.path``, so that its Python workers import the installed pyspark and py4j, as the
driver does.

Why: before every task a Python worker calls ``importlib.invalidate_caches()``, and Python
3.11's zip importer reads its whole archive's directory again there, once per package imported
from it. A worker of the tests' drivers held 13 such importers (pyspark.zip and its
subpackages, the 5,221 entries of spark-core's jar): 104 ms of CPU per task, 97 % of the
workers' CPU in a py-spy profile, for tasks that turn a few rows of ``createDataFrame`` into
Java objects. Over the suite the workers took 174 s of CPU, most of it this; 32 s with this
daemon (the same suite on the same checkout, 762 s of pytest against 819 s).

Only the tests' local drivers use it (`tests.jvm_archive.driver_options`); jobs and clusters
start pyspark's daemon as it is.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: spark-submit options that start a driver's Python workers from this module; ``PYTHONPATH``
#: finds it whatever the driver's working directory.
OPTIONS = ["--conf", "spark.python.daemon.module=tests.python_daemon",
           "--conf", f"spark.executorEnv.PYTHONPATH={Path(__file__).resolve().parents[1]}"]


def spark_copies(path: list[str], spark_home: str) -> list[str]:
    """The entries of ``path`` that are Spark's zip files of pyspark and py4j or its jars."""
    folders = {os.path.join(spark_home, "python", "lib"), os.path.join(spark_home, "jars")}
    return [p for p in path if p.endswith((".zip", ".jar"))
            and os.path.dirname(os.path.realpath(p)) in folders]


def main() -> None:
    home = os.environ.get("SPARK_HOME")
    if home:
        for entry in spark_copies(sys.path, os.path.realpath(home)):
            sys.path.remove(entry)
            sys.path_importer_cache.pop(entry, None)
    from pyspark import daemon

    daemon.manager()


if __name__ == "__main__":
    main()
