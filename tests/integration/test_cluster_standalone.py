"""The flights job on a real Spark standalone cluster, from the artefacts of `make dist` alone.

A master and two workers of the pyspark install (as SPARK_HOME) run on 127.0.0.1 in an
environment like a cluster node's: the Python on PATH is a bare virtualenv (no pyyaml,
structlog, delta... nor pyspark), HOME is empty (no Maven or Ivy cache), and the credentials
are the S3 API server's. `spark-submit.sh --dist` submits the job from a `make dist
PLATFORM=standalone` folder with the same environment; the landing folder and the warehouse are
on the S3 API server (s3a://). Only the packed environment brings the job's Python packages, to
the driver and to every executor, and only the jar bundle its jars. One cluster serves the
module's tests."""

from __future__ import annotations

import csv
import json
import os
import shlex
import socket
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from tests.small_data import submit_options

ROOT = Path(__file__).resolve().parents[2]
ENDPOINT = os.environ.get("ETL_S3_ENDPOINT", "http://127.0.0.1:5055")
pytestmark = [pytest.mark.integration, pytest.mark.e2e]

PROBE = '''
import importlib, json, sys
from pyspark.sql import SparkSession

def where(_):
    import sys
    modules = {m: importlib.import_module(m).__file__ for m in
               ("etl", "jobs", "yaml", "structlog", "delta", "pyspark")}
    return [{"prefix": sys.prefix, "modules": modules}]

spark = SparkSession.builder.getOrCreate()
executors = spark.sparkContext.parallelize(range(4), 4).mapPartitions(where).collect()
print("PROBE " + json.dumps({"driver": where(None)[0], "executors": executors}))
spark.stop()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list[str], env: dict[str, str], cwd: Path, timeout: int = 900):
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False)
    assert done.returncode == 0, (f"{cmd[0]} exited {done.returncode}:\n{done.stdout[-4000:]}\n"
                                  f"{done.stderr[-6000:]}")
    return done


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cluster")


@pytest.fixture(scope="module")
def dist(work) -> Path:
    out = work / "dist"
    run([sys.executable, str(ROOT / "scripts" / "build_dist.py"), "--out", str(out),
         "--platform", "standalone"], dict(os.environ), ROOT)
    return out


@pytest.fixture(scope="module")
def node_env(work) -> dict[str, str]:
    """What a node has: a bare Python on PATH, an empty HOME, Java, Spark, S3 credentials."""
    import pyspark

    bare = work / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    env = {"PATH": f"{bare}/bin:/usr/bin:/bin", "HOME": str(work / "home"),
           "SPARK_HOME": os.path.dirname(pyspark.__file__),
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1",
           **{k: os.environ[k] for k in ("JAVA_HOME",) if k in os.environ}}
    (work / "home").mkdir()
    probe = subprocess.run(["python3", "-c", "import yaml"], env=env, capture_output=True,
                           text=True, check=False)
    assert probe.stderr.strip().endswith("ModuleNotFoundError: No module named 'yaml'")
    return env


@pytest.fixture(scope="module")
def lake(work, spark):
    """A bucket on the S3 API server with the landed flights of 2013-01-01; the expected counts
    come from the landed CSV."""
    import boto3

    from etl.config import S3Settings
    from etl.storage import configure_s3a

    host, port = ENDPOINT.split("//")[1].split(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        pytest.fail(f"no S3 API server at {ENDPOINT}: run scripts/services.sh start s3")
    run([sys.executable, str(ROOT / "scripts" / "land_flights.py"), "--landing",
         str(work / "landing"), "--months", "1", "--days", "1"], dict(os.environ), work)
    client = boto3.client("s3", endpoint_url=ENDPOINT, region_name="us-east-1")
    bucket = f"etl-cluster-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    for path in sorted((work / "landing").rglob("*.csv")):
        client.upload_file(str(path), bucket, f"landing/{path.relative_to(work / 'landing')}")
    configure_s3a(spark, S3Settings(endpoint=ENDPOINT, path_style_access=True))
    with open(next((work / "landing" / "flights").glob("*.csv")), newline="") as handle:
        flights = list(csv.DictReader(handle))
    yield f"s3a://{bucket}", flights
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)


@pytest.fixture(scope="module")
def cluster(work, node_env):
    env = {**node_env, "ETL_SERVICES_DIR": str(work / "services"), "ETL_SPARK_WORKERS": "2",
           "ETL_SPARK_MASTER_PORT": str(free_port()), "ETL_SPARK_MASTER_UI_PORT": str(free_port()),
           "ETL_SPARK_WORKER_UI_PORT": "0", "ETL_SPARK_WORKER_CORES": "1",
           "ETL_SPARK_WORKER_MEMORY": "1g", "ETL_SPARK_START_TIMEOUT": "180"}
    script = str(ROOT / "scripts" / "cluster.sh")
    try:
        run([script, "start"], env, work)
        yield f"spark://127.0.0.1:{env['ETL_SPARK_MASTER_PORT']}", work / "services" / "spark"
    finally:
        subprocess.run([script, "stop"], env=env, cwd=work, check=False, timeout=120)


# The driver and the executors compile with the JIT's first tier only: they live for one small
# job, start without the tests' class archive (tests/jvm_archive.py), and the optimising tier's
# compilations never paid for themselves there (this module took 0.85 of its time, 153 s
# against 180 s, two runs of each, alternated, on an idle 2-core machine).
FIRST_TIER = "-XX:TieredStopAtLevel=1"
SPARK_CONF = ["--conf", "spark.executor.memory=512m", "--conf", "spark.executor.cores=1",
              "--conf", "spark.cores.max=2", "--conf", "spark.ui.enabled=false",
              "--conf", "spark.databricks.delta.snapshotPartitions=2",
              "--conf", f"spark.driver.defaultJavaOptions={FIRST_TIER}",
              "--conf", f"spark.executor.extraJavaOptions={FIRST_TIER}",
              *submit_options()]


def test_flights_job_runs_from_the_artefacts_alone(spark, work, dist, node_env, lake, cluster):
    root, flights = lake
    url, state = cluster
    env = {**node_env, "ETL_WAREHOUSE": f"{root}/warehouse", "ETL_LANDING": f"{root}/landing",
           "ETL_S3_ENDPOINT": ENDPOINT}
    done = run([str(ROOT / "spark-submit.sh"), "--master", url, "--dist", str(dist),
                *SPARK_CONF, "flights", "--set", "spark.shuffle_partitions=2"], env, work)

    n = len(flights)
    assert f"rows: read {n:,} = loaded {n:,} + quarantined 0 + filtered (older duplicate " \
           "versions) 0" in done.stdout

    def table(path: str):
        return spark.read.format("delta").load(f"{root}/warehouse/{path}")

    assert table("bronze/flights").count() == n
    silver = table("silver/flights")
    assert silver.count() == n
    assert silver.select("carrier", "flight", "time_hour").distinct().count() == n
    days = Counter((int(f["year"]), int(f["month"]), int(f["day"])) for f in flights)
    assert sorted(tuple(r) for r in silver.groupBy("year", "month", "day").count().collect()) == \
        sorted((*day, count) for day, count in days.items())
    gold = table("gold/carrier_daily_performance")
    groups = {(f["year"], f["month"], f["day"], f["carrier"], f["origin"]) for f in flights}
    assert (gold.count(), gold.agg(F.sum("flights")).first()[0]) == (len(groups), n)

    (record,) = table("_etl/runs").where("record_type = 'run'").collect()
    assert (record.job, record.status, record.rows_read, record.rows_loaded) == (
        "flights", "succeeded", n, n)
    assert record.spark_app_id.startswith("app-")  # a standalone application, not local mode
    # the run's lineage, one object per event (the packed environment has no fsspec)
    import boto3

    from etl.lineage import lineage_run_id

    bucket = root.removeprefix("s3a://")
    listed = boto3.client("s3", endpoint_url=ENDPOINT, region_name="us-east-1").list_objects_v2(
        Bucket=bucket, Prefix="warehouse/_etl/lineage/")["Contents"]
    run_uuid = lineage_run_id(record.run_id)
    assert [o["Key"].split("-", 1)[1] for o in sorted(listed, key=lambda o: o["Key"])] == [
        f"START-{run_uuid}.json", f"COMPLETE-{run_uuid}.json"]
    assert "lineage event not emitted" not in done.stdout
    for worker in ("worker-1", "worker-2"):  # an executor on each worker, in the environment
        assert f"Asked to launch executor {record.spark_app_id}/" in (
            state / f"{worker}.log").read_text()
        (unpacked,) = (state / worker / record.spark_app_id).glob("*/environment/bin/python")
        assert os.readlink(unpacked) == json.loads(
            (dist / "manifest.json").read_text())["python"]["interpreter"]
    home = Path(node_env["HOME"])
    assert sorted(p.name for p in home.iterdir()) == [".cache"]  # no .m2, no .ivy2
    assert sorted(p.name for p in (home / ".cache").iterdir()) == ["etl"]


def test_driver_and_executors_run_the_packed_environment(work, dist, node_env, cluster):
    """The same submission with a probe as the primary resource: where Python and each module
    come from, on the driver and on the executors."""
    url, state = cluster
    command = shlex.split(run([str(ROOT / "spark-submit.sh"), "--dry-run", "--master", url,
                               "--dist", str(dist), *SPARK_CONF, "flights"], node_env,
                              work).stdout)
    main = command.index(next(a for a in command if a.endswith(".py") and "/main-" in a))
    probe = work / "probe.py"
    probe.write_text(PROBE)
    done = run([*command[:main], str(probe)], {**node_env, "SPARK_LOCAL_IP": "127.0.0.1"}, work)
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("PROBE ")]
    found = json.loads(line[len("PROBE "):])
    environment = json.loads((dist / "manifest.json").read_text())["environment"]["file"]
    cache = Path(node_env["HOME"]) / ".cache" / "etl" / environment.removesuffix(".tar.gz")
    spark_python = f"{node_env['SPARK_HOME']}/python/lib/pyspark.zip/pyspark/__init__.py"
    places = [("driver", found["driver"])] + [("executor", e) for e in found["executors"]]
    for role, seen in places:
        prefix = seen["prefix"]
        if role == "driver":
            assert prefix == str(cache)
        else:
            assert prefix.startswith(str(state / "worker-")) and prefix.endswith("/environment")
        site = f"{prefix}/lib/python3.11/site-packages"
        assert {m: f.startswith(site) for m, f in seen["modules"].items()} == {
            "etl": True, "jobs": True, "yaml": True, "structlog": True, "delta": True,
            "pyspark": False}
        assert seen["modules"]["pyspark"] == spark_python  # the cluster's Spark, not packed
