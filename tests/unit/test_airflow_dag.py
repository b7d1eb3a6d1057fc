"""`etl pipeline export --target airflow`: the DAG file is loaded by Airflow's own DagBag (in the
separate virtualenv .venv-airflow, which `make test` builds through `make airflow-venv`): no import
errors, the expected tasks, edges, retries, schedule and catchup, and the EMR step / Dataproc job
each task submits."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from etl.cli import main
from tests.orchestration_conf import make_conf

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_PYTHON = Path(os.environ.get("ETL_AIRFLOW_PYTHON", ROOT / ".venv-airflow" / "bin" / "python"))

LOAD = """
import json, sys
from airflow.models import DagBag
bag = DagBag(dag_folder=sys.argv[1], include_examples=False)
out = {"import_errors": {k: v[-300:] for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    tasks = {}
    for t in dag.tasks:
        tasks[t.task_id] = {
            "type": type(t).__name__, "upstream": sorted(t.upstream_task_ids),
            "retries": t.retries, "retry_delay": t.retry_delay.total_seconds(),
            "backoff": t.retry_exponential_backoff,
            "timeout": t.execution_timeout.total_seconds() if t.execution_timeout else None,
            "steps": getattr(t, "steps", None), "job": getattr(t, "job", None),
            "job_flow_id": getattr(t, "job_flow_id", None), "step_id": getattr(t, "step_id", None),
            "region": getattr(t, "region", None), "project_id": getattr(t, "project_id", None),
        }
    out["dags"][dag_id] = {"schedule": dag.schedule_interval, "catchup": dag.catchup,
                           "start_date": dag.start_date.isoformat(), "tasks": tasks}
print(json.dumps(out))
"""

PIPELINE = {"schedule": "0 6 * * *", "start_date": "2013-01-01", "catchup": True,
            "retries": 2, "retry_delay_s": 60, "retry_backoff": 2.0, "timeout_s": 3600}
JOBS = {"extract": {}, "clean": {"depends_on": ["extract"]},
        "report": {"depends_on": ["clean"], "retries": 0}}


def load_dags(folder: Path) -> dict:
    assert AIRFLOW_PYTHON.exists(), f"no Airflow virtualenv at {AIRFLOW_PYTHON}: run `make airflow-venv`"
    env = {"PATH": os.environ["PATH"], "AIRFLOW_HOME": str(folder.parent / "airflow-home"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{folder.parent}/airflow.db"}
    done = subprocess.run([str(AIRFLOW_PYTHON), "-c", LOAD, str(folder)], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def export(tmp_path, target: str) -> Path:
    conf = make_conf(tmp_path, tmp_path / "w", {j: {} for j in JOBS},
                     {"daily": {"pipeline": {"name": "daily", "target": target, **PIPELINE},
                                "jobs": JOBS}})
    out = tmp_path / "dags" / "daily.py"
    code = main(["--conf-dir", str(conf), "pipeline", "export", "daily", "--target", "airflow",
                 "--env", "local", "--out", str(out),
                 "--set", "deploy.emr.artifacts_uri=s3://artefacts/etl",
                 "--set", "deploy.dataproc.artifacts_uri=gs://artefacts/etl",
                 "--set", "deploy.dataproc.project=etl-project",
                 "--set", "deploy.dataproc.region=europe-west1",
                 "--set", "deploy.dataproc.cluster=etl-cluster"])
    assert code == 0
    return out


def test_emr_dag_has_a_step_and_a_sensor_per_job(tmp_path):
    loaded = load_dags(export(tmp_path, "emr").parent)
    assert loaded["import_errors"] == {}
    dag = loaded["dags"]["daily"]
    assert (dag["schedule"], dag["catchup"], dag["start_date"]) == (
        "0 6 * * *", True, "2013-01-01T00:00:00+00:00")
    tasks = dag["tasks"]
    assert {t: (v["type"], v["upstream"]) for t, v in tasks.items()} == {
        "extract_submit": ("EmrAddStepsOperator", []),
        "extract_wait": ("EmrStepSensor", ["extract_submit"]),
        "clean_submit": ("EmrAddStepsOperator", ["extract_wait"]),
        "clean_wait": ("EmrStepSensor", ["clean_submit"]),
        "report_submit": ("EmrAddStepsOperator", ["clean_wait"]),
        "report_wait": ("EmrStepSensor", ["report_submit"]),
    }
    assert {t: (v["retries"], v["retry_delay"], v["timeout"]) for t, v in tasks.items()} == {
        "extract_submit": (2, 60.0, 3600.0), "extract_wait": (2, 60.0, 3600.0),
        "clean_submit": (2, 60.0, 3600.0), "clean_wait": (2, 60.0, 3600.0),
        "report_submit": (0, 60.0, 3600.0), "report_wait": (0, 60.0, 3600.0)}
    assert tasks["clean_wait"]["job_flow_id"] == "{{ var.value.etl_emr_cluster_id }}"
    assert tasks["clean_wait"]["step_id"] == (
        "{{ task_instance.xcom_pull(task_ids='clean_submit')[0] }}")
    (step,) = tasks["clean_submit"]["steps"]
    root = "s3://artefacts/etl/0.1.0"
    assert step["Name"] == "etl clean {{ ds }}"
    assert step["ActionOnFailure"] == "CONTINUE"
    assert step["HadoopJarStep"]["Jar"] == "command-runner.jar"
    args = step["HadoopJarStep"]["Args"]
    assert args[:5] == ["spark-submit", "--deploy-mode", "cluster", "--name", "etl-clean"]
    assert args[-5:] == [f"{root}/jobs/clean.py", "--env", "local", "--date", "{{ ds }}"]
    assert args[args.index("--py-files") + 1] == (
        f"{root}/etl-0.1.0-py3-none-any.whl,{root}/deps.zip")


def test_dataproc_dag_submits_one_job_per_pipeline_job(tmp_path):
    loaded = load_dags(export(tmp_path, "dataproc").parent)
    assert loaded["import_errors"] == {}
    tasks = loaded["dags"]["daily"]["tasks"]
    assert {t: (v["type"], v["upstream"], v["retries"]) for t, v in tasks.items()} == {
        "extract": ("DataprocSubmitJobOperator", [], 2),
        "clean": ("DataprocSubmitJobOperator", ["extract"], 2),
        "report": ("DataprocSubmitJobOperator", ["clean"], 0),
    }
    report = tasks["report"]
    assert (report["project_id"], report["region"]) == ("etl-project", "europe-west1")
    assert report["job"]["placement"] == {"cluster_name": "etl-cluster"}
    assert report["job"]["pyspark_job"]["main_python_file_uri"] == (
        "gs://artefacts/etl/0.1.0/jobs/report.py")
    assert report["job"]["pyspark_job"]["args"] == ["--env", "local", "--date", "{{ ds }}"]
