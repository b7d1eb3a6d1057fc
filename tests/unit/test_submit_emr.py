"""`etl submit` for platforms emr-7 and emr-serverless-7 against moto's S3, EMR and EMR
Serverless APIs on 127.0.0.1 (boto3 checks the requests' shapes, moto stores them): the uploaded
artefacts under their hashed names, the step and the job run, field by field."""

from __future__ import annotations

import json
import os
import socket
import uuid

import boto3
import pytest

from etl.cli import main
from tests.orchestration_dist import ROOT, names

pytestmark = pytest.mark.integration
ENDPOINT = os.environ.get("ETL_S3_ENDPOINT", "http://127.0.0.1:5055")
PYTHON = "./environment/bin/python"


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
    monkeypatch.delenv("ETL_PLATFORM", raising=False)
    bucket = f"etl-artefacts-{uuid.uuid4().hex[:8]}"
    clients = {name: boto3.client(name, endpoint_url=ENDPOINT, region_name="us-east-1")
               for name in ("s3", "emr", "emr-serverless")}
    clients["s3"].create_bucket(Bucket=bucket)
    yield clients, bucket
    for item in clients["s3"].list_objects_v2(Bucket=bucket).get("Contents", []):
        clients["s3"].delete_object(Bucket=bucket, Key=item["Key"])
    clients["s3"].delete_bucket(Bucket=bucket)


def settings(dist, bucket, platform="emr-7"):
    return ["--conf-dir", str(ROOT / "conf"), "submit", "flights", "--env", "prod",
            "--set", f"deploy.platform={platform}",
            "--set", f"deploy.dist_dir={dist}", "--set", f"deploy.emr.endpoint_url={ENDPOINT}",
            "--set", f"deploy.emr.artifacts_uri=s3://{bucket}/etl", "--set", "deploy.emr.poll_s=0.2",
            "--set", "deploy.emr.action_on_failure=CANCEL_AND_WAIT"]


def remote(dist, bucket):
    """The artefacts' URIs: ``s3://<bucket>/etl/<hashed name>``."""
    m, root = names(dist), f"s3://{bucket}/etl"
    return {"root": root, "env": f"{root}/{m['environment']['file']}",
            "conf": f"{root}/{m['conf']['file']}", "main": f"{root}/{m['main']['file']}",
            "jars": [f"{root}/{m['jars']['folder']}/{j['file']}" for j in m["jars"]["files"]],
            "bootstrap": f"{root}/{m['bootstrap']['file']}" if m["bootstrap"] else None}


def expected_command(dist, bucket, job_args):
    uris = remote(dist, bucket)
    return [
        "spark-submit", "--deploy-mode", "cluster", "--name", "etl-flights",
        "--jars", ",".join(uris["jars"]),
        "--archives", f"{uris['env']}#environment,{uris['conf']}#conf",
        "--conf", f"spark.yarn.appMasterEnv.PYSPARK_PYTHON={PYTHON}",
        "--conf", f"spark.yarn.appMasterEnv.PYSPARK_DRIVER_PYTHON={PYTHON}",
        "--conf", "spark.yarn.appMasterEnv.SPARK_VERSION=3.5",
        "--conf", "spark.yarn.appMasterEnv.ETL_WAREHOUSE=s3a://lake/warehouse",
        "--conf", "spark.yarn.appMasterEnv.ETL_LANDING=s3a://lake/landing",
        "--conf", f"spark.executorEnv.PYSPARK_PYTHON={PYTHON}",
        "--conf", "spark.executorEnv.SPARK_VERSION=3.5",
        "--conf", "spark.executorEnv.ETL_WAREHOUSE=s3a://lake/warehouse",
        "--conf", "spark.executorEnv.ETL_LANDING=s3a://lake/landing",
        uris["main"], *job_args,
    ]


