"""The class archive the tests' Spark drivers start from (the JVM's dynamic CDS archive).

A fresh driver spends much of its first run loading, parsing and verifying the classes of
Spark, Delta and Deequ. The suite starts many fresh drivers: `etl` commands in child processes
(the driver kills, task retries, concurrent writers, the Kafka restart, the notebook's kernel)
and one session per pytest worker. An archive dumped at the exit of one representative run (a
flights run on one landed day) lets each of them map those classes in ready-made.

Measured side by side (`python -m tests.jvm_archive --compare 3`, a cold `etl run flights` on one
landed day, alternated): 0.84 of the time without it. The first tier of the JIT alone
(``-XX:TieredStopAtLevel=1``) and the serial collector gave nothing on top; the drivers start
with the JIT thresholds and the collector of `tests.small_data`, with or without the archive.

The JVM only archives classes of its own class path, so the drivers also name the resolved jars
on ``--driver-class-path`` (``spark.jars`` still lists them; the class path's copy is found
first). An archive is used only with the class path and jar files it was dumped with: the JVM
checks them and otherwise starts without it, silently. Jobs and clusters never use it: it is
the test harness's (``make jvm-archive``, a step of ``make test``), kept in ``.jars/``.

``python -m tests.jvm_archive`` dumps it; ``--compare N`` measures it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from etl.session import local_jars
from tests import python_daemon
from tests.reliability.harness import flights_command
from tests.small_data import GC, JIT, submit_options

ROOT = Path(__file__).resolve().parent.parent
JARS = ROOT / ".jars"
ARCHIVE = JARS / "drivers.jsa"
#: the JVM's messages about an archive it cannot use (another class path, a changed jar)
QUIET = "-Xlog:cds*=off"


def driver_options(*flags: str) -> list[str]:
    """spark-submit options giving a local driver the jars on its class path, the tests' Python
    daemon (`tests.python_daemon`), the tests' JIT thresholds and collector
    (`tests.small_data.JIT`, `tests.small_data.GC`) and ``flags``."""
    jars = ":".join(local_jars(JARS))
    java = " ".join([*JIT, *GC, *flags, QUIET])
    return ["--driver-class-path", jars, *python_daemon.OPTIONS,
            "--conf", f"spark.driver.defaultJavaOptions={java}"]


def archive_options(archive: Path = ARCHIVE) -> list[str]:
    """The options that start a driver from ``archive``; without it while it has not been
    dumped (the JIT thresholds still apply)."""
    return driver_options(f"-XX:SharedArchiveFile={archive}") if archive.is_file() \
        else driver_options()


def submit_args(*options: str) -> str:
    """``PYSPARK_SUBMIT_ARGS`` for pyspark's launcher: the tests' engine settings, ``options``."""
    return shlex.join([*submit_options(), *options, "pyspark-shell"])


def land_one_day(landing: Path) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    import land_flights

    land_flights.land(landing, [1], [1])


def dump(archive: Path = ARCHIVE) -> None:
    """Run the flights job on one landed day in a driver that dumps its classes at exit, into
    ``archive`` (written under another name and moved, so a half-written one is never used)."""
    partial = archive.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as work:
        landing = Path(work) / "landing"
        land_one_day(landing)
        _, _, _, *arguments = flights_command(Path(work) / "warehouse", landing)  # python -m etl
        # the driver's JVM dumps the archive as it exits, once the job's Python has ended
        code = (
            "import runpy, sys\n"
            "from pyspark import SparkContext\n"
            f"sys.argv = {['etl', *arguments]!r}\n"
            "status = 0\n"
            "try:\n"
            "    runpy.run_module('etl', run_name='__main__')\n"
            "except SystemExit as exit:\n"
            "    status = exit.code\n"
            "jvm = SparkContext._gateway.proc\n"
            "jvm.stdin.close()\n"
            "jvm.wait()\n"
            "sys.exit(status)\n"
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT), "SPARK_VERSION": "3.5",
               "PYSPARK_SUBMIT_ARGS": submit_args(
                   *driver_options(f"-XX:ArchiveClassesAtExit={partial}"))}
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=False,
                              capture_output=True, text=True)
    if done.returncode != 0 or not partial.is_file():
        sys.exit(f"jvm_archive: the flights run that dumps {archive} exited {done.returncode} "
                 f"and left no archive:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    partial.replace(archive)
    print(f"jvm_archive: {archive.relative_to(ROOT)}, {archive.stat().st_size >> 20} MiB")


def compare(rounds: int) -> None:
    """A cold ``etl run flights`` on one landed day, with and without the archive, alternated;
    prints each time and the ratio of the means."""
    if not ARCHIVE.is_file():
        sys.exit(f"jvm_archive: no {ARCHIVE}; run `make jvm-archive`")
    variants = {"without": submit_args(*driver_options()), "with": submit_args(*archive_options())}
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as work:
        landing = Path(work) / "landing"
        land_one_day(landing)
        for round_ in range(rounds):
            for name, args in variants.items():
                warehouse = Path(work) / f"warehouse-{name}-{round_}"
                env = {**os.environ, "PYTHONPATH": str(ROOT), "SPARK_VERSION": "3.5",
                       "PYSPARK_SUBMIT_ARGS": args}
                start = time.perf_counter()
                subprocess.run(flights_command(warehouse, landing), cwd=ROOT, env=env, check=True,
                               capture_output=True)
                seconds[name].append(time.perf_counter() - start)
                print(f"round {round_ + 1} {name:>7} archive: {seconds[name][-1]:.1f} s", flush=True)
    means = {name: sum(times) / len(times) for name, times in seconds.items()}
    print(f"mean with {means['with']:.1f} s, without {means['without']:.1f} s: "
          f"ratio {means['with'] / means['without']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compare", type=int, metavar="N",
                        help="time N cold flights runs with and without the archive, alternated")
    args = parser.parse_args()
    compare(args.compare) if args.compare else dump()


if __name__ == "__main__":
    main()
