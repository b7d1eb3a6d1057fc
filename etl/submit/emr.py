"""Amazon EMR steps: upload the artefacts to S3, add a ``command-runner.jar`` step that runs
``spark-submit`` (YARN, cluster mode), wait for it with a progress line per state change, and
report the final state and where its logs are.

The step (platform ``emr-7``)::

    spark-submit --deploy-mode cluster --name etl-JOB
      --jars s3://.../jars-<hash>/a.jar,...
      --archives s3://.../etl-env-<hash>.tar.gz#environment,s3://.../conf-<hash>.zip#conf
      --conf spark.yarn.appMasterEnv.PYSPARK_PYTHON=./environment/bin/python  (and the driver's)
      --conf spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python
      --conf spark.yarn.appMasterEnv.<deploy.environment>=...  --conf spark.executorEnv....
      s3://.../main-<hash>.py run JOB --env ENV [dates] [--set K=V ...]

Example::

    command = spark_submit_command("flights", remote, job_args, deploy)
    emr.add_job_flow_steps(**step_request("j-2AXXXXXXGAPLF", "flights", command, "CONTINUE"))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from etl.config import DeploySettings, EmrSettings
from etl.errors import ConfigError
from etl.submit import Artefacts, RemoteArtefacts, spark_conf, split_uri
from etl.submit.platforms import platform

TERMINAL_STEP_STATES = ("COMPLETED", "CANCELLED", "FAILED", "INTERRUPTED")


def aws_client(service: str, settings: EmrSettings) -> Any:
    """A boto3 client for the configured region (and endpoint, e.g. a local API server)."""
    import boto3  # type: ignore[import-untyped]

    return boto3.client(service, region_name=settings.region,
                        endpoint_url=settings.endpoint_url or None)


def upload(s3: Any, artefacts: Artefacts, base_uri: str) -> list[str]:
    """Upload the artefacts under ``base_uri``, skipping those already there (a hashed name
    is its content); return the URIs uploaded."""
    from botocore.exceptions import ClientError  # type: ignore[import-untyped]

    done = []
    for item in artefacts.uploads(base_uri):
        bucket, key = split_uri(item["uri"], "s3")
        try:
            s3.head_object(Bucket=bucket, Key=key)
            continue
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("404", "NoSuchKey", "NotFound"):
                raise
        s3.upload_file(item["file"], bucket, key)
        done.append(item["uri"])
    return done


def spark_submit_command(job: str, remote: RemoteArtefacts, job_args: list[str],
                         deploy: DeploySettings) -> list[str]:
    """The ``spark-submit`` command line of the step (``command-runner.jar`` arguments)."""
    settings = deploy.emr
    if settings.deploy_mode != "cluster":
        raise ConfigError("the driver must run in a YARN container, where the packed "
                          "environment is unpacked: use cluster", key="deploy.emr.deploy_mode")
    command = ["spark-submit", "--deploy-mode", settings.deploy_mode, "--name", f"etl-{job}",
               "--jars", ",".join(remote.jars), "--archives", ",".join(remote.archives())]
    for key, value in spark_conf(platform("emr-7"), deploy, settings.spark_conf).items():
        command += ["--conf", f"{key}={value}"]
    return [*command, remote.main, *job_args]


def step_request(cluster_id: str, job: str, command: list[str], action_on_failure: str,
                 label: str = "") -> dict[str, Any]:
    """Keyword arguments of ``EMR.Client.add_job_flow_steps`` for one step."""
    return {
        "JobFlowId": cluster_id,
        "Steps": [{
            "Name": f"etl {job}{' ' + label if label else ''}",
            "ActionOnFailure": action_on_failure,
            "HadoopJarStep": {"Jar": "command-runner.jar", "Args": command},
        }],
    }


@dataclass(frozen=True)
class StepResult:
    cluster_id: str
    step_id: str
    state: str
    log_uri: str | None
    reason: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STEP_STATES


def step_log_uri(emr: Any, cluster_id: str, step_id: str) -> str | None:
    """``<cluster LogUri>/<cluster id>/steps/<step id>/`` (stdout, stderr, controller)."""
    log_uri = emr.describe_cluster(ClusterId=cluster_id)["Cluster"].get("LogUri")
    if not log_uri:
        return None
    root = log_uri.replace("s3n://", "s3://", 1).rstrip("/")
    return f"{root}/{cluster_id}/steps/{step_id}/"


def wait_for_step(emr: Any, cluster_id: str, step_id: str, *, poll_s: float,
                  timeout_s: float | None = None, progress: Callable[[str], None] = print,
                  sleep: Callable[[float], None] = time.sleep) -> StepResult:
    """Poll the step until it ends (or ``timeout_s`` passes); report each state change."""
    started = time.monotonic()
    last = None
    while True:
        status = emr.describe_step(ClusterId=cluster_id, StepId=step_id)["Step"]["Status"]
        state = status["State"]
        elapsed = time.monotonic() - started
        if state != last:
            progress(f"step {step_id} on {cluster_id}: {state} after {elapsed:.0f}s")
            last = state
        if state in TERMINAL_STEP_STATES or (timeout_s is not None and elapsed >= timeout_s):
            reason = (status.get("FailureDetails") or {}).get("Reason") or \
                (status.get("StateChangeReason") or {}).get("Message")
            return StepResult(cluster_id, step_id, state,
                              step_log_uri(emr, cluster_id, step_id), reason)
        sleep(poll_s)


def add_step(emr: Any, request: dict[str, Any]) -> str:
    (step_id,) = emr.add_job_flow_steps(**request)["StepIds"]
    return str(step_id)
