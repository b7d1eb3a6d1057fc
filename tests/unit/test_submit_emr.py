"""`etl submit --target emr|emr-serverless` against moto's S3, EMR and EMR Serverless APIs on
127.0.0.1: the uploaded artefacts, the step and the job run, field by field."""

from __future__ import annotations

import json
import os
import socket
import uuid

import boto3
import pytest

from etl.cli import main
from etl.submit import maven_packages
from tests.orchestration_dist import ROOT, dist  # noqa: F401 - fixture

pytestmark = pytest.mark.integration
ENDPOINT = os.environ.get("ETL_S3_ENDPOINT", "http://127.0.0.1:5055")
PACKAGES = (
    "io.delta:delta-spark_2.12:3.3.2,com.amazon.deequ:deequ:2.0.7-spark-3.5,org.postgresql:postgresql:42.7.8,"
    "org.apache.hadoop:hadoop-aws:3.3.4,io.openlineage:openlineage-spark_2.12:1.53.0,"
    "org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.3,"
    "org.apache.spark:spark-token-provider-kafka-0-10_2.12:3.5.3"
)


@pytest.fixture()
def aws(monkeypatch):
    host, port = ENDPOINT.split("//")[1].split(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        pytest.fail(f"no S3/EMR API server at {ENDPOINT}: run scripts/services.sh start s3")
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "ETL_WAREHOUSE": "s3a://lake/warehouse",
                       "ETL_LANDING": "s3a://lake/landing"}.items():
        monkeypatch.setenv(key, value)
    bucket = f"etl-artefacts-{uuid.uuid4().hex[:8]}"
    clients = {name: boto3.client(name, endpoint_url=ENDPOINT, region_name="us-east-1")
               for name in ("s3", "emr", "emr-serverless")}
    clients["s3"].create_bucket(Bucket=bucket)
    return clients, bucket


def settings(dist, bucket):  # noqa: F811
    return ["--conf-dir", str(ROOT / "conf"), "submit", "flights", "--env", "prod",
            "--set", f"deploy.dist_dir={dist}", "--set", f"deploy.emr.endpoint_url={ENDPOINT}",
            "--set", f"deploy.emr.artifacts_uri=s3://{bucket}/etl", "--set", "deploy.emr.poll_s=0.2",
            "--set", "deploy.emr.action_on_failure=CANCEL_AND_WAIT"]


def expected_command(bucket, version="0.1.0"):
    root = f"s3://{bucket}/etl/{version}"
    return [
        "spark-submit", "--deploy-mode", "cluster", "--name", "etl-flights",
        "--packages", PACKAGES,
        "--py-files", f"{root}/etl-{version}-py3-none-any.whl,{root}/deps.zip",
        "--archives", f"{root}/conf.zip#conf",
        "--conf", "spark.yarn.appMasterEnv.SPARK_VERSION=3.5",
        "--conf", "spark.yarn.appMasterEnv.ETL_WAREHOUSE=s3a://lake/warehouse",
        "--conf", "spark.yarn.appMasterEnv.ETL_LANDING=s3a://lake/landing",
        "--conf", "spark.executorEnv.SPARK_VERSION=3.5",
        "--conf", "spark.executorEnv.ETL_WAREHOUSE=s3a://lake/warehouse",
        "--conf", "spark.executorEnv.ETL_LANDING=s3a://lake/landing",
        f"{root}/jobs/flights.py", "--env", "prod", "--date", "2013-01-02",
    ]


def test_packages_are_the_jar_list():
    assert maven_packages() == PACKAGES


def test_emr_step_uploads_adds_the_step_and_waits(aws, dist, capsys):  # noqa: F811
    clients, bucket = aws
    cluster_id = clients["emr"].run_job_flow(
        Name="etl-test", ReleaseLabel="emr-7.5.0", LogUri="s3n://logs/emr/",
        Instances={"InstanceCount": 1, "MasterInstanceType": "m5.xlarge",
                   "KeepJobFlowAliveWhenNoSteps": True},
        JobFlowRole="EMR_EC2_DefaultRole", ServiceRole="EMR_DefaultRole")["JobFlowId"]

    code = main([*settings(dist, bucket), "--target", "emr", "--cluster-id", cluster_id,
                 "--date", "2013-01-02", "--wait-timeout", "1"])

    out = capsys.readouterr()
    assert code == 0
    steps = clients["emr"].list_steps(ClusterId=cluster_id)["Steps"]
    (step,) = steps
    assert step["Name"] == "etl flights"
    assert step["ActionOnFailure"] == "CANCEL_AND_WAIT"
    assert step["Config"]["Jar"] == "command-runner.jar"
    assert step["Config"]["Args"] == expected_command(bucket)
    lines = out.out.splitlines()
    assert lines[0] == f"added step {step['Id']} to {cluster_id}"
    assert lines[1].startswith(f"step {step['Id']} on {cluster_id}: RUNNING after ")
    assert lines[2:] == [f"step {step['Id']}: RUNNING",
                         f"logs: s3://logs/emr/{cluster_id}/steps/{step['Id']}/"]
    assert out.err == "still RUNNING after 1.0s; not waiting any longer\n"
    listed = clients["s3"].list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(o["Key"] for o in listed) == [
        "etl/0.1.0/conf.zip", "etl/0.1.0/deps.zip", "etl/0.1.0/etl-0.1.0-py3-none-any.whl",
        "etl/0.1.0/jobs/flights.py"]
    body = clients["s3"].get_object(Bucket=bucket, Key="etl/0.1.0/deps.zip")["Body"].read()
    assert body == (dist / "deps.zip").read_bytes()


