"""Platform profiles: what a cluster provides, and how a job's artefacts are shipped to it.

``deploy.platform`` names one of `PLATFORMS`. ``make dist`` builds the artefacts for it (the
packed Python environment links to the platform's interpreter; the jar bundle leaves out what
the platform provides) and ``etl submit`` ships them the platform's way:

* the packed environment as ``spark.archives`` / ``--archives <uri>#environment``, with
  ``PYSPARK_PYTHON`` and ``PYSPARK_DRIVER_PYTHON`` set to ``./environment/bin/python`` through the
  platform's own settings for the driver's environment (``spark.yarn.appMasterEnv.*`` on YARN,
  ``spark.emr-serverless.driverEnv.*`` on EMR Serverless) and ``spark.executorEnv.*``;
* the jars of the bundle as ``--jars`` / ``spark.jars`` / Dataproc's ``jar_file_uris``; never
  ``--packages``: nothing is resolved from Maven when a job starts.

* ``emr-7``: Python 3.11 at ``/usr/bin/python3.11`` (the bootstrap action ``make dist``
  writes installs it); hadoop-aws and its AWS SDK are provided; the driver runs in the YARN
  application master (cluster mode).
* ``emr-serverless-7``: ``/usr/bin/python3.11`` from the application's custom image; the same
  jars provided; the driver's environment is ``spark.emr-serverless.driverEnv.*``.
* ``dataproc-2.2``: the image's ``/opt/conda/default/bin/python3.11``; hadoop-aws is left out
  (the data is on ``gs://``, the GCS connector is on the image); cluster mode.
* ``standalone``: the Python that built the artefacts; every jar is shipped; the driver runs
  where ``spark-submit.sh --dist`` runs (client mode).

Example::

    profile = platform("emr-7")
    profile.interpreter_for(DeploySettings(platform="emr-7"))   # '/usr/bin/python3.11'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from etl.config import DeploySettings
from etl.errors import ConfigError

#: The name the packed environment is unpacked as, next to the driver and each executor.
ENVIRONMENT = "environment"
#: The Python of the driver and the executors on a cluster: the packed environment's.
PYTHON = f"./{ENVIRONMENT}/bin/python"
#: The name the configuration archive is unpacked as (``./conf``, the default conf folder).
CONF = "conf"
#: What PyDeequ needs to know before it is imported (the Spark of every platform).
SPARK_VERSION = "3.5"
_VERSION = re.compile(r"^3\.\d{1,2}$")
_COORDINATE = re.compile(r"^[\w.\-]+:[\w.\-]+$")


@dataclass(frozen=True)
class Platform:
    """One kind of cluster (see the module's table)."""

    name: str
    #: The ``etl submit --target`` that runs jobs on it; empty for ``spark-submit.sh --dist``.
    target: str
    #: The interpreter of Python ``{version}`` on the nodes; empty: the Python that builds.
    interpreter: str
    #: Coordinates (``group:artifact``) of etl/jars.txt the platform provides: their jars and
    #: the jars only they need are not shipped.
    provided: tuple[str, ...]
    #: The prefix of the Spark settings that set an environment variable of the driver.
    driver_env: str
    executor_env: str = "spark.executorEnv."
    #: Spark settings every submission to it has.
    spark_conf: dict[str, str] = field(default_factory=dict)

    def interpreter_for(self, deploy: DeploySettings) -> str:
        """The interpreter the packed environment links to (``deploy.python`` wins); empty for
        standalone without ``deploy.python`` (the building Python is meant)."""
        check_python_version(deploy.python_version)
        if deploy.python:
            if not deploy.python.startswith("/"):
                raise ConfigError(f"expected an absolute path, got {deploy.python!r}",
                                  key="deploy.python")
            return deploy.python
        return self.interpreter.format(version=deploy.python_version)

    def provided_coordinates(self, deploy: DeploySettings) -> tuple[str, ...]:
        """What the cluster provides: the platform's coordinates and ``deploy.provided_jars``."""
        for number, coordinate in enumerate(deploy.provided_jars):
            if not _COORDINATE.match(coordinate):
                raise ConfigError(f"expected group:artifact, got {coordinate!r}",
                                  key=f"deploy.provided_jars[{number}]")
        return tuple(dict.fromkeys([*self.provided, *deploy.provided_jars]))

    def environment_conf(self, driver: dict[str, str],
                         executors: dict[str, str]) -> dict[str, str]:
        """Spark settings that set ``driver`` in the driver's environment and ``executors`` in
        the executors' (one setting per variable)."""
        return {**{f"{self.driver_env}{k}": v for k, v in driver.items()},
                **{f"{self.executor_env}{k}": v for k, v in executors.items()}}


S3_ACCESS = "org.apache.hadoop:hadoop-aws"

PLATFORMS: dict[str, Platform] = {p.name: p for p in (
    # EMR on EC2 (YARN): EMRFS and hadoop-aws with the AWS SDK are on every node; Python 3.11 is
    # installed by the bootstrap action `make dist` writes (EMR 7 runs PySpark on 3.9 otherwise).
    Platform("emr-7", "emr", "/usr/bin/python{version}", (S3_ACCESS,), "spark.yarn.appMasterEnv."),
    # EMR Serverless: the same jars; Python 3.11 comes from a custom image of the application.
    Platform("emr-serverless-7", "emr-serverless", "/usr/bin/python{version}", (S3_ACCESS,),
             "spark.emr-serverless.driverEnv."),
    # Dataproc 2.2 images run Python 3.11 from Miniconda and provide the GCS connector; the driver
    # runs in a YARN container (cluster mode), where the archives are unpacked.
    Platform("dataproc-2.2", "dataproc", "/opt/conda/default/bin/python{version}", (S3_ACCESS,),
             "spark.yarn.appMasterEnv.", spark_conf={"spark.submit.deployMode": "cluster"}),
    # Spark standalone from a plain Spark installation: everything is shipped.
    Platform("standalone", "", "", (), ""),
)}


def platform(name: str) -> Platform:
    """The profile named ``name``; a `ConfigError` naming ``deploy.platform`` otherwise."""
    try:
        return PLATFORMS[name]
    except KeyError:
        raise ConfigError(f"unknown platform {name!r} (known: {', '.join(PLATFORMS)})",
                          key="deploy.platform") from None


def check_python_version(version: str) -> str:
    if not _VERSION.match(version):
        raise ConfigError(f"expected a Python version such as 3.11, got {version!r}",
                          key="deploy.python_version")
    return version


def for_target(deploy: DeploySettings, target: str | None) -> Platform:
    """The profile of ``deploy.platform``, checked against ``etl submit --target`` (when given):
    a target that does not run on the platform is a `ConfigError` naming ``deploy.platform``."""
    profile = platform(deploy.platform)
    if not profile.target:
        raise ConfigError(f"{profile.name} jobs are submitted with ./spark-submit.sh --dist DIR, "
                          "not etl submit; set the platform the target runs on",
                          key="deploy.platform")
    if target and target != profile.target:
        wanted = next(p.name for p in PLATFORMS.values() if p.target == target)
        raise ConfigError(f"is {profile.name}, which --target {target} does not run on; set "
                          f"deploy.platform={wanted} and build the artefacts for it "
                          f"(make dist PLATFORM={wanted})", key="deploy.platform")
    return profile
