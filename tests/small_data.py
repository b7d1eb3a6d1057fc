"""Engine settings for the tests' batches of a few rows, where planning a query costs more than
running it: no code generation (each new query's generated Java is compiled by Janino, a sixth
of a warm session's CPU in a 6-row flights correction) and no adaptive re-planning after each
shuffle. The same rows come out; measured on that correction, a warm run took 0.74 of its time
(10.4 s against 14.1 s). Jobs keep Spark's defaults (conf/base.yml).

The tests' own sessions take them as settings (tests/conftest.py), the drivers tests start in
child processes through pyspark's launcher (``PYSPARK_SUBMIT_ARGS``), and the standalone
cluster's job as spark-submit options (`submit_options`)."""

from __future__ import annotations

SMALL_DATA = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.sql.adaptive.enabled": "false",
}


def submit_options() -> list[str]:
    """`SMALL_DATA` as spark-submit's ``--conf key=value`` options."""
    return [part for key, value in SMALL_DATA.items() for part in ("--conf", f"{key}={value}")]