def test_emr_dry_run_prints_the_request_and_uploads_nothing(aws, dist, capsys):  # noqa: F811
    clients, bucket = aws
    code = main([*settings(dist, bucket), "--target", "emr", "--cluster-id", "j-ABC",
                 "--date", "2013-01-02", "--dry-run"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    root = f"s3://{bucket}/etl/0.1.0"
    assert printed == {
        "upload": [
            {"file": str(dist / "etl-0.1.0-py3-none-any.whl"), "uri": f"{root}/etl-0.1.0-py3-none-any.whl"},
            {"file": str(dist / "deps.zip"), "uri": f"{root}/deps.zip"},
            {"file": str(dist / "conf.zip"), "uri": f"{root}/conf.zip"},
            {"file": str(dist / "jobs" / "flights.py"), "uri": f"{root}/jobs/flights.py"},
        ],
        "add_job_flow_steps": {"JobFlowId": "j-ABC", "Steps": [{
            "Name": "etl flights", "ActionOnFailure": "CANCEL_AND_WAIT",
            "HadoopJarStep": {"Jar": "command-runner.jar", "Args": expected_command(bucket)}}]},
    }
    assert "Contents" not in clients["s3"].list_objects_v2(Bucket=bucket)


def test_emr_serverless_starts_a_job_run(aws, dist, capsys):  # noqa: F811
    clients, bucket = aws
    app = clients["emr-serverless"].create_application(name="etl", releaseLabel="emr-7.5.0",
                                                       type="SPARK")["applicationId"]
    role = "arn:aws:iam::123456789012:role/etl-job"
    code = main([*settings(dist, bucket), "--target", "emr-serverless", "--application-id", app,
                 "--from", "2013-01-01", "--to", "2013-01-31",
                 "--set", f"deploy.emr.execution_role_arn={role}",
                 "--set", "deploy.emr.log_uri=s3://logs/serverless/"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    (summary,) = clients["emr-serverless"].list_job_runs(applicationId=app)["jobRuns"]
    run = clients["emr-serverless"].get_job_run(applicationId=app,
                                                jobRunId=summary["id"])["jobRun"]
    root = f"s3://{bucket}/etl/0.1.0"
    assert (run["name"], run["executionRole"], run["state"]) == ("etl flights", role, "SUCCESS")
    assert run["jobDriver"] == {"sparkSubmit": {
        "entryPoint": f"{root}/jobs/flights.py",
        "entryPointArguments": ["--env", "prod", "--from", "2013-01-01", "--to", "2013-01-31"],
        "sparkSubmitParameters": " ".join([
            f"--conf spark.submit.pyFiles={root}/etl-0.1.0-py3-none-any.whl,{root}/deps.zip",
            f"--conf 'spark.archives={root}/conf.zip#conf'",
            f"--conf spark.jars.packages={PACKAGES}",
            "--conf spark.emr-serverless.driverEnv.SPARK_VERSION=3.5",
            "--conf spark.emr-serverless.driverEnv.ETL_WAREHOUSE=s3a://lake/warehouse",
            "--conf spark.emr-serverless.driverEnv.ETL_LANDING=s3a://lake/landing",
            "--conf spark.executorEnv.SPARK_VERSION=3.5",
            "--conf spark.executorEnv.ETL_WAREHOUSE=s3a://lake/warehouse",
            "--conf spark.executorEnv.ETL_LANDING=s3a://lake/landing",
        ])}}
    assert out[0] == f"started job run {summary['id']} on {app}"
    assert out[1].startswith(f"job run {summary['id']} on {app}: SUCCESS after ")
    assert out[2:] == [f"job run {summary['id']}: SUCCESS",
                       f"logs: s3://logs/serverless/applications/{app}/jobs/{summary['id']}/"]


def test_missing_artefacts_say_to_build_them(aws, tmp_path, capsys):
    _, bucket = aws
    code = main([*settings(tmp_path, bucket), "--target", "emr", "--cluster-id", "j-1"])
    assert code == 2
    assert capsys.readouterr().err == (
        f"etl: error: deploy.dist_dir: expected one etl wheel in {tmp_path}, found 0 "
        "(run `make dist`)\n")
