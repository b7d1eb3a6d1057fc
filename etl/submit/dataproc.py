"""Google Dataproc: a PySpark job (``SubmitJobRequest``) for one job, and a workflow template
(``WorkflowTemplate``) for a pipeline whose steps follow its dependencies. Built with the
google-cloud-dataproc client's message types (``pip install 'etl[gcp]'``), imported lazily.

The job (platform ``dataproc-2.2``): ``main_python_file_uri`` the driver ``main-<hash>.py``,
``args`` ``run JOB --env ENV ...``, ``archive_uris`` the packed environment (``#environment``) and
the configuration (``#conf``), ``jar_file_uris`` the jar bundle, and ``properties``
``spark.submit.deployMode=cluster`` (the driver runs in a YARN container, where the archives are
unpacked), ``spark.yarn.appMasterEnv.PYSPARK_PYTHON=./environment/bin/python`` (and the
driver's), ``spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python`` and
``deploy.environment``.

Example::

    request = submit_job_request("flights", remote, job_args, deploy, cluster="etl")
    JobControllerClient(client_options=endpoint(region)).submit_job(request=request)
"""

from __future__ import annotations

from typing import Any

from etl.config import DeploySettings
from etl.errors import ConfigError
from etl.submit import RemoteArtefacts, spark_conf
from etl.submit.platforms import platform

#: The workflow template parameter that stands for the logical date in the jobs' arguments.
LOGICAL_DATE = "LOGICAL_DATE"


def dataproc() -> Any:
    try:
        from google.cloud import dataproc_v1
    except ImportError as exc:
        raise ConfigError("Dataproc needs google-cloud-dataproc: pip install 'etl[gcp]'") from exc
    return dataproc_v1


def endpoint(region: str) -> dict[str, str]:
    """Client options for a regional Dataproc endpoint."""
    return {"api_endpoint": f"{region}-dataproc.googleapis.com:443"}


def pyspark_job(remote: RemoteArtefacts, job_args: list[str], deploy: DeploySettings) -> Any:
    """The ``PySparkJob`` that runs the driver with the artefacts."""
    return dataproc().PySparkJob(
        main_python_file_uri=remote.main,
        jar_file_uris=list(remote.jars),
        archive_uris=remote.archives(),
        args=job_args,
        properties=spark_conf(platform("dataproc-2.2"), deploy, deploy.dataproc.spark_conf),
    )


def _require(value: str, key: str) -> str:
    if not value:
        raise ConfigError("required for Dataproc (in conf or on the command line)", key=key)
    return value


def submit_job_request(job: str, remote: RemoteArtefacts, job_args: list[str],
                       deploy: DeploySettings, *, cluster: str = "", region: str = "",
                       project: str = "") -> Any:
    """A ``SubmitJobRequest`` placing the job on ``cluster`` (arguments win over conf)."""
    d = dataproc()
    settings = deploy.dataproc
    return d.SubmitJobRequest(
        project_id=_require(project or settings.project, "deploy.dataproc.project"),
        region=_require(region or settings.region, "deploy.dataproc.region"),
        job=d.Job(
            placement=d.JobPlacement(
                cluster_name=_require(cluster or settings.cluster, "deploy.dataproc.cluster")),
            pyspark_job=pyspark_job(remote, job_args, deploy),
            labels={"etl-job": job.replace("_", "-")},
        ),
    )


def workflow_template(name: str, steps: list[tuple[str, list[str], RemoteArtefacts, list[str]]],
                      deploy: DeploySettings, *, cluster: str = "") -> Any:
    """A ``WorkflowTemplate`` with one ordered job per ``(job, depends_on, remote, job_args)``
    step; ``prerequisite_step_ids`` are the dependencies; an argument ``LOGICAL_DATE`` becomes
    the template parameter of that name (``gcloud dataproc workflow-templates instantiate
    --parameters LOGICAL_DATE=2013-01-01``); and the template runs on the existing
    cluster named ``cluster`` (selected by Dataproc's ``goog-dataproc-cluster-name`` label).
    """
    d = dataproc()
    cluster_name = _require(cluster or deploy.dataproc.cluster, "deploy.dataproc.cluster")
    parameters = [
        d.TemplateParameter(
            name=LOGICAL_DATE,
            fields=[f"jobs['{job.replace('_', '-')}'].pysparkJob.args[{args.index(LOGICAL_DATE)}]"
                    for job, _, _, args in steps if LOGICAL_DATE in args],
            description="the logical date the jobs run for (YYYY-MM-DD)")
    ] if any(LOGICAL_DATE in args for *_, args in steps) else []
    jobs = [
        d.OrderedJob(step_id=job.replace("_", "-"),
                     prerequisite_step_ids=[dep.replace("_", "-") for dep in depends_on],
                     pyspark_job=pyspark_job(remote, job_args, deploy))
        for job, depends_on, remote, job_args in steps
    ]
    return d.WorkflowTemplate(
        id=name.replace("_", "-"),
        placement=d.WorkflowTemplatePlacement(
            cluster_selector=d.ClusterSelector(cluster_labels={"goog-dataproc-cluster-name": cluster_name})),
        jobs=jobs,
        parameters=parameters,
    )


def to_json(message: Any, *, proto_names: bool = False) -> str:
    """The message as JSON without unset fields: camelCase names (the REST representation), or
    the proto's snake_case names (what Airflow's Dataproc operators take)."""
    return type(message).to_json(message, indent=2, always_print_fields_with_no_presence=False,
                                 preserving_proto_field_name=proto_names)
