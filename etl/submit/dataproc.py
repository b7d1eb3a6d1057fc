"""Google Dataproc: a PySpark job (``SubmitJobRequest``) for one job, and a workflow template
(``WorkflowTemplate``) for a pipeline whose steps follow its dependencies. Built with the
google-cloud-dataproc client's message types (``pip install 'etl[gcp]'``), imported lazily.

Example::

    request = submit_job_request("flights", uris, ["--env", "prod"], deploy, cluster="etl")
    JobControllerClient(client_options=endpoint(region)).submit_job(request=request)
"""

from __future__ import annotations

from typing import Any

from etl.config import DeploySettings
from etl.errors import ConfigError
from etl.submit import maven_packages, spark_environment

ENV_PREFIXES = ("spark.yarn.appMasterEnv.", "spark.executorEnv.")
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


def pyspark_job(uris: dict[str, str], job_args: list[str], deploy: DeploySettings) -> Any:
    """The ``PySparkJob`` that runs ``jobs/<job>.py`` with the artefacts."""
    properties = {"spark.jars.packages": maven_packages(),
                  **spark_environment(deploy.environment, ENV_PREFIXES),
                  **deploy.dataproc.spark_conf}
    return dataproc().PySparkJob(
        main_python_file_uri=uris["entry"],
        python_file_uris=[uris["wheel"], uris["deps"]],
        archive_uris=[f"{uris['conf']}#conf"],
        args=job_args,
        properties=properties,
    )


def _require(value: str, key: str) -> str:
    if not value:
        raise ConfigError("required for Dataproc (in conf or on the command line)", key=key)
    return value


def submit_job_request(job: str, uris: dict[str, str], job_args: list[str],
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
            pyspark_job=pyspark_job(uris, job_args, deploy),
            labels={"etl-job": job.replace("_", "-")},
        ),
    )


def workflow_template(name: str, steps: list[tuple[str, list[str], dict[str, str], list[str]]],
                      deploy: DeploySettings, *, cluster: str = "") -> Any:
    """A ``WorkflowTemplate`` with one ordered job per ``(job, depends_on, uris, job_args)``
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
                     pyspark_job=pyspark_job(uris, job_args, deploy))
        for job, depends_on, uris, job_args in steps
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
