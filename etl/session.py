"""The one SparkSession factory.

Two modes, chosen by how the process started:

* **local** (``python -m etl``, ``etl``, pytest): the factory sets the master from conf
  (``local[*]``), few shuffle partitions, no UI, the driver memory, and puts every jar of the
  resolved jar folder (``make jars``) on ``spark.jars``, so start-up never downloads anything.
* **submitted** (launched by ``spark-submit``, locally or on EMR, Dataproc, a standalone
  cluster): the factory never sets master, jars or memory; spark-submit gave them.

Both add the Delta extensions and catalog and the settings from conf. A session that already
exists (a notebook, the test fixture) is reused as it is. `in_threads` runs driver-bound
Spark work of one run side by side, each thread with the run's job group and log context.

Example::

    spark = get_spark(config.spark)
"""

from __future__ import annotations

import contextvars
import os
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from pyspark import inheritable_thread_target
from pyspark.sql import SparkSession

from etl.config import SparkSettings
from etl.errors import ConfigError

Builder = SparkSession.Builder
T = TypeVar("T")
R = TypeVar("R")


def launched_by_spark_submit() -> bool:
    """True when spark-submit started this Python driver (it passes the gateway port)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def with_delta(builder: Builder) -> Builder:
    return builder.config(
        "spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension"
    ).config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")


def local_jars(jars_dir: str | os.PathLike[str]) -> list[str]:
    """The resolved jars, or a ConfigError telling how to resolve them."""
    folder = Path(jars_dir)
    jars = sorted(str(p.resolve()) for p in folder.glob("*.jar"))
    if not jars:
        raise ConfigError(
            f"no jars in {folder} (run `make jars` to resolve etl/jars.txt)",
            file="spark.jars_dir",
        )
    return jars


LOG4J_CONFIG = Path(__file__).resolve().parent / "log4j2.properties"


def with_local_mode(builder: Builder, settings: SparkSettings) -> Builder:
    # Python workers (UDFs) run this interpreter, not whatever ``python3`` is on the PATH
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return (
        builder.master(settings.master)
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{LOG4J_CONFIG}")
        .config("spark.jars", ",".join(local_jars(settings.jars_dir)))
        .config("spark.driver.memory", settings.driver_memory)
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
    )


def with_settings(builder: Builder, settings: SparkSettings) -> Builder:
    builder = builder.appName(settings.app_name).config(
        "spark.sql.shuffle.partitions", str(settings.shuffle_partitions)
    )
    for key, value in settings.conf.items():
        builder = builder.config(key, value)
    return builder


def get_spark(settings: SparkSettings) -> SparkSession:
    """Return the active SparkSession, or build one for local or submitted runs."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = with_settings(SparkSession.builder, settings)
    if not launched_by_spark_submit():
        builder = with_local_mode(builder, settings)
    spark = with_delta(builder).getOrCreate()
    spark.sparkContext.setLogLevel(settings.log_level)
    return spark


def in_threads(work: Callable[[T], R], items: Iterable[T], *, threads: int) -> list[R]:
    """``[work(item) for item in items]``, ``threads`` at a time: for driver-bound Spark work
    (small commits, plan building) that would otherwise wait on each other. Each thread has
    the caller's Spark job group and description (a step counts its jobs) and the caller's
    log context. Every item runs to its end; then the first failure, in the order of
    ``items``, is raised."""
    todo = list(items)
    if threads <= 1 or len(todo) <= 1:
        return [work(item) for item in todo]
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="etl") as pool:
        futures = [pool.submit(contextvars.copy_context().run, inheritable_thread_target(work),
                               item) for item in todo]
        return [future.result() for future in futures]
