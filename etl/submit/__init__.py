"""Submitting jobs to clusters: the artefacts of ``make dist``, where they are uploaded, and the
command line a job runs with there. One module per target: `etl.submit.emr`,
`etl.submit.emr_serverless`, `etl.submit.dataproc`, and `etl.submit.airflow` (DAG files for a
pipeline); `etl.submit.platforms` says what each kind of cluster provides.

Every target runs the same thing: the generic driver ``main-<hash>.py`` as spark-submit's
primary resource, with the arguments of ``etl run`` (``run JOB --env ENV [--date D | --from D
--to D] [--set KEY=VALUE ...]``), the packed environment ``etl-env-<hash>.tar.gz`` unpacked as
``./environment`` and used as the driver's and the executors' Python, ``conf-<hash>.zip``
unpacked as ``./conf``, and the jars of ``jars-<hash>/``. Every artefact is uploaded under its
hashed name, so an upload never replaces a file a running job uses, and an unchanged one is not
uploaded again.

Secrets never travel in clear (`check_secrets`): only references (`etl.secrets`) do.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from etl import secrets
from etl.config import DeploySettings, JobConfig
from etl.errors import ConfigError
from etl.submit import platforms

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class RemoteArtefacts:
    """The URIs of the artefacts once uploaded."""

    environment: str
    conf: str
    main: str
    jars: tuple[str, ...]
    bootstrap: str | None = None

    def archives(self) -> list[str]:
        """``--archives`` / ``spark.archives``: the environment and the configuration."""
        return [f"{self.environment}#{platforms.ENVIRONMENT}", f"{self.conf}#{platforms.CONF}"]


@dataclass(frozen=True)
class Artefacts:
    """The files of ``make dist`` (``manifest.json`` lists them) for one platform."""

    folder: Path
    platform: str
    interpreter: str
    environment: Path
    conf: Path
    main: Path
    jars: tuple[Path, ...]
    bootstrap: Path | None = None

    @classmethod
    def from_dist(cls, dist_dir: str | Path) -> Artefacts:
        """Read ``dist_dir/manifest.json``; a missing or incomplete folder is a `ConfigError`
        that says to run ``make dist``."""
        folder = Path(dist_dir)
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
            jars = folder / manifest["jars"]["folder"]
            found = cls(
                folder=folder, platform=manifest["platform"],
                interpreter=manifest["python"]["interpreter"],
                environment=folder / manifest["environment"]["file"],
                conf=folder / manifest["conf"]["file"], main=folder / manifest["main"]["file"],
                jars=tuple(jars / jar["file"] for jar in manifest["jars"]["files"]),
                bootstrap=folder / manifest["bootstrap"]["file"] if manifest["bootstrap"] else None)
        except (OSError, ValueError, KeyError, TypeError):
            raise ConfigError(f"no artefacts in {folder} (run `make dist`)",
                              key="deploy.dist_dir") from None
        for _, path in found.files():
            if not path.is_file():
                raise ConfigError(f"{path} is missing (run `make dist`)", key="deploy.dist_dir")
        return found

    def check_built_for(self, deploy: DeploySettings) -> platforms.Platform:
        """The platform's profile, when these artefacts were built for ``deploy``'s platform
        and interpreter; a `ConfigError` naming the setting otherwise."""
        profile = platforms.platform(deploy.platform)
        if self.platform != profile.name:
            raise ConfigError(f"is {profile.name}, but {self.folder} was built for {self.platform} "
                              f"(make dist PLATFORM={profile.name})", key="deploy.platform")
        wanted = profile.interpreter_for(deploy)
        if wanted and wanted != self.interpreter:
            raise ConfigError(f"the interpreter is {wanted}, but {self.folder} was built for "
                              f"{self.interpreter} (run `make dist` again)", key="deploy.python")
        return profile

    def files(self) -> list[tuple[str, Path]]:
        """``(name under the artefacts URI, local file)`` of everything uploaded."""
        named = [(self.environment.name, self.environment), (self.conf.name, self.conf),
                 (self.main.name, self.main)]
        named += [(f"{jar.parent.name}/{jar.name}", jar) for jar in self.jars]
        if self.bootstrap:
            named.append((self.bootstrap.name, self.bootstrap))
        return named

    def remote(self, base_uri: str) -> RemoteArtefacts:
        """Where each artefact is under ``base_uri`` (``s3://`` or ``gs://``)."""
        base = base_uri.rstrip("/")
        return RemoteArtefacts(
            environment=f"{base}/{self.environment.name}", conf=f"{base}/{self.conf.name}",
            main=f"{base}/{self.main.name}",
            jars=tuple(f"{base}/{jar.parent.name}/{jar.name}" for jar in self.jars),
            bootstrap=f"{base}/{self.bootstrap.name}" if self.bootstrap else None)

    def uploads(self, base_uri: str) -> list[dict[str, str]]:
        """``{"file", "uri"}`` per artefact (what ``--dry-run`` prints)."""
        base = base_uri.rstrip("/")
        return [{"file": str(path), "uri": f"{base}/{name}"} for name, path in self.files()]


def forwarded_overrides(overrides: Iterable[str]) -> list[str]:
    """The ``--set`` items that the run on the cluster gets: all but ``deploy.*``, which are
    settings of the submission itself."""
    return [item for item in overrides if not item.split("=", 1)[0].strip().startswith("deploy.")]


def job_arguments(job: str, env: str, date_from: dt.date | None, date_to: dt.date | None,
                  overrides: Iterable[str] = (), logical_date: str | None = None) -> list[str]:
    """The driver's arguments: ``run JOB --env ENV``, the dates, and ``--set`` for each override.
    ``logical_date`` (e.g. Airflow's ``{{ ds }}``) stands for one date given as a template."""
    args = ["run", job, "--env", env]
    if logical_date:
        args += ["--date", logical_date]
    elif date_from and date_to and date_from == date_to:
        args += ["--date", date_from.isoformat()]
    elif date_from and date_to:
        args += ["--from", date_from.isoformat(), "--to", date_to.isoformat()]
    for item in overrides:
        args += ["--set", item]
    return args


def spark_conf(profile: platforms.Platform, deploy: DeploySettings,
               extra: dict[str, str]) -> dict[str, str]:
    """The Spark settings of a submission besides the artefacts: the platform's own, the Python
    of the driver and executors (the packed environment), ``deploy.environment`` (secret
    references for the driver only: it resolves them), then ``extra`` (the target's
    ``spark_conf``)."""
    python = {"PYSPARK_PYTHON": platforms.PYTHON, "SPARK_VERSION": platforms.SPARK_VERSION}
    driver = {"PYSPARK_PYTHON": platforms.PYTHON, "PYSPARK_DRIVER_PYTHON": platforms.PYTHON,
              "SPARK_VERSION": platforms.SPARK_VERSION, **deploy.environment}
    executors = {**python, **{k: v for k, v in deploy.environment.items()
                              if not secrets.is_reference(v)}}
    return {**profile.spark_conf, **profile.environment_conf(driver, executors), **extra}


def split_uri(uri: str, scheme: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")``; a `ConfigError` for another scheme."""
    prefix = f"{scheme}://"
    if not uri.startswith(prefix) or len(uri) <= len(prefix):
        raise ConfigError(f"expected a {prefix}bucket/prefix URI, got {uri!r}")
    bucket, _, key = uri[len(prefix):].partition("/")
    return bucket, key


# -- secrets --------------------------------------------------------------------------------------

def secret_variables(config: Any) -> set[str]:
    """The environment variables ``config`` reads secrets from: the values of its
    ``password_env``, ``token_env``, ``api_key_env``... settings, wherever they are, and the
    key of a job that declares personal data (``personal_data.key_env``)."""
    found: set[str] = set()
    if isinstance(config, JobConfig) and config.personal_data.declared:
        found.add(config.personal_data.key_env)

    def visit(value: Any) -> None:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            for f in dataclasses.fields(value):
                item = getattr(value, f.name)
                if (f.name.endswith("_env") and isinstance(item, str) and item
                        and secrets.looks_secret_name(f.name[: -len("_env")])):
                    found.add(item)
                visit(item)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)

    visit(config)
    return found


def _refuse(key: str) -> ConfigError:
    return ConfigError(
        "looks like a secret, and requests and DAG files must not hold one: give a reference "
        "resolved where the job runs (aws-sm://SECRET_ID[#KEY] or "
        "gcp-sm://projects/P/secrets/S[/versions/V][#KEY]; see docs/deployment.md)", key=key)


def target_spark_conf(deploy: DeploySettings, target: str) -> tuple[str, dict[str, str]]:
    """``(key, settings)`` of the extra Spark settings of ``target`` (EMR's or Dataproc's)."""
    if target == "dataproc":
        return "deploy.dataproc.spark_conf", deploy.dataproc.spark_conf
    return "deploy.emr.spark_conf", deploy.emr.spark_conf


def check_secrets(config: JobConfig, overrides: Iterable[str], target: str) -> None:
    """Refuse to send a secret's value: every ``deploy.environment`` variable that is a secret
    (by its name, by its value, or because the job reads a secret from it) and every forwarded
    ``--set`` of a secret key must be a reference; the target's Spark settings must hold none at
    all. Messages name the key, never the value."""
    deploy = config.deploy
    readers = secret_variables(config)
    for name, value in deploy.environment.items():
        if not value or secrets.is_reference(value):
            continue
        if name in readers or secrets.looks_secret_name(name) or secrets.looks_secret_value(value):
            raise _refuse(f"deploy.environment.{name}")
    for item in overrides:
        key, _, value = item.partition("=")
        if not value.strip() or secrets.is_reference(value.strip()):
            continue
        if secrets.looks_secret_name(key.strip()) or secrets.looks_secret_value(value):
            raise _refuse(f"--set {key.strip()}")
    spark_conf_key, section = target_spark_conf(deploy, target)
    for key, value in section.items():
        if secrets.looks_secret_name(key) or secrets.looks_secret_value(value) \
                or secrets.is_reference(value):
            raise ConfigError("Spark settings travel in clear and are not resolved on the "
                              "cluster: use the cluster's role or service account, or a "
                              "reference in deploy.environment", key=f"{spark_conf_key}.{key}")
