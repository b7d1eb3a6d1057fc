"""spark-submit.sh --dist --dry-run: the command ships the built artefacts, not the source tree."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pyspark

from tests.orchestration_dist import ROOT, dist  # noqa: F401 - fixture

SPARK_SUBMIT = os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-submit")


def dry_run(*args: str) -> list[str]:
    done = subprocess.run([str(ROOT / "spark-submit.sh"), "--dry-run", *args], check=True,
                          capture_output=True, text=True,
                          env={**os.environ, "ETL_PYTHON": sys.executable,
                               "SPARK_SUBMIT": SPARK_SUBMIT})
    return shlex.split(done.stdout)


def test_dist_command_uses_only_the_artefacts(dist):  # noqa: F811
    command = dry_run("--master", "spark://127.0.0.1:7077", "--packages", "--dist", str(dist),
                      "flights", "--date", "2013-01-01")
    assert command == [
        SPARK_SUBMIT, "--master", "spark://127.0.0.1:7077", "--deploy-mode", "client",
        "--name", "etl-flights",
        "--packages", ("io.delta:delta-spark_2.12:3.3.2,com.amazon.deequ:deequ:2.0.7-spark-3.5,"
                      "org.postgresql:postgresql:42.7.8,org.apache.hadoop:hadoop-aws:3.3.4,"
                      "io.openlineage:openlineage-spark_2.12:1.53.0,"
                      "org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.3,"
                      "org.apache.spark:spark-token-provider-kafka-0-10_2.12:3.5.3"),
        "--py-files", f"{dist}/etl-0.1.0-py3-none-any.whl,{dist}/deps.zip",
        "--archives", f"{dist}/conf.zip#conf",
        "--conf", f"spark.driver.extraJavaOptions=-Dlog4j2.configurationFile=file:{dist}/log4j2.properties",
        "--conf", "spark.executorEnv.SPARK_VERSION=3.5",
        "--conf", "spark.yarn.appMasterEnv.SPARK_VERSION=3.5",
        f"{dist}/jobs/flights.py", "--date", "2013-01-01",
    ]


def test_dist_folder_holds_the_artefacts(dist):  # noqa: F811
    import json
    import zipfile

    manifest = json.loads((dist / "manifest.json").read_text())
    # one spark-submit entrypoint per job of conf/jobs/
    jobs = sorted(f"jobs/{p.stem}.py" for p in (ROOT / "conf" / "jobs").glob("*.yml"))
    assert manifest["files"] == sorted(["conf.zip", "deps.zip", "etl-0.1.0-py3-none-any.whl",
                                        "jars.txt", "log4j2.properties", *jobs])
    shipped = {d.split("==")[0] for d in manifest["dependencies"]}
    assert {"pydeequ", "PyYAML", "structlog"} <= shipped
    assert not shipped & {"pyspark", "py4j", "delta-spark", "numpy", "pandas", "boto3", "botocore"}
    with zipfile.ZipFile(dist / "etl-0.1.0-py3-none-any.whl") as wheel:
        names = set(wheel.namelist())
    # zipimport needs every package folder to have an __init__.py
    assert {"etl/flow/__init__.py", "etl/config/__init__.py", "etl/submit/__init__.py",
            "etl/jars.txt"} <= names
    with zipfile.ZipFile(dist / "conf.zip") as conf:
        assert {"base.yml", "prod.yml", "jobs/flights.yml", "pipelines/daily.yml"} <= set(conf.namelist())
    with zipfile.ZipFile(dist / "deps.zip") as deps:
        tops = {n.split("/")[0] for n in deps.namelist()}
    # the jobs package (each job's transforms) travels with the dependencies, not in the wheel
    assert {"pydeequ", "yaml", "_yaml", "structlog", "jobs"} <= tops
    assert not any(n.startswith(("jobs/", "etl/domains")) for n in names)
    assert not tops & {"pyspark", "py4j", "delta", "numpy", "pandas", "boto3", "botocore"}
    assert not [n for n in deps.namelist() if n.endswith((".so", ".pyc"))]
