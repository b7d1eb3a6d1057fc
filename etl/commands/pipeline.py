"""``etl pipeline run NAME --date D`` and ``etl pipeline export NAME --target ...``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from etl.commands.run import parse_date
from etl.commands.submit import add_conf_options
from etl.errors import EXIT_FAILURE, EXIT_OK, ConfigError, SecretError, exit_code

EXPORT_TARGETS = ("airflow", "dataproc-workflow")


def register(commands: Any) -> None:
    pipeline = commands.add_parser(
        "pipeline", help="run or export a pipeline (conf/pipelines/NAME.yml)",
        description="Pipelines are named sets of jobs with dependencies, a schedule, retries "
        "and timeouts (conf/pipelines/NAME.yml).")
    actions = pipeline.add_subparsers(dest="action", required=True, metavar="ACTION")

    run = actions.add_parser(
        "run", help="run the pipeline locally for one logical date",
        description="Run every job of the pipeline for --date in dependency order in one "
        "SparkSession; retry failed jobs; skip what depends on a failure; skip jobs that already "
        "succeeded for the date unless --force. Exit code 0 if every job succeeded, else 1.")
    run.add_argument("name", help="pipeline name")
    run.add_argument("--date", type=parse_date, required=True, help="logical date (YYYY-MM-DD)")
    run.add_argument("--force", action="store_true", help="run jobs that already succeeded too")
    add_conf_options(run, "local")
    run.set_defaults(handler=handle_run)

    export = actions.add_parser(
        "export", help="write an Airflow DAG or a Dataproc workflow template",
        description="Write the pipeline as an Airflow DAG file (one task per job: EMR add-step "
        "+ step sensor, or Dataproc submit, by pipeline.target) or as a Dataproc workflow "
        "template (JSON) whose steps follow the dependencies.")
    export.add_argument("name", help="pipeline name")
    export.add_argument("--target", choices=EXPORT_TARGETS, required=True)
    export.add_argument("--out", help="output file (default: dist/airflow/NAME.py or "
                        "dist/dataproc/NAME.json)")
    export.add_argument("--dry-run", action="store_true", help="print instead of writing")
    add_conf_options(export, "prod")
    export.set_defaults(handler=handle_export)


def handle_run(args: argparse.Namespace) -> int:
    from etl import logs, secrets
    from etl.inspection import format_table
    from etl.pipeline import ALREADY_SUCCEEDED, SUCCEEDED, load_pipeline, run_pipeline

    pipeline = load_pipeline(args.name, args.conf_dir)
    logs.configure()
    try:  # secret references, here where the jobs run (etl.secrets)
        secrets.resolve_environment()
        outcomes = run_pipeline(pipeline, args.date, env=args.env, overrides=args.overrides,
                                directory=args.conf_dir, force=args.force)
    except SecretError as exc:
        print(f"etl: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exit_code(exc)
    print(format_table(["job", "status", "attempts", "run ids", "error"],
                       [(o.job, o.status, o.attempts, " ".join(o.run_ids), o.error or "")
                        for o in outcomes]))
    ok = all(o.status in (SUCCEEDED, ALREADY_SUCCEEDED) for o in outcomes)
    return EXIT_OK if ok else EXIT_FAILURE


def handle_export(args: argparse.Namespace) -> int:
    from etl.config import load_job_config
    from etl.pipeline import load_pipeline
    from etl.submit import Artefacts, check_secrets, forwarded_overrides, platforms

    pipeline = load_pipeline(args.name, args.conf_dir)
    overrides = {job: [*args.overrides, *pipeline.jobs[job].set] for job in pipeline.order()}
    configs = {job: load_job_config(job, env=args.env, directory=args.conf_dir,
                                    overrides=overrides[job])
               for job in pipeline.order()}
    deploy = configs[pipeline.order()[0]].deploy
    target = pipeline.pipeline.target if args.target == "airflow" else "dataproc"
    platforms.for_target(deploy, target)
    artefacts = Artefacts.from_dist(deploy.dist_dir)
    artefacts.check_built_for(deploy)
    forwarded = {job: forwarded_overrides(items) for job, items in overrides.items()}
    for job, config in configs.items():
        check_secrets(config, forwarded[job], target)
    if args.target == "airflow":
        text = _airflow(pipeline, configs, deploy, artefacts, forwarded, args.env)
        default_out = Path(deploy.dist_dir) / "airflow" / f"{args.name}.py"
    else:
        from etl.submit import dataproc, job_arguments

        steps = []
        for job, config in configs.items():
            remote = artefacts.remote(_base(config.deploy.dataproc.artifacts_uri, "dataproc"))
            steps.append((job, pipeline.jobs[job].depends_on, remote,
                          job_arguments(job, args.env, None, None, forwarded[job],
                                        logical_date=dataproc.LOGICAL_DATE)))
        template = dataproc.workflow_template(args.name, steps, deploy)
        text = dataproc.to_json(template) + "\n"
        default_out = Path(deploy.dist_dir) / "dataproc" / f"{args.name}.json"
    if args.dry_run:
        sys.stdout.write(text)
        return EXIT_OK
    out = Path(args.out) if args.out else default_out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")
    return EXIT_OK


def _base(uri: str, target: str) -> str:
    if not uri:
        raise ConfigError("where the artefacts are uploaded", key=f"deploy.{target}.artifacts_uri")
    return uri


def _airflow(pipeline: Any, configs: dict[str, Any], deploy: Any, artefacts: Any,
             overrides: dict[str, list[str]], env: str) -> str:
    from etl.submit import airflow, job_arguments

    requests: dict[str, Any] = {}
    for job, config in configs.items():
        job_args = job_arguments(job, env, None, None, overrides[job],
                                 logical_date=airflow.LOGICAL_DATE_TOKEN)
        if pipeline.pipeline.target == "emr":
            from etl.submit import emr

            remote = artefacts.remote(_base(config.deploy.emr.artifacts_uri, "emr"))
            command = emr.spark_submit_command(job, remote, job_args, config.deploy)
            step = emr.step_request(deploy.emr.cluster_id, job, command,
                                    config.deploy.emr.action_on_failure,
                                    label=airflow.LOGICAL_DATE_TOKEN)
            requests[job] = step["Steps"][0]
        else:
            from etl.submit import dataproc

            remote = artefacts.remote(_base(config.deploy.dataproc.artifacts_uri, "dataproc"))
            request = dataproc.submit_job_request(job, remote, job_args, config.deploy)
            requests[job] = json.loads(dataproc.to_json(request.job, proto_names=True))
    return airflow.render_dag(pipeline, requests, deploy)
