"""Dataproc: `etl submit --target dataproc --dry-run` and `etl pipeline export --target
dataproc-workflow`, parsed back into google-cloud-dataproc's message types and checked field by
field."""

from __future__ import annotations

import json

import pytest
from google.cloud import dataproc_v1

from etl.cli import main
from tests.orchestration_conf import make_conf
from tests.orchestration_dist import ROOT, names

BASE = "gs://etl-artefacts/etl"
PYTHON = "./environment/bin/python"
DEPLOY = ["--set", f"deploy.dataproc.artifacts_uri={BASE}",
          "--set", "deploy.dataproc.project=etl-project",
          "--set", "deploy.dataproc.spark_conf={spark.dynamicAllocation.enabled: 'false'}",
          "--set", "deploy.platform=dataproc-2.2"]


def remote(dist):
    m = names(dist)
    return {"env": f"{BASE}/{m['environment']['file']}", "conf": f"{BASE}/{m['conf']['file']}",
            "main": f"{BASE}/{m['main']['file']}",
            "jars": [f"{BASE}/{m['jars']['folder']}/{j['file']}" for j in m["jars"]["files"]]}


def test_submit_builds_a_submit_job_request(dist_for, capsys, monkeypatch):
    dist = dist_for("dataproc-2.2")
    monkeypatch.setenv("ETL_WAREHOUSE", "gs://lake/warehouse")
    monkeypatch.setenv("ETL_LANDING", "gs://lake/landing")
    code = main(["--conf-dir", str(ROOT / "conf"), "submit", "flights",
                 "--cluster", "etl-cluster", "--region", "europe-west1", "--date", "2013-01-05",
                 "--dry-run", "--set", f"deploy.dist_dir={dist}", *DEPLOY,
                 "--set", "spark.shuffle_partitions=64"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    uris = remote(dist)
    assert [u["uri"] for u in printed["upload"]] == [uris["env"], uris["conf"], uris["main"],
                                                     *uris["jars"]]
    # the client library's own types parse it back (unknown fields or wrong types would fail)
    request = dataproc_v1.SubmitJobRequest.from_json(json.dumps(printed["submit_job"]))
    assert (request.project_id, request.region) == ("etl-project", "europe-west1")
    assert request.job.placement.cluster_name == "etl-cluster"
    assert dict(request.job.labels) == {"etl-job": "flights"}
    job = request.job.pyspark_job
    assert job.main_python_file_uri == uris["main"]
    assert list(job.python_file_uris) == []
    assert list(job.jar_file_uris) == uris["jars"]
    assert list(job.archive_uris) == [f"{uris['env']}#environment", f"{uris['conf']}#conf"]
    assert list(job.args) == ["run", "flights", "--env", "prod", "--date", "2013-01-05",
                              "--set", "spark.shuffle_partitions=64"]
    assert dict(job.properties) == {
        "spark.submit.deployMode": "cluster",
        "spark.yarn.appMasterEnv.PYSPARK_PYTHON": PYTHON,
        "spark.yarn.appMasterEnv.PYSPARK_DRIVER_PYTHON": PYTHON,
        "spark.yarn.appMasterEnv.SPARK_VERSION": "3.5",
        "spark.yarn.appMasterEnv.ETL_WAREHOUSE": "gs://lake/warehouse",
        "spark.yarn.appMasterEnv.ETL_LANDING": "gs://lake/landing",
        "spark.executorEnv.PYSPARK_PYTHON": PYTHON,
        "spark.executorEnv.SPARK_VERSION": "3.5",
        "spark.executorEnv.ETL_WAREHOUSE": "gs://lake/warehouse",
        "spark.executorEnv.ETL_LANDING": "gs://lake/landing",
        "spark.dynamicAllocation.enabled": "false",
    }
    # the packed environment links to the interpreter of Dataproc 2.2 images
    assert names(dist)["python"]["interpreter"] == "/opt/conda/default/bin/python3.11"


def test_submit_without_a_cluster_names_the_key(dist_for, capsys, monkeypatch):
    monkeypatch.setenv("ETL_WAREHOUSE", "gs://lake/warehouse")
    monkeypatch.setenv("ETL_LANDING", "gs://lake/landing")
    monkeypatch.delenv("ETL_DATAPROC_CLUSTER", raising=False)
    code = main(["--conf-dir", str(ROOT / "conf"), "submit", "flights", "--target", "dataproc",
                 "--region", "europe-west1", "--dry-run",
                 "--set", f"deploy.dist_dir={dist_for('dataproc-2.2')}", *DEPLOY])
    assert code == 2
    assert capsys.readouterr().err == (
        "etl: error: deploy.dataproc.cluster: required for Dataproc (in conf or on the command "
        "line)\n")


@pytest.fixture()
def pipeline_conf(tmp_path):
    return make_conf(tmp_path, tmp_path / "w", {"extract": {}, "clean": {}, "report": {}}, {
        "nightly": {"pipeline": {"name": "nightly", "schedule": "30 2 * * *",
                                 "start_date": "2013-01-01", "catchup": True, "target": "dataproc",
                                 "retries": 3, "retry_delay_s": 120, "timeout_s": 1800},
                    "jobs": {"extract": {}, "clean": {"depends_on": ["extract"],
                                                      "set": ["params.level=2"]},
                             "report": {"depends_on": ["extract", "clean"], "retries": 0}}}})


def test_workflow_template_steps_follow_the_dependencies(pipeline_conf, tmp_path,
                                                         dist_for):
    dist = dist_for("dataproc-2.2")
    out = tmp_path / "nightly.json"
    code = main(["--conf-dir", str(pipeline_conf), "pipeline", "export", "nightly", "--target",
                 "dataproc-workflow", "--env", "local", "--out", str(out), *DEPLOY,
                 "--set", f"deploy.dist_dir={dist}", "--set", "deploy.dataproc.cluster=etl-cluster"])
    assert code == 0
    template = dataproc_v1.WorkflowTemplate.from_json(out.read_text())
    assert template.id == "nightly"
    assert dict(template.placement.cluster_selector.cluster_labels) == {
        "goog-dataproc-cluster-name": "etl-cluster"}
    assert [(j.step_id, list(j.prerequisite_step_ids)) for j in template.jobs] == [
        ("extract", []), ("clean", ["extract"]), ("report", ["extract", "clean"])]
    uris = remote(dist)
    for job in template.jobs:
        assert job.pyspark_job.main_python_file_uri == uris["main"]
        assert list(job.pyspark_job.archive_uris) == [f"{uris['env']}#environment",
                                                      f"{uris['conf']}#conf"]
    # a pipeline's per-job `set` reaches that job's run
    assert {j.step_id: list(j.pyspark_job.args) for j in template.jobs} == {
        "extract": ["run", "extract", "--env", "local", "--date", "LOGICAL_DATE"],
        "clean": ["run", "clean", "--env", "local", "--date", "LOGICAL_DATE",
                  "--set", "params.level=2"],
        "report": ["run", "report", "--env", "local", "--date", "LOGICAL_DATE"]}
    (parameter,) = template.parameters
    assert (parameter.name, list(parameter.fields)) == ("LOGICAL_DATE", [
        "jobs['extract'].pysparkJob.args[5]", "jobs['clean'].pysparkJob.args[5]",
        "jobs['report'].pysparkJob.args[5]"])
