"""`etl pipeline export --target airflow`: the DAG file is loaded by Airflow's own DagBag (in the
separate virtualenv .venv-airflow, which `make test` builds through `make airflow-venv`): no import
errors, the expected tasks, edges, retries, schedule and catchup, and the EMR step / Dataproc job
each task submits."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from etl.cli import main
from tests.orchestration_conf import make_conf
from tests.orchestration_dist import names

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_PYTHON = Path(os.environ.get("ETL_AIRFLOW_PYTHON", ROOT / ".venv-airflow" / "bin" / "python"))

AIRFLOW = """
import json, sys
from airflow.models import DagBag

def errors(bag):
    return {k: v[-300:] for k, v in bag.import_errors.items()}

def loaded(bag):
    out = {"import_errors": errors(bag), "dags": {}}
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
    return out

def rendered(bag):
    out = {"import_errors": errors(bag)}
    dag = bag.dags.get("daily")
    if dag is not None:
        out["description"] = dag.description
        for task in dag.tasks:
            for field in ("steps", "job"):
                if hasattr(task, field):
                    out[task.task_id] = task.render_template(getattr(task, field), {"ds": "2013-01-02"})
    return out

answers = {}
for name, (kind, folder) in json.loads(sys.argv[1]).items():
    bag = DagBag(dag_folder=folder, include_examples=False)
    answers[name] = loaded(bag) if kind == "load" else rendered(bag)
