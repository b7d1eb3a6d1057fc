"""No secret leaves in clear: with a known secret in the environment and in conf, it is in none of
the EMR steps, EMR Serverless job runs, Dataproc jobs and workflow templates, Airflow DAG files or
--dry-run outputs. A secret given as a reference (aws-sm://, gcp-sm://) travels as the reference,
to the driver only; a secret given as a value is refused (exit 2) with a message naming the key,
never the value."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from etl.cli import main
from tests.orchestration_conf import make_conf
from tests.orchestration_dist import ROOT

SECRET = "Sup3r-s3cret-Value-42"
REFERENCE = "aws-sm://etl/prod/warehouse#password"
TARGETS = {"emr": ("emr-7", ["--cluster-id", "j-1"]),
           "emr-serverless": ("emr-serverless-7", ["--application-id", "00f1"]),
           "dataproc": ("dataproc-2.2", ["--cluster", "c", "--region", "europe-west1"])}
DEPLOY = ["--set", "deploy.emr.artifacts_uri=s3://artefacts/etl",
          "--set", "deploy.emr.execution_role_arn=arn:aws:iam::123456789012:role/etl",
          "--set", "deploy.dataproc.artifacts_uri=gs://artefacts/etl",
          "--set", "deploy.dataproc.project=p"]


@pytest.fixture(autouse=True)
def environment(monkeypatch):
    """The secret is in the submitting machine's environment, as a developer's would be."""
    monkeypatch.setenv("ETL_PG_PASSWORD", SECRET)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("ETL_WAREHOUSE", "s3a://lake/warehouse")
    monkeypatch.setenv("ETL_LANDING", "s3a://lake/landing")
    monkeypatch.delenv("ETL_PLATFORM", raising=False)


def conf_with(tmp_path, environment: dict[str, str]):
    """The repository's conf/ with ``environment`` added to prod.yml's deploy.environment."""
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)
    prod = yaml.safe_load((conf / "prod.yml").read_text())
    prod["deploy"]["environment"].update(environment)
    (conf / "prod.yml").write_text(yaml.safe_dump(prod))
    return conf


def submit(conf, target: str, dist_for, *extra: str) -> list[str]:
    platform, options = TARGETS[target]
    return ["--conf-dir", str(conf), "submit", "flights", "--env", "prod", "--dry-run",
            "--date", "2013-01-02", "--set", f"deploy.platform={platform}",
            "--set", f"deploy.dist_dir={dist_for(platform)}", *DEPLOY, *options, *extra]


@pytest.mark.parametrize("target", TARGETS)
def test_a_reference_travels_to_the_driver_and_the_secret_nowhere(tmp_path, dist_for, capsys,
                                                                  target):
    conf = conf_with(tmp_path, {"ETL_PG_PASSWORD": REFERENCE})
    code = main(submit(conf, target, dist_for,
                       "--set", f"spark.conf.spark.hadoop.fs.s3a.secret.key={REFERENCE}"))
    out = capsys.readouterr()
    assert code == 0, out.err
    assert SECRET not in out.out + out.err
    printed = json.dumps(json.loads(out.out))
    driver = {"emr": "spark.yarn.appMasterEnv.", "dataproc": "spark.yarn.appMasterEnv.",
              "emr-serverless": "spark.emr-serverless.driverEnv."}[target]
    assert f"{driver}ETL_PG_PASSWORD={REFERENCE}" in printed \
        or f'"{driver}ETL_PG_PASSWORD": "{REFERENCE}"' in printed
    assert "spark.executorEnv.ETL_PG_PASSWORD" not in printed  # the driver resolves it
    # a --set of a secret key given as a reference reaches the run, resolved there
    assert f"spark.conf.spark.hadoop.fs.s3a.secret.key={REFERENCE}" in printed


@pytest.mark.parametrize("target", TARGETS)
def test_a_secret_value_is_refused_naming_the_key(tmp_path, dist_for, capsys,
                                                  target):
    conf = conf_with(tmp_path, {"ETL_PG_PASSWORD": "${ETL_PG_PASSWORD}"})
    assert main(submit(conf, target, dist_for)) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith("etl: error: deploy.environment.ETL_PG_PASSWORD: looks like a "
                              "secret, and requests and DAG files must not hold one: give a "
                              "reference resolved where the job runs (aws-sm://")
    assert SECRET not in out.err


@pytest.mark.parametrize(("extra", "key"), [
    (["--set", f"spark.conf.spark.hadoop.fs.s3a.secret.key={SECRET}"],
     "--set spark.conf.spark.hadoop.fs.s3a.secret.key"),
    (["--set", f"params.db_url=postgresql://etl:{SECRET}@db:5432/etl"], "--set params.db_url"),
    (["--set", f"deploy.emr.spark_conf={{spark.hadoop.fs.s3a.secret.key: {SECRET}}}"],
     "deploy.emr.spark_conf.spark.hadoop.fs.s3a.secret.key"),
])
def test_secrets_in_overrides_and_spark_settings_are_refused(tmp_path, dist_for, capsys, extra,
                                                             key):
    assert main(submit(ROOT / "conf", "emr", dist_for, *extra)) == 2
    out = capsys.readouterr()
    assert out.err.startswith(f"etl: error: {key}: ")
    assert SECRET not in out.out + out.err


def test_a_variable_a_source_reads_its_password_from_is_a_secret(tmp_path, dist_for,
                                                                 capsys):
    """ETL_SHOP_DB does not look like a secret by its name, but the shop job reads its database
    password from it."""
    conf = conf_with(tmp_path, {"ETL_SHOP_DB": "${ETL_PG_PASSWORD}"})
    args = submit(conf, "emr", dist_for, "--set",
                  "sources.customers.jdbc.credentials.password_env=ETL_SHOP_DB")
    args[args.index("flights")] = "shop"
    assert main(args) == 2
    out = capsys.readouterr()
    assert out.err.startswith("etl: error: deploy.environment.ETL_SHOP_DB: looks like a secret")
    assert SECRET not in out.out + out.err


def test_the_key_of_a_job_with_personal_data_is_a_secret(tmp_path, dist_for, monkeypatch,
                                                          capsys):
    """ETL_PII_KEY does not look like a secret by its name, but the shop job hashes its
    customers' e-mails with it (personal_data.key_env)."""
    monkeypatch.setenv("ETL_PII_KEY", SECRET)
    conf = conf_with(tmp_path, {"ETL_PII_KEY": "${ETL_PII_KEY}"})
    args = submit(conf, "emr", dist_for)
    args[args.index("flights")] = "shop"
    assert main(args) == 2
    out = capsys.readouterr()
    assert out.err.startswith("etl: error: deploy.environment.ETL_PII_KEY: looks like a secret")
    assert SECRET not in out.out + out.err


