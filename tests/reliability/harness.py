"""Driving real job processes for the fault-injection tests and ``scripts/chaos.py``: start
``python -m etl run flights`` in its own process group, kill it with SIGKILL at a chosen moment,
and read a Delta table's committed version and data files straight from storage (no Spark)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KILLED = -signal.SIGKILL


def committed_version(table: Path) -> int | None:
    """The newest version in ``table/_delta_log`` (``None`` before the first commit)."""
    log = table / "_delta_log"
    versions = [int(p.stem) for p in log.glob("*.json") if p.stem.isdigit()] if log.is_dir() else []
    return max(versions, default=None)


def data_files(table: Path) -> set[Path]:
    """Every Parquet file under ``table``, committed or not."""
    return set(table.rglob("*.parquet")) - set((table / "_delta_log").rglob("*.parquet"))


def flights_command(warehouse: Path, landing: Path) -> list[str]:
    """``python -m etl run flights`` on ``warehouse`` and ``landing`` with the tests' local
    settings."""
    return [
        sys.executable, "-m", "etl", "run", "flights",
        "--set", f"paths.warehouse={warehouse}", "--set", f"paths.landing={landing}",
        "--set", "spark.master=local[2]", "--set", "spark.driver_memory=1g",
        "--set", "spark.shuffle_partitions=2", "--set", f"spark.jars_dir={ROOT / '.jars'}",
        "--set", "spark.conf.spark.databricks.delta.snapshotPartitions=2",
    ]


def start_run(warehouse: Path, landing: Path, *, fault: str | None = None,
              extra: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    """`flights_command` in a new process group (its JVM too); ``fault`` sets ``$ETL_FAULT``
    (see `etl.faults`)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SPARK_VERSION": "3.5"}
    env.pop("ETL_FAULT", None)
    if fault:
        env["ETL_FAULT"] = fault
    return subprocess.Popen([*flights_command(warehouse, landing), *extra], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def finish(process: subprocess.Popen[str], timeout: float = 600) -> tuple[int, str]:
    """Wait for ``process``; its exit code (negative: the signal) and its output. A driver that
    killed itself leaves its JVM to notice; the rest of its group is killed too."""
    output, _ = process.communicate(timeout=timeout)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return process.returncode, output


@dataclass(frozen=True)
class Kill:
    """Where a kill between a table's data files and its commit landed."""

    version_before: int | None
    version_after: int | None
    new_files: int

    @property
    def in_window(self) -> bool:
        """Data files were written and the commit was not: the moment the scenario needs."""
        return self.new_files > 0 and self.version_after == self.version_before


def kill_before_commit(process: subprocess.Popen[str], table: Path, *, delay: float = 0.0,
                       timeout: float = 600) -> Kill | None:
    """SIGKILL ``process``'s group ``delay`` seconds after a new data file appears in ``table``
    while its Delta log has no new version; ``None`` if the process ended first."""
    before_files, before_version = data_files(table), committed_version(table)
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        fresh = data_files(table) - before_files
        if fresh and committed_version(table) == before_version:
            if delay:
                time.sleep(delay)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return Kill(before_version, committed_version(table),
                        len(data_files(table) - before_files))
        time.sleep(0.005)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return None