print(json.dumps(answers))
"""

PIPELINE = {"schedule": "0 6 * * *", "start_date": "2013-01-01", "catchup": True,
            "retries": 2, "retry_delay_s": 60, "retry_backoff": 2.0, "timeout_s": 3600}
JOBS = {"extract": {}, "clean": {"depends_on": ["extract"]},
        "report": {"depends_on": ["clean"], "retries": 0}}


def airflow(root: Path, requests: dict[str, tuple[str, Path]]) -> dict[str, dict]:
    """Airflow's own DagBag on each requested DAG folder, all in one process of .venv-airflow
    run in ``root`` (each Airflow start-up costs seconds). ``("load", folder)`` answers with the
    DAGs, their settings and tasks; ``("render", folder)`` with DAG ``daily``'s description and
    each task's steps or job rendered for 2013-01-02. Every answer holds the folder's import
    errors."""
    assert AIRFLOW_PYTHON.exists(), f"no Airflow virtualenv at {AIRFLOW_PYTHON}: run `make airflow-venv`"
    env = {"PATH": os.environ["PATH"], "AIRFLOW_HOME": str(root / "airflow-home"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{root}/airflow.db"}
    argument = json.dumps({name: (kind, str(folder)) for name, (kind, folder) in requests.items()})
    done = subprocess.run([str(AIRFLOW_PYTHON), "-c", AIRFLOW, argument], env=env, cwd=root,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


PLATFORMS = {"emr": "emr-7", "dataproc": "dataproc-2.2"}


def export(tmp_path, target: str, dist: Path, pipeline: dict | None = None,
           jobs: dict | None = None, extra: tuple[str, ...] = ()) -> Path:
    jobs = jobs or JOBS
    conf = make_conf(tmp_path, tmp_path / "w", {j: {} for j in jobs},
                     {"daily": {"pipeline": {"name": "daily", "target": target,
                                             **(pipeline or PIPELINE)},
                                "jobs": jobs}})
    out = tmp_path / "dags" / "daily.py"
    code = main(["--conf-dir", str(conf), "pipeline", "export", "daily", "--target", "airflow",
                 "--env", "local", "--out", str(out),
                 "--set", f"deploy.platform={PLATFORMS[target]}",
                 "--set", f"deploy.dist_dir={dist}",
                 "--set", "deploy.emr.artifacts_uri=s3://artefacts/etl",
                 "--set", "deploy.dataproc.artifacts_uri=gs://artefacts/etl",
                 "--set", "deploy.dataproc.project=etl-project",
                 "--set", "deploy.dataproc.region=europe-west1",
                 "--set", "deploy.dataproc.cluster=etl-cluster", *extra])
    assert code == 0
    return out


HOSTILE = 'It ends """ + __import__("os").system("touch PWNED") + """ and has \\U0001 \\N{x} {{ 7 * 7 }}'
JINJA = "params.note={{ conn.aws_default.password }}{% if 1 %}x{% endif %}{# c #}"
SUFFIX = "params.file=report.json"


@pytest.fixture(scope="module")
def dags(tmp_path_factory, dist_for) -> tuple[Path, dict[str, dict]]:
    """The module's DAG files, exported first and then loaded or rendered by one Airflow
    process (run in the returned folder): ``emr`` and ``dataproc`` loaded; ``hostile-emr`` and
    ``hostile-dataproc`` (a description that would close the docstring or be a bad escape,
    --set values with Jinja or a template file extension) rendered."""
    def folder(name: str, target: str, **kwargs) -> Path:
        platform = PLATFORMS[target]
        return export(tmp_path_factory.mktemp(name), target, dist_for(platform), **kwargs).parent

    hostile = {**PIPELINE, "description": HOSTILE}
    requests = {
        "emr": ("load", folder("emr", "emr")),
        "dataproc": ("load", folder("dataproc", "dataproc")),
        "hostile-emr": ("render", folder("hostile-emr", "emr", pipeline=hostile,
                                         jobs={"extract": {"set": [JINJA, SUFFIX]}})),
        "hostile-dataproc": ("render", folder("hostile-dataproc", "dataproc", pipeline=hostile,
                                              jobs={"extract": {"set": [JINJA]}})),
    }
    root = tmp_path_factory.mktemp("airflow")
    return root, airflow(root, requests)


def test_emr_dag_has_a_step_and_a_sensor_per_job(dags, dist_for):
    dist = dist_for("emr-7")
    loaded = dags[1]["emr"]
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
    m, root = names(dist), "s3://artefacts/etl"
    assert step["Name"] == "etl clean {{ ds }}"
    assert step["ActionOnFailure"] == "CONTINUE"
    assert step["HadoopJarStep"]["Jar"] == "command-runner.jar"
    args = step["HadoopJarStep"]["Args"]
    assert args[:5] == ["spark-submit", "--deploy-mode", "cluster", "--name", "etl-clean"]
    assert args[-7:] == [f"{root}/{m['main']['file']}", "run", "clean", "--env", "local",
                         "--date", "{{ ds }}"]
    assert args[args.index("--archives") + 1] == (
        f"{root}/{m['environment']['file']}#environment,{root}/{m['conf']['file']}#conf")


def test_dataproc_dag_submits_one_job_per_pipeline_job(dags, dist_for):
    dist = dist_for("dataproc-2.2")
    loaded = dags[1]["dataproc"]
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
        f"gs://artefacts/etl/{names(dist)['main']['file']}")
    assert report["job"]["pyspark_job"]["args"] == [
        "run", "report", "--env", "local", "--date", "{{ ds }}"]


def test_strings_from_configuration_are_escaped_for_python_and_jinja(dags):
    """A description that would close the docstring or be a bad escape, and --set values with
    Jinja or a template file extension: the DAG imports, and renders them back as they are."""
    root, answers = dags
    rendered = answers["hostile-emr"]
    assert rendered["import_errors"] == {}
    assert rendered["description"] == HOSTILE
    assert not (root / "PWNED").exists()
    args = rendered["extract_submit"][0]["HadoopJarStep"]["Args"]
    assert args[-6:] == ["--date", "2013-01-02", "--set", JINJA, "--set", SUFFIX]
    assert rendered["extract_submit"][0]["Name"] == "etl extract 2013-01-02"

    rendered = answers["hostile-dataproc"]
    assert rendered["import_errors"] == {}
    job = rendered["extract"]
    assert job["pyspark_job"]["args"][-4:] == ["--date", "2013-01-02", "--set", JINJA]
