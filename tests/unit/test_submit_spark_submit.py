"""spark-submit.sh --dist --dry-run: the command uses only the artefacts of `make dist` (the
packed environment as the driver's and the executors' Python, the jar bundle, the conf archive,
the generic driver) and a Spark installation; never Maven."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pyspark

from tests.orchestration_dist import ROOT, names

SPARK_HOME = os.path.dirname(pyspark.__file__)


def dry_run(tmp_path: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SPARK_HOME": SPARK_HOME,
           "ETL_DIST_CACHE": str(tmp_path / "cache")}
    return subprocess.run([str(ROOT / "spark-submit.sh"), "--dry-run", *args], check=check,
                          capture_output=True, text=True, env=env)


def test_dist_command_uses_only_the_artefacts(dist_for, tmp_path):
    dist = dist_for("standalone")
    m, cache = names(dist), tmp_path / "cache"
    command = shlex.split(dry_run(tmp_path, "--master", "spark://127.0.0.1:7077", "--dist",
                                  str(dist), "flights", "--date", "2013-01-01").stdout)
    jars = dist / m["jars"]["folder"]
    environment, conf = m["environment"]["file"], m["conf"]["file"]
    assert command == [
        f"{SPARK_HOME}/bin/spark-submit", "--master", "spark://127.0.0.1:7077",
        "--deploy-mode", "client", "--name", "etl-flights",
        "--jars", f"{jars}/deequ-2.0.7-spark-3.5.jar,{jars}/delta-spark_2.12-3.3.2.jar",
        "--archives", f"{dist}/{environment}#environment,{dist}/{conf}#conf",
        "--conf", "spark.pyspark.python=./environment/bin/python",
        "--conf", f"spark.pyspark.driver.python={cache}/{environment[:-7]}/bin/python",
        "--conf", "spark.executorEnv.SPARK_VERSION=3.5",
        "--conf", f"spark.driver.extraJavaOptions=-Dlog4j2.configurationFile=file:{dist}/log4j2.properties",
        f"{dist}/{m['main']['file']}", "--conf-dir", f"{cache}/{conf[:-4]}",
        "run", "flights", "--date", "2013-01-01",
    ]


def test_a_local_master_runs_the_executors_in_the_drivers_python(dist_for, tmp_path):
    dist = dist_for("standalone")
    command = shlex.split(dry_run(tmp_path, "--dist", str(dist), "flights").stdout)
    python = f"{tmp_path / 'cache'}/{names(dist)['environment']['file'][:-7]}/bin/python"
    assert "--archives" not in command
    assert command[command.index("--master") + 1] == "local[2]"
    assert [command[i + 1] for i, a in enumerate(command) if a == "--conf"][:2] == [
        f"spark.pyspark.python={python}", f"spark.pyspark.driver.python={python}"]


def test_artefacts_for_another_platform_or_maven_are_refused(dist_for, tmp_path):
    done = dry_run(tmp_path, "--dist", str(dist_for("emr-7")), "flights", check=False)
    assert (done.returncode, done.stderr) == (2, (
        f"spark-submit.sh: {dist_for('emr-7')} was not built for platform standalone "
        "(make dist PLATFORM=standalone)\n"))
    done = dry_run(tmp_path, "--packages", "--dist", str(dist_for("standalone")), "flights",
                   check=False)
    assert (done.returncode, done.stderr) == (
        2, "spark-submit.sh: --packages: artefacts of make dist never resolve from Maven\n")
