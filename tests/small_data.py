"""Engine settings for the tests' batches of a few rows, where planning a query costs more than
running it: no code generation (each new query's generated Java is compiled by Janino, a sixth
of a warm session's CPU in a 6-row flights correction) and no adaptive re-planning after each
shuffle. The same rows come out; measured on that correction, a warm run took 0.74 of its time
(10.4 s against 14.1 s). Jobs keep Spark's defaults (conf/base.yml).

The tests' own sessions take them as settings (tests/conftest.py), the drivers tests start in
child processes through pyspark's launcher (``PYSPARK_SUBMIT_ARGS``), and the standalone
cluster's job as spark-submit options (`submit_options`). Every local driver of the tests also
starts with `JIT` and `GC` (tests/jvm_archive.py)."""

from __future__ import annotations

SMALL_DATA = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.sql.adaptive.enabled": "false",
}


#: The JIT's thresholds for its optimising tier (C2) in the tests' local drivers, thirty times
#: the JVM's (a method is compiled there after 150,000 calls instead of 5,000, or 1,200,000 loop
#: iterations instead of 40,000). A test session plans thousands of small queries and runs
#: each once: at the default thresholds, C2 compiled Catalyst, Delta and Deequ methods that
#: never ran long enough after it to repay it, and its thread took a third of the drivers' CPU
#: (131 s of 403 s in `test_file_drift`, `test_shop_job` and `test_driver_kills` on two
#: pytest-xdist workers), CPU the other worker needed. Measured on those three modules, runs
#: alternated: 239.5 s and 245.0 s at the defaults, 215.8 s and 220.4 s at ten times (C2 68 s
#: and 69 s), 0.90 of the time; later, the machine slower, thirty times took 233.2 s and
#: 234.5 s against 242.7 s and 240.3 s at ten times (C2 48 s against 77 s), 0.97. Four times
#: (226.8 s, 225.8 s, 231.8 s) or every tier's thresholds scaled (``-XX:CompileThresholdScaling``
#: 4: 227.3 s, 230.3 s; 10: 227.3 s) gained less than ten times. The first tier alone
#: (``-XX:TieredStopAtLevel=1``) is slower: a warm session's code then runs unoptimised
#: (`test_file_drift` alone took 139.9 s and 136.5 s against 97.5 s twice). Jobs keep the JVM's
#: defaults; the standalone cluster's JVMs start with the first tier only
#: (tests/integration/test_cluster_standalone.py).
JIT = ("-XX:Tier4InvocationThreshold=150000", "-XX:Tier4MinInvocationThreshold=18000",
       "-XX:Tier4CompileThreshold=450000", "-XX:Tier4BackEdgeThreshold=1200000")

#: The tests' local drivers collect with the parallel collector instead of G1, the JVM's default:
#: its write barriers are cheaper and it runs no concurrent threads beside the application, and
#: two drivers share two cores. Measured on the three modules above (two pytest-xdist workers,
#: the class archive and `JIT` in both, runs alternated): 216.9 s and 217.5 s against G1's
#: 238.6 s and 234.6 s, 0.92 of the time; the serial collector took 232.3 s against 219.0 s.
#: On `test_flights_job`, `test_golden_tables` and `test_notebook_report`: 199.5 s against G1's
#: 269.5 s (and 216.9 s against 255.5 s in a round where two short tests failed early).
#: On the whole suite from fresh clones the evidence is mixed: 836 s, 840 s and 823 s of pytest
#: with it, 836 s and 1,075 s with G1 (a shared, noisy machine). The class archive maps as
#: before (only the JDK's archived heap objects need G1). Jobs keep the JVM's default collector.
GC = ("-XX:+UseParallelGC",)


def submit_options() -> list[str]:
    """`SMALL_DATA` as spark-submit's ``--conf key=value`` options."""
    return [part for key, value in SMALL_DATA.items() for part in ("--conf", f"{key}={value}")]
