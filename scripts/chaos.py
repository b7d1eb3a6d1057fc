"""``make chaos``: the long fault-injection runs. Real ``etl run flights`` processes are killed
with SIGKILL over several rounds, each round landing a new month; every killed run is followed by
a clean one; at the end silver must hold exactly one copy of every landed flight.

Usage: python scripts/chaos.py [--rounds 3] [--days 1,2,3] [--seed 7] [--workdir DIR]

Scenarios (each with its own warehouse and landing folder):

* ``kill-before-commit``: killed after silver's new data files appear, before its Delta commit;
* ``kill-after-publish``: killed after silver and gold committed, before the ledger and the run
  record (``ETL_FAULT=after_publish``);
* ``kill-at-random``: killed at a random moment of the run (0 to 1.2x the last clean run's time).

Prints one line per scenario (runs, faults injected, rows expected, rows found, duplicates,
losses) and the totals; exits 1 when a row was lost or duplicated or a clean run failed.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import land_flights  # noqa: E402

from tests.reliability.harness import (  # noqa: E402
    KILLED,
    finish,
    kill_before_commit,
    start_run,
)

SCENARIOS = ("kill-before-commit", "kill-after-publish", "kill-at-random")


@dataclass
class Tally:
    scenario: str
    runs: int = 0
    faults: int = 0
    expected: int = 0
    found: int = 0
    duplicates: int = 0
    losses: int = 0
    failed_clean_runs: int = 0


def inject(scenario: str, warehouse: Path, landing: Path, rng: random.Random,
           clean_seconds: float) -> bool:
    """One faulted run; whether the fault hit (the process died of SIGKILL)."""
    if scenario == "kill-before-commit":
        kill = kill_before_commit(start_run(warehouse, landing), warehouse / "silver" / "flights",
                                  delay=rng.uniform(0, 0.5))
        return kill is not None
    if scenario == "kill-after-publish":
        code, _ = finish(start_run(warehouse, landing, fault="after_publish"))
        return code == KILLED
    process = start_run(warehouse, landing)
    deadline = time.monotonic() + rng.uniform(0, 1.2 * clean_seconds)
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if process.poll() is not None:
        return False
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return True


def landed_keys(landing: Path) -> set[tuple[str, int, str]]:
    keys = set()
    for path in sorted((landing / "flights").glob("*.csv")):
        with path.open() as f:
            keys.update((r["carrier"], int(r["flight"]), r["time_hour"]) for r in csv.DictReader(f))
    return keys


def play(scenario: str, root: Path, rounds: int, days: list[int], rng: random.Random) -> Tally:
    tally = Tally(scenario)
    warehouse, landing = root / scenario / "warehouse", root / scenario / "landing"
    land_flights.land(landing, [1], days)
    started = time.monotonic()
    code, output = finish(start_run(warehouse, landing))
    clean_seconds = time.monotonic() - started
    tally.runs += 1
    tally.failed_clean_runs += code != 0
    for month in range(2, rounds + 2):
        land_flights.land(landing, list(range(1, month + 1)), days)
        tally.faults += inject(scenario, warehouse, landing, rng, clean_seconds)
        code, output = finish(start_run(warehouse, landing))
        tally.runs += 2
        if code != 0:
            tally.failed_clean_runs += 1
            print(output[-3000:], file=sys.stderr)
        print(f"  {scenario}: round {month - 1}/{rounds} done", file=sys.stderr, flush=True)
    tally.expected = len(landed_keys(landing))
    return tally


def check(tallies: list[Tally], root: Path) -> None:
    """Count silver's rows and keys against what was landed (one small Spark session)."""
    from pyspark.sql import functions as F

    from etl.config import SparkSettings
    from etl.session import get_spark

    spark = get_spark(SparkSettings(app_name="chaos-check", master="local[2]", shuffle_partitions=2,
                                    driver_memory="1g", jars_dir=str(ROOT / ".jars")))
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    try:
        for tally in tallies:
            silver = spark.read.format("delta").load(
                str(root / tally.scenario / "warehouse" / "silver" / "flights"))
            keys = silver.select("carrier", "flight",
                                 F.date_format("time_hour", "yyyy-MM-dd'T'HH:mm:ss'Z'"))
            found = {(c, f, t) for c, f, t in keys.collect()}
            tally.found = silver.count()
            tally.duplicates = tally.found - len(found)
            tally.losses = len(landed_keys(root / tally.scenario / "landing") - found)
    finally:
        spark.stop()


def print_table(tallies: list[Tally]) -> None:
    header = ("scenario", "runs", "faults injected", "rows expected", "rows found", "duplicates",
              "losses")
    total = Tally("total", *(sum(getattr(t, f) for t in tallies) for f in (
        "runs", "faults", "expected", "found", "duplicates", "losses", "failed_clean_runs")))
    rows = [(t.scenario, t.runs, t.faults, t.expected, t.found, t.duplicates, t.losses)
            for t in [*tallies, total]]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["| " + " | ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)) + " |"
             for row in [header, *rows]]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="faulted runs per scenario")
    parser.add_argument("--days", default="1,2,3", help="days of each month to land")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", help="keep the warehouses here (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.rounds > 11:
        parser.error(f"--rounds must be 1-11 (one new month per round), got {args.rounds}")
    days = [int(d) for d in args.days.split(",")]
    rng = random.Random(args.seed)
    root = Path(args.workdir or tempfile.mkdtemp(prefix="etl-chaos-"))
    tallies = [play(s, root, args.rounds, days, rng) for s in SCENARIOS]
    check(tallies, root)
    print_table(tallies)
    bad = sum(t.duplicates + t.losses + t.failed_clean_runs for t in tallies)
    print(f"total: {sum(t.faults for t in tallies)} faults injected in "
          f"{sum(t.runs for t in tallies)} runs; {sum(t.duplicates for t in tallies)} rows "
          f"duplicated, {sum(t.losses for t in tallies)} lost, "
          f"{sum(t.failed_clean_runs for t in tallies)} clean runs failed")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
