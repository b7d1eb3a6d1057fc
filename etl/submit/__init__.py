"""Submitting jobs to managed clusters: the artefacts of ``make dist`` and the command line a
job runs with there. One module per target: `etl.submit.emr`, `etl.submit.emr_serverless`,
`etl.submit.dataproc`, and `etl.submit.airflow` (DAG files for a pipeline).

Every target runs the same thing: ``jobs/<job>.py`` with the wheel and ``deps.zip`` on the Python
path (``--py-files``), ``conf.zip`` unpacked as ``./conf`` (``--archives conf.zip#conf``), the JVM
dependencies of ``etl/jars.txt`` as ``--packages``, and ``--env ENV`` plus the logical dates as
the job's arguments.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
from dataclasses import dataclass
from pathlib import Path

from etl.errors import ConfigError

#: Artefact name -> how the uploaded file is named under ``<artifacts_uri>/<version>/``.
ARTEFACTS = ("wheel", "deps", "conf", "entry")


@dataclass(frozen=True)
class Artefacts:
    """The files of ``make dist`` that a job needs on a cluster."""

    version: str
    wheel: Path
    deps: Path
    conf: Path
    entry: Path

    @classmethod
    def from_dist(cls, dist_dir: str | Path, job: str) -> Artefacts:
        """Find the artefacts in ``dist_dir``; a missing file is a `ConfigError` that says to
        run ``make dist``."""
        folder = Path(dist_dir)
        wheels = sorted(folder.glob("etl-*-py3-none-any.whl"))
        if len(wheels) != 1:
            raise ConfigError(f"expected one etl wheel in {folder}, found {len(wheels)} "
                              f"(run `make dist`)", key="deploy.dist_dir")
        found = cls(version=wheels[0].name.split("-")[1], wheel=wheels[0],
                    deps=folder / "deps.zip", conf=folder / "conf.zip",
                    entry=folder / "jobs" / f"{job}.py")
        for name in ARTEFACTS:
            path = getattr(found, name)
            if not path.is_file():
                raise ConfigError(f"{path} is missing (run `make dist`)", key="deploy.dist_dir")
        return found

    def remote(self, base_uri: str) -> dict[str, str]:
        """Where each artefact goes under ``base_uri`` (``s3://`` or ``gs://``)."""
        return remote_uris(base_uri, self.version, self.entry.stem)

    def local(self) -> dict[str, Path]:
        return {name: getattr(self, name) for name in ARTEFACTS}


def remote_uris(base_uri: str, version: str, job: str) -> dict[str, str]:
    """The URIs of a version's artefacts under ``base_uri``: ``<base>/<version>/...``."""
    root = f"{base_uri.rstrip('/')}/{version}"
    return {
        "wheel": f"{root}/etl-{version}-py3-none-any.whl",
        "deps": f"{root}/deps.zip",
        "conf": f"{root}/conf.zip",
        "entry": f"{root}/jobs/{job}.py",
    }


def job_arguments(env: str, date_from: dt.date | None, date_to: dt.date | None,
                  logical_date: str | None = None) -> list[str]:
    """The job's own arguments (after ``jobs/<job>.py``): the environment and the dates.
    ``logical_date`` (e.g. Airflow's ``{{ ds }}``) stands for one date given as a template."""
    args = ["--env", env]
    if logical_date:
        return [*args, "--date", logical_date]
    if date_from and date_to and date_from == date_to:
        return [*args, "--date", date_from.isoformat()]
    if date_from and date_to:
        return [*args, "--from", date_from.isoformat(), "--to", date_to.isoformat()]
    return args


def maven_packages() -> str:
    """The coordinates of ``etl/jars.txt`` joined for ``--packages``."""
    text = importlib.resources.files("etl").joinpath("jars.txt").read_text()
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return ",".join(line for line in lines if line)


def split_uri(uri: str, scheme: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")``; a `ConfigError` for another scheme."""
    prefix = f"{scheme}://"
    if not uri.startswith(prefix) or len(uri) <= len(prefix):
        raise ConfigError(f"expected a {prefix}bucket/prefix URI, got {uri!r}")
    bucket, _, key = uri[len(prefix):].partition("/")
    return bucket, key


def spark_environment(environment: dict[str, str], prefixes: tuple[str, ...]) -> dict[str, str]:
    """Spark settings that set ``environment`` (plus SPARK_VERSION for PyDeequ) for the driver
    and the executors, one setting per prefix and variable."""
    variables = {"SPARK_VERSION": "3.5", **environment}
    return {f"{prefix}{name}": value for prefix in prefixes for name, value in variables.items()}
