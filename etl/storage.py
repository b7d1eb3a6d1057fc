"""Object stores behind Hadoop's FileSystem: ``s3a://`` (hadoop-aws) settings from conf, and
small FileSystem helpers (glob, exists, delete, read/write a small text file) that work the
same on a local disk, ``s3a://`` and ``gs://``.

`configure_s3a` applies `S3Settings` to the session's Hadoop configuration before the first
``s3a://`` access (hadoop-aws caches one FileSystem per bucket, built from the configuration of
that moment). Credentials are never set here: hadoop-aws's default chain reads them from the
environment (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``), the instance profile or the
container role, or from the provider named by ``s3.credentials_provider``.

Example::

    configure_s3a(spark, S3Settings(endpoint="http://127.0.0.1:5055", path_style_access=True))
    spark.read.format("delta").load("s3a://bucket/warehouse/gold/daily_revenue")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pyspark.sql import SparkSession

from etl.config import S3Settings
from etl.errors import SourceError, StateError


def s3a_options(settings: S3Settings) -> dict[str, str]:
    """The ``fs.s3a.*`` Hadoop settings for ``settings`` (nothing for an all-default one)."""
    options: dict[str, str] = {}
    if settings.endpoint:
        options["fs.s3a.endpoint"] = settings.endpoint
        if settings.endpoint.startswith("http://"):
            options["fs.s3a.connection.ssl.enabled"] = "false"
    if settings.path_style_access:
        options["fs.s3a.path.style.access"] = "true"
    if settings.region:
        options["fs.s3a.endpoint.region"] = settings.region
    if settings.credentials_provider:
        options["fs.s3a.aws.credentials.provider"] = settings.credentials_provider
    for key, value in settings.conf.items():
        if not key.startswith("fs.s3a."):
            raise SourceError(f"s3.conf: {key!r} is not an fs.s3a.* setting")
        options[key] = value
    return options


def configure_s3a(spark: SparkSession, settings: S3Settings) -> None:
    """Set the ``fs.s3a.*`` options of ``settings`` on the session's Hadoop configuration."""
    hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
    for key, value in s3a_options(settings).items():
        hadoop_conf.set(key, value)


def _jvm(spark: SparkSession) -> Any:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    return jvm


def _filesystem(spark: SparkSession, path: str) -> tuple[Any, Any]:
    hadoop_path = _jvm(spark).org.apache.hadoop.fs.Path(path)
    hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
    return hadoop_path.getFileSystem(hadoop_conf), hadoop_path


def glob(spark: SparkSession, pattern: str) -> list[str]:
    """Paths matching a Hadoop glob (``*`` within one level), sorted; ``[]`` when none."""
    fs, path = _filesystem(spark, pattern)
    return sorted(str(s.getPath().toString()) for s in (fs.globStatus(path) or []))


def exists(spark: SparkSession, path: str) -> bool:
    """Whether a file or folder is at ``path``."""
    fs, hadoop_path = _filesystem(spark, path)
    return bool(fs.exists(hadoop_path))


def delete(spark: SparkSession, path: str) -> bool:
    """Delete ``path`` recursively; False when it did not exist."""
    fs, hadoop_path = _filesystem(spark, path)
    return bool(fs.delete(hadoop_path, True))


def rename(spark: SparkSession, source: str, target: str) -> None:
    """Move the file ``source`` to ``target`` (on the same file system); `StateError` when the
    file system refuses."""
    fs, source_path = _filesystem(spark, source)
    _, target_path = _filesystem(spark, target)
    if not fs.rename(source_path, target_path):
        raise StateError(f"cannot move {source} to {target}")


def write_text(spark: SparkSession, path: str, text: str) -> None:
    """Write a small UTF-8 text file (replacing it)."""
    fs, hadoop_path = _filesystem(spark, path)
    stream = fs.create(hadoop_path, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


@contextmanager
def text_stream(spark: SparkSession, path: str) -> Iterator[Callable[[str], None]]:
    """Write a UTF-8 text file piece by piece (replacing it): the block gets a function that
    appends a piece; the file is closed when the block ends."""
    fs, hadoop_path = _filesystem(spark, path)
    stream = fs.create(hadoop_path, True)

    def write(text: str) -> None:
        stream.write(bytearray(text.encode("utf-8")))

    try:
        yield write
    finally:
        stream.close()


@contextmanager
def text_lines(spark: SparkSession, path: str) -> Iterator[Iterator[str]]:
    """Read a UTF-8 text file line by line (without line ends), one line in memory at a time;
    the file is closed when the block ends."""
    fs, hadoop_path = _filesystem(spark, path)
    jvm = _jvm(spark)
    reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(fs.open(hadoop_path), "UTF-8"))

    def lines() -> Iterator[str]:
        while (line := reader.readLine()) is not None:
            yield line

    try:
        yield lines()
    finally:
        reader.close()


def read_text(spark: SparkSession, path: str) -> str:
    """A small UTF-8 text file's content."""
    fs, hadoop_path = _filesystem(spark, path)
    jvm = _jvm(spark)
    stream = fs.open(hadoop_path)
    try:
        data = jvm.org.apache.commons.io.IOUtils.toByteArray(stream)
    finally:
        stream.close()
    return bytes(data).decode("utf-8")


def read_head(spark: SparkSession, path: str, size: int) -> bytes:
    """The first ``size`` bytes of a file (fewer when it is shorter), without reading the rest."""
    fs, hadoop_path = _filesystem(spark, path)
    jvm = _jvm(spark)
    stream = fs.open(hadoop_path)
    try:
        bounded = jvm.org.apache.commons.io.input.BoundedInputStream(stream, size)
        data = jvm.org.apache.commons.io.IOUtils.toByteArray(bounded)
    finally:
        stream.close()
    return bytes(data)


__all__ = ["configure_s3a", "delete", "glob", "read_head", "read_text", "rename", "s3a_options",
           "text_stream", "write_text"]