def test_emr_step_uploads_adds_the_step_and_waits(aws, dist_for, capsys):
    clients, bucket = aws
    dist = dist_for("emr-7")
    cluster_id = clients["emr"].run_job_flow(
        Name="etl-test", ReleaseLabel="emr-7.5.0", LogUri="s3n://logs/emr/",
        Instances={"InstanceCount": 1, "MasterInstanceType": "m5.xlarge",
                   "KeepJobFlowAliveWhenNoSteps": True},
        JobFlowRole="EMR_EC2_DefaultRole", ServiceRole="EMR_DefaultRole")["JobFlowId"]

    code = main([*settings(dist, bucket), "--target", "emr", "--cluster-id", cluster_id,
                 "--date", "2013-01-02", "--set", "spark.shuffle_partitions=64",
                 "--set", "params.note=a b", "--wait-timeout", "1"])

    out = capsys.readouterr()
    assert code == 0
    (step,) = clients["emr"].list_steps(ClusterId=cluster_id)["Steps"]
    assert step["Name"] == "etl flights"
    assert step["ActionOnFailure"] == "CANCEL_AND_WAIT"
    assert step["Config"]["Jar"] == "command-runner.jar"
    # --set reaches the run on the cluster, except deploy.* (the submission's own settings)
    assert step["Config"]["Args"] == expected_command(dist, bucket, [
        "run", "flights", "--env", "prod", "--date", "2013-01-02",
        "--set", "spark.shuffle_partitions=64", "--set", "params.note=a b"])
    uris = remote(dist, bucket)
    lines = out.out.splitlines()
    assert lines[:3] == [f"uploaded 6 of 6 artefacts to {uris['root']}/ (0 already there)",
                         f"bootstrap action: {uris['bootstrap']}",
                         f"added step {step['Id']} to {cluster_id}"]
    assert lines[3].startswith(f"step {step['Id']} on {cluster_id}: RUNNING after ")
    assert lines[4:] == [f"step {step['Id']}: RUNNING",
                         f"logs: s3://logs/emr/{cluster_id}/steps/{step['Id']}/"]
    assert out.err == "still RUNNING after 1.0s; not waiting any longer\n"
    listed = sorted(o["Key"] for o in clients["s3"].list_objects_v2(Bucket=bucket)["Contents"])
    m = names(dist)
    assert listed == sorted([f"etl/{m['environment']['file']}", f"etl/{m['conf']['file']}",
                             f"etl/{m['main']['file']}", f"etl/{m['bootstrap']['file']}",
                             *(f"etl/{m['jars']['folder']}/{j['file']}" for j in m["jars"]["files"])])
    body = clients["s3"].get_object(Bucket=bucket, Key=f"etl/{m['environment']['file']}")["Body"]
    assert body.read() == (dist / m["environment"]["file"]).read_bytes()

    # the same artefacts again: nothing uploaded, nothing replaced
    assert main([*settings(dist, bucket), "--upload-only"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        f"uploaded 0 of 6 artefacts to {uris['root']}/ (6 already there)")


def test_emr_dry_run_prints_the_request_and_uploads_nothing(aws, dist_for, capsys):
    clients, bucket = aws
    dist = dist_for("emr-7")
    code = main([*settings(dist, bucket), "--cluster-id", "j-ABC", "--date", "2013-01-02",
                 "--dry-run"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    uris, m = remote(dist, bucket), names(dist)
    assert printed["upload"][:3] == [
        {"file": str(dist / m["environment"]["file"]), "uri": uris["env"]},
        {"file": str(dist / m["conf"]["file"]), "uri": uris["conf"]},
        {"file": str(dist / m["main"]["file"]), "uri": uris["main"]}]
    assert [u["uri"] for u in printed["upload"][3:]] == [*uris["jars"], uris["bootstrap"]]
    args = ["run", "flights", "--env", "prod", "--date", "2013-01-02"]
    assert printed["add_job_flow_steps"] == {"JobFlowId": "j-ABC", "Steps": [{
        "Name": "etl flights", "ActionOnFailure": "CANCEL_AND_WAIT",
        "HadoopJarStep": {"Jar": "command-runner.jar",
                          "Args": expected_command(dist, bucket, args)}}]}
    assert "Contents" not in clients["s3"].list_objects_v2(Bucket=bucket)


def test_emr_serverless_starts_a_job_run(aws, dist_for, capsys):
    clients, bucket = aws
    dist = dist_for("emr-serverless-7")
    app = clients["emr-serverless"].create_application(name="etl", releaseLabel="emr-7.5.0",
                                                       type="SPARK")["applicationId"]
    role = "arn:aws:iam::123456789012:role/etl-job"
    code = main([*settings(dist, bucket, "emr-serverless-7"), "--application-id", app,
                 "--from", "2013-01-01", "--to", "2013-01-31",
                 "--set", f"deploy.emr.execution_role_arn={role}",
                 "--set", "deploy.emr.log_uri=s3://logs/serverless/",
                 "--set", "spark.shuffle_partitions=64"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    (summary,) = clients["emr-serverless"].list_job_runs(applicationId=app)["jobRuns"]
    run = clients["emr-serverless"].get_job_run(applicationId=app,
                                                jobRunId=summary["id"])["jobRun"]
    uris = remote(dist, bucket)
    assert (run["name"], run["executionRole"], run["state"]) == ("etl flights", role, "SUCCESS")
    assert run["jobDriver"] == {"sparkSubmit": {
        "entryPoint": uris["main"],
        "entryPointArguments": ["run", "flights", "--env", "prod", "--from", "2013-01-01",
                                "--to", "2013-01-31", "--set", "spark.shuffle_partitions=64"],
        "sparkSubmitParameters": " ".join([
            f"--conf 'spark.archives={uris['env']}#environment,{uris['conf']}#conf'",
            f"--conf spark.jars={','.join(uris['jars'])}",
            f"--conf spark.emr-serverless.driverEnv.PYSPARK_PYTHON={PYTHON}",
            f"--conf spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON={PYTHON}",
            "--conf spark.emr-serverless.driverEnv.SPARK_VERSION=3.5",
            "--conf spark.emr-serverless.driverEnv.ETL_WAREHOUSE=s3a://lake/warehouse",
            "--conf spark.emr-serverless.driverEnv.ETL_LANDING=s3a://lake/landing",
            f"--conf spark.executorEnv.PYSPARK_PYTHON={PYTHON}",
            "--conf spark.executorEnv.SPARK_VERSION=3.5",
            "--conf spark.executorEnv.ETL_WAREHOUSE=s3a://lake/warehouse",
            "--conf spark.executorEnv.ETL_LANDING=s3a://lake/landing",
        ])}}
    assert out[0] == f"uploaded 5 of 5 artefacts to {uris['root']}/ (0 already there)"
    assert out[1] == f"started job run {summary['id']} on {app}"
    assert out[2].startswith(f"job run {summary['id']} on {app}: SUCCESS after ")
    assert out[3:] == [f"job run {summary['id']}: SUCCESS",
                       f"logs: s3://logs/serverless/applications/{app}/jobs/{summary['id']}/"]


def test_missing_artefacts_say_to_build_them(aws, tmp_path, capsys):
    _, bucket = aws
    code = main([*settings(tmp_path, bucket), "--target", "emr", "--cluster-id", "j-1"])
    assert code == 2
    assert capsys.readouterr().err == (
        f"etl: error: deploy.dist_dir: no artefacts in {tmp_path} (run `make dist`)\n")


def test_artefacts_of_another_platform_are_refused(aws, dist_for, capsys):
    _, bucket = aws
    dist = dist_for("dataproc-2.2")
    assert main([*settings(dist, bucket), "--cluster-id", "j-1", "--dry-run"]) == 2
    assert capsys.readouterr().err == (
        f"etl: error: deploy.platform: is emr-7, but {dist} was built for dataproc-2.2 "
        "(make dist PLATFORM=emr-7)\n")
    assert main([*settings(dist, bucket), "--target", "emr-serverless", "--dry-run"]) == 2
    assert capsys.readouterr().err == (
        "etl: error: deploy.platform: is emr-7, which --target emr-serverless does not run on; "
        "set deploy.platform=emr-serverless-7 and build the artefacts for it "
        "(make dist PLATFORM=emr-serverless-7)\n")


def test_client_mode_is_refused_on_emr(aws, dist_for, capsys):
    _, bucket = aws
    code = main([*settings(dist_for("emr-7"), bucket), "--cluster-id", "j-1", "--dry-run",
                 "--set", "deploy.emr.deploy_mode=client"])
    assert code == 2
    assert capsys.readouterr().err.startswith("etl: error: deploy.emr.deploy_mode: the driver ")
