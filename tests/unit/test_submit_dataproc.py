"""Dataproc: `etl submit --target dataproc --dry-run` and `etl pipeline export --target
dataproc-workflow`, parsed back into google-cloud-dataproc's message types and checked field by
field."""

from __future__ import annotations

import json

import pytest
from google.cloud import dataproc_v1

from etl.cli import main
from tests.orchestration_conf import make_conf
from tests.orchestration_dist import ROOT, dist  # noqa: F401 - fixture

PACKAGES = (
    "io.delta:delta-spark_2.12:3.3.2,com.amazon.deequ:deequ:2.0.7-spark-3.5,org.postgresql:postgresql:42.7.8,"
    "org.apache.hadoop:hadoop-aws:3.3.4,io.openlineage:openlineage-spark_2.12:1.53.0,"
    "org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.3,"
    "org.apache.spark:spark-token-provider-kafka-0-10_2.12:3.5.3"
)
ROOT_URI = "gs://etl-artefacts/etl/0.1.0"
DEPLOY = ["--set", "deploy.dataproc.artifacts_uri=gs://etl-artefacts/etl",
          "--set", "deploy.dataproc.project=etl-project",
          "--set", "deploy.dataproc.spark_conf={spark.dynamicAllocation.enabled: 'false'}"]


def test_submit_builds_a_submit_job_request(dist, capsys, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ETL_WAREHOUSE", "gs://lake/warehouse")
    monkeypatch.setenv("ETL_LANDING", "gs://lake/landing")
    code = main(["--conf-dir", str(ROOT / "conf"), "submit", "flights", "--target", "dataproc",
                 "--cluster", "etl-cluster", "--region", "europe-west1", "--date", "2013-01-05",
                 "--dry-run", "--set", f"deploy.dist_dir={dist}", *DEPLOY])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert [u["uri"] for u in printed["upload"]] == [
        f"{ROOT_URI}/etl-0.1.0-py3-none-any.whl", f"{ROOT_URI}/deps.zip",
        f"{ROOT_URI}/conf.zip", f"{ROOT_URI}/jobs/flights.py"]
    request = dataproc_v1.SubmitJobRequest.from_json(json.dumps(printed["submit_job"]))
    assert (request.project_id, request.region) == ("etl-project", "europe-west1")
    assert request.job.placement.cluster_name == "etl-cluster"
    assert dict(request.job.labels) == {"etl-job": "flights"}
    job = request.job.pyspark_job
    assert job.main_python_file_uri == f"{ROOT_URI}/jobs/flights.py"
    assert list(job.python_file_uris) == [f"{ROOT_URI}/etl-0.1.0-py3-none-any.whl",
                                          f"{ROOT_URI}/deps.zip"]
    assert list(job.archive_uris) == [f"{ROOT_URI}/conf.zip#conf"]
    assert list(job.args) == ["--env", "prod", "--date", "2013-01-05"]
    assert dict(job.properties) == {
        "spark.jars.packages": PACKAGES,
        "spark.yarn.appMasterEnv.SPARK_VERSION": "3.5",
        "spark.yarn.appMasterEnv.ETL_WAREHOUSE": "gs://lake/warehouse",
        "spark.yarn.appMasterEnv.ETL_LANDING": "gs://lake/landing",
        "spark.executorEnv.SPARK_VERSION": "3.5",
        "spark.executorEnv.ETL_WAREHOUSE": "gs://lake/warehouse",
        "spark.executorEnv.ETL_LANDING": "gs://lake/landing",
        "spark.dynamicAllocation.enabled": "false",
    }


def test_submit_without_a_cluster_names_the_key(dist, capsys, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ETL_WAREHOUSE", "gs://lake/warehouse")
    monkeypatch.setenv("ETL_LANDING", "gs://lake/landing")
    monkeypatch.delenv("ETL_DATAPROC_CLUSTER", raising=False)
    code = main(["--conf-dir", str(ROOT / "conf"), "submit", "flights", "--target", "dataproc",
                 "--region", "europe-west1", "--dry-run", "--set", f"deploy.dist_dir={dist}",
                 *DEPLOY])
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
                    "jobs": {"extract": {}, "clean": {"depends_on": ["extract"]},
                             "report": {"depends_on": ["extract", "clean"], "retries": 0}}}})


def test_workflow_template_steps_follow_the_dependencies(pipeline_conf, tmp_path):
    out = tmp_path / "nightly.json"
    code = main(["--conf-dir", str(pipeline_conf), "pipeline", "export", "nightly", "--target",
                 "dataproc-workflow", "--env", "local", "--out", str(out), *DEPLOY,
                 "--set", "deploy.dataproc.cluster=etl-cluster"])
    assert code == 0
    template = dataproc_v1.WorkflowTemplate.from_json(out.read_text())
    assert template.id == "nightly"
    assert dict(template.placement.cluster_selector.cluster_labels) == {
        "goog-dataproc-cluster-name": "etl-cluster"}
    assert [(j.step_id, list(j.prerequisite_step_ids)) for j in template.jobs] == [
        ("extract", []), ("clean", ["extract"]), ("report", ["extract", "clean"])]
    for job in template.jobs:
        assert job.pyspark_job.main_python_file_uri == f"{ROOT_URI}/jobs/{job.step_id}.py"
        assert list(job.pyspark_job.args) == ["--env", "local", "--date", "LOGICAL_DATE"]
    (parameter,) = template.parameters
    assert (parameter.name, list(parameter.fields)) == ("LOGICAL_DATE", [
        "jobs['extract'].pysparkJob.args[3]", "jobs['clean'].pysparkJob.args[3]",
        "jobs['report'].pysparkJob.args[3]"])
