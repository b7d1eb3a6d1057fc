"""EMR Serverless job runs: the artefacts and settings of an EMR step, given as
``sparkSubmitParameters`` of ``StartJobRun`` (platform ``emr-serverless-7``).

The job run's driver::

    entryPoint: s3://.../main-<hash>.py
    entryPointArguments: [run, JOB, --env, ENV, dates..., --set, K=V ...]
    sparkSubmitParameters: --conf spark.archives=s3://.../etl-env-<hash>.tar.gz#environment,...
      --conf spark.jars=s3://.../jars-<hash>/a.jar,...
      --conf spark.emr-serverless.driverEnv.PYSPARK_PYTHON=./environment/bin/python (and the
      driver's) --conf spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python ...

Example::

    request = job_run_request("00f1abcd", "flights", remote, job_args, deploy)
    client.start_job_run(**request)
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from typing import Any

from etl.config import DeploySettings
from etl.errors import ConfigError
from etl.submit import RemoteArtefacts, spark_conf
from etl.submit.platforms import platform

TERMINAL_RUN_STATES = ("SUCCESS", "FAILED", "CANCELLED")


def job_run_request(application_id: str, job: str, remote: RemoteArtefacts, job_args: list[str],
                    deploy: DeploySettings, label: str = "") -> dict[str, Any]:
    """Keyword arguments of ``EMRServerless.Client.start_job_run``."""
    settings = deploy.emr
    if not settings.execution_role_arn:
        raise ConfigError("EMR Serverless needs the job run's IAM role",
                          key="deploy.emr.execution_role_arn")
    conf = {"spark.archives": ",".join(remote.archives()), "spark.jars": ",".join(remote.jars),
            **spark_conf(platform("emr-serverless-7"), deploy, settings.spark_conf)}
    request: dict[str, Any] = {
        "applicationId": application_id,
        "executionRoleArn": settings.execution_role_arn,
        "name": f"etl {job}{' ' + label if label else ''}",
        "jobDriver": {"sparkSubmit": {
            "entryPoint": remote.main,
            "entryPointArguments": job_args,
            "sparkSubmitParameters": " ".join(
                f"--conf {shlex.quote(f'{k}={v}')}" for k, v in conf.items()),
        }},
    }
    if settings.log_uri:
        request["configurationOverrides"] = {
            "monitoringConfiguration": {"s3MonitoringConfiguration": {"logUri": settings.log_uri}}}
    return request


def wait_for_job_run(client: Any, application_id: str, run_id: str, *, poll_s: float,
                     timeout_s: float | None = None, progress: Callable[[str], None] = print,
                     sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Poll the job run until it ends (or ``timeout_s`` passes); return its description."""
    started, last = time.monotonic(), None
    while True:
        run = client.get_job_run(applicationId=application_id, jobRunId=run_id)["jobRun"]
        elapsed = time.monotonic() - started
        if run["state"] != last:
            progress(f"job run {run_id} on {application_id}: {run['state']} after {elapsed:.0f}s")
            last = run["state"]
        if run["state"] in TERMINAL_RUN_STATES or (timeout_s is not None and elapsed >= timeout_s):
            return dict(run)
        sleep(poll_s)
