"""``etl submit JOB [--target emr|emr-serverless|dataproc]``: run a job on a managed cluster
with the artefacts of ``make dist``, shipped the way ``deploy.platform`` says
(docs/deployment.md)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from etl.commands.run import parse_date
from etl.errors import EXIT_FAILURE, EXIT_OK, ConfigError

TARGETS = ("emr", "emr-serverless", "dataproc")


def add_date_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--date", type=parse_date, help="the job runs for this logical date")
    parser.add_argument("--from", dest="date_from", type=parse_date, help="first logical date")
    parser.add_argument("--to", dest="date_to", type=parse_date, help="last logical date")


def add_conf_options(parser: argparse.ArgumentParser, default_env: str) -> None:
    parser.add_argument("--env", default=default_env,
                        help=f"environment overlay, read here and passed to the job "
                             f"(default: {default_env})")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a configuration value (repeatable)")


def register(commands: Any) -> None:
    submit = commands.add_parser(
        "submit", help="run a job on EMR, EMR Serverless or Dataproc",
        description="Upload the artefacts of `make dist` (content-hashed names: what is there "
        "already is not uploaded again) and run JOB on a managed cluster: an EMR step "
        "(command-runner.jar spark-submit), an EMR Serverless job run, or a Dataproc PySpark job, "
        "by deploy.platform. --set overrides reach the run on the cluster (except deploy.*, "
        "which are for the submission). --dry-run prints the requests instead. Settings: "
        "deploy.* in conf; see docs/deployment.md.")
    submit.add_argument("job", help="job name (a file conf/jobs/JOB.yml)")
    submit.add_argument("--target", choices=TARGETS,
                        help="where to run (default: the target of deploy.platform)")
    submit.add_argument("--cluster-id", help="EMR cluster (j-...)")
    submit.add_argument("--application-id", help="EMR Serverless application")
    submit.add_argument("--cluster", help="Dataproc cluster name (default: deploy.dataproc.cluster)")
    submit.add_argument("--region", help="Dataproc region (default: deploy.dataproc.region)")
    submit.add_argument("--project", help="Google Cloud project (default: deploy.dataproc.project)")
    add_date_options(submit)
    add_conf_options(submit, "prod")
    submit.add_argument("--dry-run", action="store_true", help="print the requests as JSON")
    submit.add_argument("--upload-only", action="store_true",
                        help="upload the artefacts and stop (for exported Airflow DAGs)")
    submit.add_argument("--no-wait", action="store_true", help="do not wait for the job to end")
    submit.add_argument("--wait-timeout", type=float, metavar="SECONDS",
                        help="stop waiting after this long (the job goes on)")
    submit.set_defaults(handler=handle)


def dates(args: argparse.Namespace) -> tuple[Any, Any]:
    from etl.runner import check_dates

    if args.date and (args.date_from or args.date_to):
        raise ConfigError("use either --date or --from/--to, not both")
    date_from, date_to = args.date or args.date_from, args.date or args.date_to
    check_dates(date_from, date_to)
    return date_from, date_to


def handle(args: argparse.Namespace) -> int:
    from etl.config import load_job_config
    from etl.submit import Artefacts, check_secrets, forwarded_overrides, job_arguments, platforms

    date_from, date_to = dates(args)
    config = load_job_config(args.job, env=args.env, overrides=args.overrides,
                             directory=args.conf_dir)
    target = platforms.for_target(config.deploy, args.target).target
    artefacts = Artefacts.from_dist(config.deploy.dist_dir)
    artefacts.check_built_for(config.deploy)
    overrides = forwarded_overrides(args.overrides)
    check_secrets(config, overrides, target)
    job_args = job_arguments(args.job, args.env, date_from, date_to, overrides)
    if target == "emr":
        return submit_emr(args, config, artefacts, job_args)
    if target == "emr-serverless":
        return submit_emr_serverless(args, config, artefacts, job_args)
    return submit_dataproc(args, config, artefacts, job_args)


def _required(value: str | None, option: str, target: str) -> str:
    if not value:
        raise ConfigError(f"--target {target} needs {option}")
    return value


def _artifacts_uri(uri: str, key: str, scheme: str) -> str:
    if not uri:
        raise ConfigError(f"where to upload the artefacts ({scheme}://bucket/prefix)", key=key)
    if not uri.startswith(f"{scheme}://"):
        raise ConfigError(f"expected a {scheme}://bucket/prefix URI, got {uri!r}", key=key)
    return uri


def _uploaded(uploaded: list[str], artefacts: Any, base: str) -> None:
    total = len(artefacts.files())
    print(f"uploaded {len(uploaded)} of {total} artefacts to {base.rstrip('/')}/ "
          f"({total - len(uploaded)} already there)")
    if artefacts.bootstrap:
        print(f"bootstrap action: {artefacts.remote(base).bootstrap}")


def submit_emr(args: argparse.Namespace, config: Any, artefacts: Any, job_args: list[str]) -> int:
    from etl.submit import emr

    settings = config.deploy.emr
    base = _artifacts_uri(settings.artifacts_uri, "deploy.emr.artifacts_uri", "s3")
    if args.upload_only and not args.dry_run:
        _uploaded(emr.upload(emr.aws_client("s3", settings), artefacts, base), artefacts, base)
        return EXIT_OK
    cluster_id = _required(args.cluster_id, "--cluster-id", "emr")
    command = emr.spark_submit_command(args.job, artefacts.remote(base), job_args, config.deploy)
    request = emr.step_request(cluster_id, args.job, command, settings.action_on_failure)
    if args.dry_run:
        print(json.dumps({"upload": artefacts.uploads(base), "add_job_flow_steps": request},
                         indent=2))
        return EXIT_OK
    _uploaded(emr.upload(emr.aws_client("s3", settings), artefacts, base), artefacts, base)
    client = emr.aws_client("emr", settings)
    step_id = emr.add_step(client, request)
    print(f"added step {step_id} to {cluster_id}")
    if args.no_wait:
        return EXIT_OK
    result = emr.wait_for_step(client, cluster_id, step_id, poll_s=settings.poll_s,
                               timeout_s=args.wait_timeout)
    print(f"step {step_id}: {result.state}" + (f" ({result.reason})" if result.reason else ""))
    if result.log_uri:
        print(f"logs: {result.log_uri}")
    if not result.finished:
        print(f"still {result.state} after {args.wait_timeout}s; not waiting any longer",
              file=sys.stderr)
        return EXIT_OK
    return EXIT_OK if result.state == "COMPLETED" else EXIT_FAILURE


def submit_emr_serverless(args: argparse.Namespace, config: Any, artefacts: Any,
                          job_args: list[str]) -> int:
    from etl.submit import emr, emr_serverless

    settings = config.deploy.emr
    base = _artifacts_uri(settings.artifacts_uri, "deploy.emr.artifacts_uri", "s3")
    if args.upload_only and not args.dry_run:
        _uploaded(emr.upload(emr.aws_client("s3", settings), artefacts, base), artefacts, base)
        return EXIT_OK
    application_id = _required(args.application_id, "--application-id", "emr-serverless")
    request = emr_serverless.job_run_request(application_id, args.job, artefacts.remote(base),
                                             job_args, config.deploy)
    if args.dry_run:
        print(json.dumps({"upload": artefacts.uploads(base), "start_job_run": request}, indent=2))
        return EXIT_OK
    _uploaded(emr.upload(emr.aws_client("s3", settings), artefacts, base), artefacts, base)
    client = emr.aws_client("emr-serverless", settings)
    run_id = client.start_job_run(**request)["jobRunId"]
    print(f"started job run {run_id} on {application_id}")
    if args.no_wait:
        return EXIT_OK
    run = emr_serverless.wait_for_job_run(client, application_id, run_id, poll_s=settings.poll_s,
                                          timeout_s=args.wait_timeout)
    print(f"job run {run_id}: {run['state']}"
          + (f" ({run['stateDetails']})" if run.get("stateDetails") else ""))
    if settings.log_uri:
        print(f"logs: {settings.log_uri.rstrip('/')}/applications/{application_id}/jobs/{run_id}/")
    if run["state"] not in emr_serverless.TERMINAL_RUN_STATES:
        return EXIT_OK
    return EXIT_OK if run["state"] == "SUCCESS" else EXIT_FAILURE


def _upload_gcs(artefacts: Any, base: str, project: str | None) -> None:
    from etl.submit import split_uri

    try:
        from google.cloud import storage  # type: ignore[attr-defined]
    except ImportError as exc:
        raise ConfigError("uploading to gs:// needs google-cloud-storage: pip install "
                          "google-cloud-storage (or copy the files listed by --dry-run)") from exc
    gcs = storage.Client(project=project)
    uploaded = []
    for item in artefacts.uploads(base):
        bucket, key = split_uri(item["uri"], "gs")
        blob = gcs.bucket(bucket).blob(key)
        if not blob.exists():
            blob.upload_from_filename(item["file"])
            uploaded.append(item["uri"])
    _uploaded(uploaded, artefacts, base)


def submit_dataproc(args: argparse.Namespace, config: Any, artefacts: Any,
                    job_args: list[str]) -> int:
    from etl.submit import dataproc

    settings = config.deploy.dataproc
    base = _artifacts_uri(settings.artifacts_uri, "deploy.dataproc.artifacts_uri", "gs")
    if args.upload_only and not args.dry_run:
        _upload_gcs(artefacts, base, args.project or settings.project or None)
        return EXIT_OK
    request = dataproc.submit_job_request(args.job, artefacts.remote(base), job_args,
                                          config.deploy, cluster=args.cluster or "",
                                          region=args.region or "", project=args.project or "")
    if args.dry_run:
        print(json.dumps({"upload": artefacts.uploads(base),
                          "submit_job": json.loads(dataproc.to_json(request))}, indent=2))
        return EXIT_OK
    _upload_gcs(artefacts, base, request.project_id)
    client = dataproc.dataproc().JobControllerClient(
        client_options=dataproc.endpoint(request.region))
    operation = client.submit_job_as_operation(request=request)
    print(f"submitted Dataproc job {operation.metadata.job_id} to {request.job.placement.cluster_name}")
    if args.no_wait:
        return EXIT_OK
    job = operation.result(timeout=args.wait_timeout)
    print(f"job {job.reference.job_id}: {job.status.state.name}; driver output: "
          f"{job.driver_output_resource_uri}")
    return EXIT_OK if job.status.state.name == "DONE" else EXIT_FAILURE
