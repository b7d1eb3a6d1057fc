"""A real Spark standalone cluster on 127.0.0.1 (master + one worker from the pyspark install)
runs the flights job submitted by spark-submit.sh with the artefacts of `make dist`: the driver
Python has pyspark but not the etl package, so the job can only come from the built wheel."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from tests.flights_expected import package_flights

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list[str], env: dict[str, str], cwd: Path, timeout: int = 600):
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False)
    assert done.returncode == 0, f"{cmd[0]} exited {done.returncode}:\n{done.stdout}\n{done.stderr[-4000:]}"
    return done


@pytest.fixture()
def deps_only_python(tmp_path) -> Path:
    """A virtualenv that sees this environment's packages (pyspark, PyYAML...) through a path
    entry but not the editable install of etl, whose hook only a site .pth runs."""
    venv = tmp_path / "pyenv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "cluster-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = venv / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import pyspark; import etl"], check=False,
                           capture_output=True,
                           text=True, cwd=tmp_path, env={"PATH": os.environ["PATH"]})
    assert probe.stderr.strip().endswith("ModuleNotFoundError: No module named 'etl'")
    return python


def test_flights_job_on_a_standalone_cluster_from_the_built_artefacts(spark, tmp_path,
                                                                      deps_only_python):
    import pyspark

    dist, work = tmp_path / "dist", tmp_path / "work"
    work.mkdir()
    flights = package_flights(dt.date(2013, 1, 1))  # what --months 1 --days 1 lands
    landed = len(flights)
    base_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path),
                **{k: os.environ[k] for k in ("JAVA_HOME",) if k in os.environ}}
    run([sys.executable, str(ROOT / "scripts" / "build_dist.py"), "--out", str(dist)],
        {**os.environ, "PYTHONPATH": str(ROOT)}, ROOT)
    run([sys.executable, str(ROOT / "scripts" / "land_flights.py"), "--landing",
         str(work / "landing"), "--months", "1", "--days", "1"], dict(os.environ), work)

    spark_home = os.path.dirname(pyspark.__file__)
    port = free_port()
    cluster_env = {**base_env, "ETL_PYTHON": str(deps_only_python),
                   "ETL_SERVICES_DIR": str(tmp_path / "services"),
                   "ETL_SPARK_MASTER_PORT": str(port),
                   "ETL_SPARK_MASTER_UI_PORT": str(free_port()),
                   "ETL_SPARK_WORKER_UI_PORT": str(free_port()),
                   "ETL_SPARK_WORKER_MEMORY": "1g", "ETL_SPARK_WORKER_CORES": "1",
                   "ETL_SPARK_START_TIMEOUT": "120"}
    cluster = [str(ROOT / "scripts" / "cluster.sh")]
    try:
        run([*cluster, "start"], cluster_env, work)
        submit_env = {**cluster_env, "SPARK_HOME": spark_home,
                      "SPARK_SUBMIT": os.path.join(spark_home, "bin", "spark-submit"),
                      "ETL_WAREHOUSE": str(work / "warehouse"),
                      "ETL_LANDING": str(work / "landing")}
        done = run([str(ROOT / "spark-submit.sh"), "--master", f"spark://127.0.0.1:{port}",
                    "--dist", str(dist), "--conf", "spark.executor.memory=512m",
                    "--conf", "spark.cores.max=1", "--conf", "spark.ui.enabled=false",
                    "--conf", "spark.databricks.delta.snapshotPartitions=2",
                    "flights", "--set", "spark.shuffle_partitions=2"], submit_env, work)
        assert (f"rows: read {landed} = loaded {landed} + quarantined 0 + filtered (older "
                "duplicate versions) 0") in done.stdout
    finally:
        subprocess.run([*cluster, "stop"], env=cluster_env, cwd=work, check=False, timeout=60)

    warehouse = work / "warehouse"
    def table(path: str):
        return spark.read.format("delta").load(str(warehouse / path))

    assert table("bronze/flights").count() == landed
    silver = table("silver/flights")
    assert silver.count() == landed
    assert [tuple(r) for r in silver.groupBy("year", "month", "day").count().collect()] == [
        (2013, 1, 1, landed)]
    gold = table("gold/carrier_daily_performance")
    # one gold row per (date, carrier, origin) of the day's flights
    assert (gold.count(), gold.agg(F.sum("flights")).first()[0]) == (
        len({(f["carrier"], f["origin"]) for f in flights}), landed)
    (record,) = table("_etl/runs").where("record_type = 'run'").collect()
    assert (record.job, record.status, record.rows_read, record.rows_loaded) == (
        "flights", "succeeded", landed, landed)
    assert record.spark_app_id.startswith("app-")  # a standalone application, not local mode
    worker_log = (tmp_path / "services" / "spark" / "worker.log").read_text()
    assert f"Asked to launch executor {record.spark_app_id}/" in worker_log