@pytest.mark.parametrize(("target", "platform"), [("emr", "emr-7"), ("dataproc", "dataproc-2.2")])
def test_exported_dags_and_templates_hold_references_not_secrets(tmp_path, dist_for, capsys,
                                                                 target, platform):
    jobs = {"extract": {"set": [f"spark.conf.spark.hadoop.fs.s3a.secret.key={REFERENCE}"]}}
    conf = make_conf(tmp_path, tmp_path / "w", {"extract": {}},
                     {"daily": {"pipeline": {"name": "daily", "target": target}, "jobs": jobs}})
    deploy = [*DEPLOY, "--set", f"deploy.platform={platform}",
              "--set", f"deploy.dist_dir={dist_for(platform)}",
              "--set", "deploy.dataproc.cluster=c", "--set", "deploy.dataproc.region=r",
              "--set", f"deploy.environment={{ETL_PG_PASSWORD: '{REFERENCE}'}}"]
    exports = ["airflow"] + (["dataproc-workflow"] if target == "dataproc" else [])
    for export in exports:
        code = main(["--conf-dir", str(conf), "pipeline", "export", "daily", "--target", export,
                     "--env", "local", "--dry-run", *deploy])
        out = capsys.readouterr()
        assert code == 0, out.err
        assert REFERENCE in out.out
        assert SECRET not in out.out + out.err

    jobs["extract"]["set"] = [f"spark.conf.spark.hadoop.fs.s3a.secret.key={SECRET}"]
    conf = make_conf(tmp_path / "again", tmp_path / "w", {"extract": {}},
                     {"daily": {"pipeline": {"name": "daily", "target": target}, "jobs": jobs}})
    code = main(["--conf-dir", str(conf), "pipeline", "export", "daily", "--target", "airflow",
                 "--env", "local", "--dry-run", *deploy])
    out = capsys.readouterr()
    assert code == 2
    assert out.err.startswith("etl: error: --set spark.conf.spark.hadoop.fs.s3a.secret.key: ")
    assert SECRET not in out.out + out.err
