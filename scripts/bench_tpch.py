"""TPC-H benchmark of the tpch job: B1..B6 ratios side by side, DuckDB for context.

Usage: python scripts/bench_tpch.py [--scales 0.1,1,3] [--full-at 1] [--repeats 3]
                                    [--big-repeats 2] [--quick] [--report docs/BENCHMARKS.md]
                                    [--budget-minutes 90]
       python scripts/bench_tpch.py --render docs/BENCHMARKS.json --report docs/BENCHMARKS.md

One SparkSession on ``local[2]`` serves every Spark case; a warm-up (a full load, a MERGE and
the hand-written script) comes first so JVM start-up and first-use compilation are not measured.
At the ``--full-at`` scale factor (SF 1 by default) every case runs ``--repeats`` times, the
order rotating and reversing between repetitions, each on a fresh warehouse: the job (lineage
off), the job without checks (B2), the job with the OpenLineage file transport and Spark
listener (B6), the same work written by hand (B1, scripts/tpch_by_hand.py), a plain CSV ->
Parquet copy (B4) and DuckDB (context). At every other scale the job's full load is measured
(``--repeats`` times below that scale, ``--big-repeats`` above it). At every scale the job's
incremental runs merging a change set (with and without partition pruning; B3) are measured;
B5 compares the two largest scales. Peak resident
memory of the JVM (driver and executor are one process on local[2]) and of the Python process
is sampled from the OS during each case. Medians, ratios, targets and pass/fail are printed and,
with ``--report``, written as Markdown (plus the raw figures as JSON next to it), so the report
is regenerated from the script's output (``--render`` rebuilds it from that JSON).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

#: (id, what, numerator case, denominator case, target (None: context only), "<=" or ">=")
RATIOS = (
    ("B1", "overhead: job / hand-written PySpark", "job", "hand", 1.05, "<="),
    ("B2", "quality cost: job with checks / without", "job", "nochecks", 1.3, "<="),
    ("B3", "incremental: 1 % MERGE run / full rebuild run", "merge", "job", 0.25, "<="),
    ("B3n", "incremental, no pruning: MERGE run without the months / full rebuild",
     "merge_noprune", "job", 0.25, "<="),
    ("B3p", "MERGE with pruning / without pruning (context)", "merge", "merge_noprune", None, ""),
    ("B4", "engine limit: job throughput / CSV->Parquet copy throughput", "copy", "job", 0.5,
     ">="),
    ("B6", "lineage: job with OpenLineage file + listener / without", "lineage", "job", 1.05,
     "<="),
)
CONTEXT = (("DuckDB", "duckdb / job (same transform, context only)", "duckdb", "job"),)
CHANGE_SHARE = 0.01
SPARK_CASES = ("job", "nochecks", "lineage", "hand", "copy")


@dataclass
class Case:
    scale: float
    name: str
    times: list[float] = field(default_factory=list)
    rows: int = 0
    peak_jvm_mb: float = 0.0
    peak_python_mb: float = 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")


class PeakMemory:
    """Samples the resident memory of this process and its children every 0.2 s while the block
    runs: the JVM's RSS, and the Python driver's RSS plus the proportional share (PSS) of the
    PySpark workers it forked (their pages are mostly shared, so RSS would count them many
    times)."""

    def __init__(self) -> None:
        import psutil

        self.process = psutil.Process()
        self.jvm = self.python = 0.0
        self._stop = threading.Event()

    def _sample(self) -> None:
        import psutil

        while not self._stop.is_set():
            jvm = python = 0
            try:
                python = self.process.memory_info().rss
                for child in self.process.children(recursive=True):
                    try:
                        name = child.name()
                        if name == "java":
                            jvm += child.memory_info().rss
                        elif name.startswith("python"):
                            # forked PySpark workers share pages: count their share (PSS)
                            python += child.memory_full_info().pss
                    except psutil.Error:  # other helpers (shells the JVM forks) are left out
                        continue
            except psutil.Error:
                pass
            self.jvm = max(self.jvm, jvm / 2**20)
            self.python = max(self.python, python / 2**20)
            self._stop.wait(0.2)

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, work: Path, spark_memory: str) -> None:
        from etl import logs

        logs.configure("console", "WARNING")
        self.work = work
        self.spark_memory = spark_memory
        self.spark = None
        self.cases: dict[tuple[float, str], Case] = {}
        self.errors: list[str] = []
        #: called after every measurement (the plan saves the figures so far)
        self.on_measured: Callable[[], None] = lambda: None

    def config(self, landing: Path, warehouse: Path, *overrides: str):  # type: ignore[no-untyped-def]
        from etl.config import load_job_config

        return load_job_config("tpch", directory=ROOT / "conf", overrides=[
            f"paths.warehouse={warehouse}", f"paths.landing={landing}",
            "spark.master=local[2]", f"spark.driver_memory={self.spark_memory}",
            "logging.level=WARNING", *overrides])

    def session(self, landing: Path):  # type: ignore[no-untyped-def]
        from etl.session import get_spark

        if self.spark is None:
            self.spark = get_spark(self.config(landing, self.work / "unused").spark)
        return self.spark

    def job(self, landing: Path, warehouse: Path, *overrides: str) -> int:
        from etl.runner import run_job

        config = self.config(landing, warehouse, *overrides)
        ctx = run_job(config, spark=self.session(landing))
        return ctx.rows_read

    def hand(self, landing: Path, warehouse: Path) -> int:
        import tpch_by_hand

        return tpch_by_hand.run(self.session(landing), str(landing), str(warehouse))

    def copy(self, landing: Path, warehouse: Path) -> int:
        spark = self.session(landing)
        for table in ("lineitem", "orders", "customer", "nation"):
            (spark.read.option("header", "true").csv(str(landing / "tpch" / table / "*.csv"))
             .write.mode("overwrite").parquet(str(warehouse / "copy" / table)))
        return 0

    def duckdb(self, landing: Path, warehouse: Path) -> int:
        return duckdb_transform(landing, warehouse)

    def measure(self, scale: float, name: str, action: Callable[[], int]) -> float | None:
        """Time ``action`` and sample its peak memory; a failing case is reported (``errors``)
        and the benchmark goes on without that measurement."""
        case = self.cases.setdefault((scale, name), Case(scale, name))
        with PeakMemory() as peak:
            began = time.perf_counter()
            try:
                rows = action()
            except Exception as exc:  # reported in the results; the benchmark goes on
                message = f"SF {scale:g} {name}: {type(exc).__name__}: {str(exc)[:300]}"
                print(f"  FAILED {message}", flush=True)
                self.errors.append(message)
                return None
            elapsed = time.perf_counter() - began
        case.times.append(elapsed)
        case.rows = rows or case.rows
        case.peak_jvm_mb = max(case.peak_jvm_mb, peak.jvm)
        case.peak_python_mb = max(case.peak_python_mb, peak.python)
        print(f"  SF {scale:g} {name:>13}: {elapsed:7.1f}s  (JVM {peak.jvm:,.0f} MB, "
              f"Python {peak.python:,.0f} MB)", flush=True)
        self.on_measured()
        return elapsed


def duckdb_transform(landing: Path, warehouse: Path) -> int:
    """The same typing, de-duplication, enrichment and gold aggregation in DuckDB (2 threads),
    silver and gold written as Parquet (DuckDB writes no Delta); no checks, no bronze copy."""
    import duckdb

    out = warehouse / "duckdb"
    out.mkdir(parents=True, exist_ok=True)
    src = landing / "tpch"
    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute(f"""
        CREATE TEMP TABLE silver AS
        WITH lines AS (
          SELECT * EXCLUDE (l_comment, filename), filename AS _source_file,
                 date_trunc('month', l_shipdate)::DATE AS ship_month
          FROM read_csv('{src}/lineitem/*.csv', header = true, filename = true)
          QUALIFY row_number() OVER (PARTITION BY l_orderkey, l_linenumber
                                     ORDER BY filename DESC) = 1),
        buyers AS (
          SELECT c_custkey, c_name, c_mktsegment, c_nationkey, n_name
          FROM read_csv('{src}/customer/*.csv', header = true) c
          LEFT JOIN read_csv('{src}/nation/*.csv', header = true) n ON c_nationkey = n_nationkey)
        SELECT l.*, o_custkey, o_orderstatus, o_orderdate, o_orderpriority,
               c_name, c_mktsegment, c_nationkey, n_name,
               CAST(l_extendedprice * (1 - l_discount) AS DECIMAL(18, 4)) AS revenue
        FROM lines l
        LEFT JOIN read_csv('{src}/orders/*.csv', header = true) o ON l_orderkey = o_orderkey
        LEFT JOIN buyers b ON o_custkey = c_custkey""")
    con.execute(f"COPY silver TO '{out}/order_lines' (FORMAT parquet, PARTITION_BY (ship_month),"
                " OVERWRITE_OR_IGNORE true)")
    con.execute(f"""COPY (SELECT ship_month, n_name AS nation, count(DISTINCT l_orderkey) AS orders,
                         count(*) AS lines, sum(l_quantity) AS quantity, sum(revenue) AS revenue
                  FROM silver GROUP BY ALL) TO '{out}/revenue.parquet' (FORMAT parquet)""")
    rows = con.execute("SELECT count(*) FROM silver").fetchone()[0]
    con.close()
    return int(rows)


def land_change(landing: Path, rows: int, stamp: str) -> Path:
    """Write a change set of ``rows`` lines into the lineitem landing folder: half updates (new
    quantity and price of existing lines) and half inserts (new line numbers of existing
    orders), from three ship months spread over the data. Made with DuckDB from the landed
    CSVs; returns the file."""
    import duckdb

    src = landing / "tpch" / "lineitem"
    target = src / f"change-{stamp}.csv"
    half = max(rows // 2, 1)
    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute(f"""
        COPY (
          WITH picked AS (
            SELECT * FROM read_csv('{src}/lineitem.*.csv', header = true, all_varchar = true)
            WHERE substr(l_shipdate, 1, 7) IN ('1993-03', '1995-06', '1997-09')
            ORDER BY l_orderkey::BIGINT, l_linenumber::INT LIMIT {half})
          SELECT l_orderkey, l_partkey, l_suppkey, l_linenumber,
                 (l_quantity::INT % 50 + 1)::VARCHAR AS l_quantity, l_extendedprice, l_discount,
                 l_tax, l_returnflag, l_linestatus, l_shipdate, l_commitdate, l_receiptdate,
                 l_shipinstruct, l_shipmode, 'bench update' AS l_comment
          FROM picked
          UNION ALL
          SELECT l_orderkey, l_partkey, l_suppkey, (l_linenumber::INT + 10)::VARCHAR,
                 l_quantity, l_extendedprice, l_discount, l_tax, l_returnflag, l_linestatus,
                 l_shipdate, l_commitdate, l_receiptdate, l_shipinstruct, l_shipmode,
                 'bench insert'
          FROM picked
        ) TO '{target}' (HEADER true)""")
    con.close()
    return target


# --------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------


def rotated(items: list[str], rep: int) -> list[str]:
    """The order of repetition ``rep``: odd repetitions reverse the list, and every pair of
    repetitions shifts it by one, so each case moves through the positions (with two cases
    they simply alternate)."""
    shift = (rep // 2) % len(items)
    order = items[shift:] + items[:shift]
    return order if rep % 2 == 0 else list(reversed(order))


def lineitem_rows(scale: float) -> int:
    return round(6_000_000 * scale)


class Plan:
    """The measurements of one benchmark run, within a time budget."""

    def __init__(self, args: argparse.Namespace, results: dict) -> None:  # type: ignore[type-arg]
        self.args = args
        self.results = results
        self.work = Path(args.work or tempfile.mkdtemp(prefix="bench_tpch_"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.bench = Bench(self.work, args.driver_memory)
        self.bench.on_measured = self.save
        self.deadline = time.perf_counter() + args.budget_minutes * 60
        bench = self.bench
        self.variants: dict[str, Callable[[Path, Path], int]] = {
            "job": lambda landing, wh: bench.job(landing, wh, "lineage.enabled=false"),
            "nochecks": lambda landing, wh: bench.job(landing, wh, "lineage.enabled=false",
                                                      "quality.silver_order_lines=[]"),
            "lineage": lambda landing, wh: bench.job(landing, wh, "lineage.enabled=true",
                                                     "lineage.spark_listener=true"),
            "hand": bench.hand,
            "copy": bench.copy,
            "duckdb": bench.duckdb,
        }

    def over_budget(self, what: str, needs: float = 0.0) -> bool:
        """Record ``what`` as not measured when it would end after the time budget (it is
        expected to take ``needs`` seconds); True then."""
        if time.perf_counter() + needs <= self.deadline:
            return False
        self.results["skipped"].append(what)
        return True

    def repeat(self, scale: float, names: list[str], repeats: int, what: str,
               case: Callable[[str, Path], None]) -> None:
        """Run ``case(name, fresh warehouse)`` for every name, ``repeats`` times in rotating
        order; from the second repetition on, only while the budget lasts."""
        last = 0.0
        for rep in range(repeats):
            if rep > 0 and self.over_budget(
                    f"SF {scale:g}: repetitions {rep + 1}..{repeats} of the {what} (time budget)",
                    needs=last):
                return
            began = time.perf_counter()
            for name in rotated(names, rep):
                warehouse = self.work / f"sf{scale:g}" / f"wh-{name}-{rep}"
                case(name, warehouse)
                shutil.rmtree(warehouse, ignore_errors=True)
            last = time.perf_counter() - began

    def warm_up(self, landing: Path, change_rows: int) -> None:
        """Not measured: a full load of the job, then a MERGE of a change set into it (so the
        first measured MERGE does not pay the JVM's first use of Delta's MERGE code), and the
        hand-written script."""
        print("warm-up (not counted)", flush=True)
        warehouse = self.work / "warmup"
        self.bench.job(landing, warehouse, "lineage.enabled=false")
        change = land_change(landing, change_rows, "warmup")
        try:
            self.bench.job(landing, warehouse, "lineage.enabled=false")
        finally:
            change.unlink()
        self.bench.hand(landing, self.work / "warmup-hand")
        shutil.rmtree(warehouse, ignore_errors=True)
        shutil.rmtree(self.work / "warmup-hand", ignore_errors=True)

    def repeats_at(self, scale: float) -> int:
        return self.args.big_repeats if scale > self.args.full_at else self.args.repeats

    def needs(self, job_seconds: float, scale: float) -> float:
        """The seconds a scale's cases are expected to take, from the job's time there."""
        if scale == self.args.full_at:  # every case; the copy and DuckDB are short
            full = job_seconds * (len(self.variants) - 1.5)
        else:
            full = job_seconds
        return (full + 0.5 * job_seconds) * self.repeats_at(scale)  # + the two merges

    def scale(self, index: int, scale: float) -> None:
        import land_tpch

        bench, folder = self.bench, self.work / f"sf{scale:g}"
        print(f"SF {scale:g}: generating with tpchgen-cli", flush=True)
        landing = folder / "landing"
        land_tpch.land(landing, scale, parts=max(1, round(scale)))
        # B3 and B5: the same change-set size at every scale from SF 1 on (1 % of SF 1)
        change_rows = round(CHANGE_SHARE * lineitem_rows(min(scale, 1.0)))
        if index == 0:
            self.warm_up(landing, change_rows)
        repeats = self.repeats_at(scale)
        base = folder / "base"

        def full_load(name: str, warehouse: Path) -> None:
            done = bench.measure(
                scale, name, functools.partial(self.variants[name], landing, warehouse))
            if name == "job" and done is not None and not base.exists():
                warehouse.rename(base)  # the first full load is the base of the merges

        def merge(name: str, warehouse: Path) -> None:
            shutil.copytree(base, warehouse)
            extra = ("targets.silver_order_lines.prune_partitions=false",) if name == "merge_noprune" else ()
            bench.measure(scale, name, functools.partial(
                bench.job, landing, warehouse, "lineage.enabled=false", *extra))

        every_case = scale == self.args.full_at
        self.repeat(scale, list(self.variants) if every_case else ["job"], repeats,
                    "full loads", full_load)
        if base.exists():
            change = land_change(landing, change_rows, f"sf{scale:g}")
            self.repeat(scale, ["merge", "merge_noprune"], repeats, "merges", merge)
            change.unlink()
        else:
            self.results["skipped"].append(f"SF {scale:g}: merges (no full load succeeded)")
        self.results["change_rows"][f"{scale:g}"] = change_rows
        shutil.rmtree(folder, ignore_errors=True)

    def save(self) -> None:
        """Keep the figures so far in the results (and in the JSON next to the report), so a
        run that is stopped or fails late still leaves what it measured."""
        self.results["cases"] = [
            asdict(c) | {"median": c.median} for c in self.bench.cases.values() if c.times
        ]
        self.results["errors"] = self.bench.errors
        if self.args.report:
            json_path = self.args.report.with_suffix(".json")
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(self.results, indent=1) + "\n")

    def run(self) -> None:
        began = time.perf_counter()
        scales = self.args.scales
        for index, scale in enumerate(scales):
            self.scale(index, scale)
            self.results["elapsed_min"] = (time.perf_counter() - began) / 60
            self.save()
            remaining = ", ".join(f"{s:g}" for s in scales[index + 1:])
            job = self.bench.cases.get((scale, "job"))
            merge = self.bench.cases.get((scale, "merge"))
            following = scales[index + 1] if remaining else scale
            # the next scale's job time: its fixed cost per run (about a merge run's time) plus
            # this scale's rest, grown with the lines
            fixed = min(merge.median, job.median) if merge and job else 0.0
            needs = (self.needs(fixed + (job.median - fixed) * following / scale, following)
                     if remaining and job else 0.0)
            if remaining and self.over_budget(
                    f"scale factors {remaining} (they would not end within the time budget of "
                    f"{self.args.budget_minutes:g} min)", needs=needs):
                break
        self.results["elapsed_min"] = (time.perf_counter() - began) / 60
        self.save()
        shutil.rmtree(self.work, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Ratios and the report
# --------------------------------------------------------------------------------------------


MERGE_CASES = ("merge", "merge_noprune")


def same_repetition(a: dict, b: dict) -> list[float]:  # type: ignore[type-arg]
    """The ratio within each repetition (the two cases ran next to each other, under the same
    load), when both ran in the same loop (full loads, or merges) and every repetition of both
    succeeded; else nothing."""
    together = (a["name"] in MERGE_CASES) == (b["name"] in MERGE_CASES)
    if not together or len(a["times"]) != len(b["times"]):
        return []
    return [x / y for x, y in zip(a["times"], b["times"], strict=True)]


def ratios(results: dict) -> list[dict]:  # type: ignore[type-arg]
    """Every ratio the measured cases allow, with its target and verdict."""
    cases = {(c["scale"], c["name"]): c for c in results["cases"]}
    scales = sorted({c["scale"] for c in results["cases"]})
    first = results.get("full_at", results["scales"][0])
    out = []

    def add(rid: str, what: str, scale: str, value: float, target: float | None, op: str,
            detail: str, per_rep: list[float] | None = None) -> None:
        passed = None if target is None else (value <= target if op == "<=" else value >= target)
        out.append({"id": rid, "what": what, "scale": scale, "value": value, "target": target,
                    "op": op, "passed": passed, "detail": detail, "per_rep": per_rep or []})

    for rid, what, num, den, target, op in RATIOS:
        for scale in scales if rid.startswith("B3") else [first]:
            a, b = cases.get((scale, num)), cases.get((scale, den))
            if a and b:
                # B4: job throughput / copy throughput = copy time / job time (same rows)
                value = a["median"] / b["median"]
                add(rid, what, f"{scale:g}", value, target, op,
                    f"{num} {a['median']:.1f}s / {den} {b['median']:.1f}s", same_repetition(a, b))
    for name, what, num, den in CONTEXT:
        a, b = cases.get((first, num)), cases.get((first, den))
        if a and b:
            add(name, what, f"{first:g}", a["median"] / b["median"], None, "",
                f"{num} {a['median']:.1f}s / {den} {b['median']:.1f}s", same_repetition(a, b))
    if len(scales) >= 2:
        small, large = scales[-2], scales[-1]
        a, b = cases.get((large, "job")), cases.get((small, "job"))
        if a and b and a["rows"] and b["rows"]:
            per_row = (a["median"] / a["rows"]) / (b["median"] / b["rows"])
            add("B5", "scaling: job time per line", f"{large:g} / {small:g}", per_row, 1.1, "<=",
                f"{a['median']:.1f}s for {a['rows']:,} / {b['median']:.1f}s for {b['rows']:,}")
        a, b = cases.get((large, "merge")), cases.get((small, "merge"))
        rows = results["change_rows"]
        if a and b and rows.get(f"{large:g}") == rows.get(f"{small:g}"):
            add("B5m", "scaling: same-size MERGE run", f"{large:g} / {small:g}",
                a["median"] / b["median"], 1.5, "<=",
                f"{a['median']:.1f}s / {b['median']:.1f}s ({rows[f'{large:g}']:,} rows)")
        elif a and b:
            add("B5m", "scaling: 1 % MERGE run (change sets differ in size)",
                f"{large:g} / {small:g}", a["median"] / b["median"], None, "",
                f"{a['median']:.1f}s / {b['median']:.1f}s")
    return out


def mark(passed: bool | None) -> str:
    return "context" if passed is None else ("PASS" if passed else "FAIL")


def render(results: dict, notes: str) -> str:  # type: ignore[type-arg]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `scripts/bench_tpch.py` (`make bench`); do not edit by hand: edit the",
        "analysis in `docs/benchmarks_notes.md` and regenerate with",
        "`python scripts/bench_tpch.py --render docs/BENCHMARKS.json --report docs/BENCHMARKS.md`.",
        "",
        f"Run: {results['started']} UTC, {results.get('elapsed_min', 0):.1f} min, "
        f"command `{results['command']}`.",
        "",
        "## Machine and versions",
        "",
        *[f"- {k}: {v}" for k, v in results["machine"].items()],
        *[f"- {k} {v}" for k, v in results["versions"].items()],
        "",
        "## Ratios",
        "",
        "The ratio is that of the medians; \"per repetition\" gives the ratio of the two cases'",
        "runs in each repetition, where they ran next to each other under the same load.",
        "",
        "| id | what | SF | ratio | target | result | medians | per repetition |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in ratios(results):
        target = "" if r["target"] is None else f"{r['op']} {r['target']:g}"
        per_rep = ", ".join(f"{x:.2f}" for x in r.get("per_rep", []))
        lines.append(f"| {r['id']} | {r['what']} | {r['scale']} | {r['value']:.2f} | {target} "
                     f"| {mark(r['passed'])} | {r['detail']} | {per_rep} |")
    lines += [
        "",
        "## Cases",
        "",
        "Wall time of each run (s), the median, and the peak resident memory sampled from the OS",
        "during the case: the JVM (driver and executor: one process on `local[2]`) and Python",
        "(the driver's RSS plus the PSS of the PySpark workers; DuckDB runs in the driver). The JVM heap does not",
        "shrink between cases, so its peak is an upper bound for cases that follow a bigger one.",
        "",
        "| SF | case | runs (s) | median (s) | lines read | JVM peak (MB) | Python peak (MB) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in results["cases"]:
        runs = ", ".join(f"{t:.1f}" for t in c["times"])
        lines.append(f"| {c['scale']:g} | {c['name']} | {runs} | {c['median']:.1f} | "
                     f"{c['rows']:,} | {c['peak_jvm_mb']:,.0f} | {c['peak_python_mb']:,.0f} |")
    lines += ["", "## Not measured in this run", ""]
    missing = [*results["skipped"], *(f"failed: {e}" for e in results.get("errors", []))]
    measured = sorted({c["scale"] for c in results["cases"]})
    if len(measured) < 2:
        shown = ", ".join(f"{s:g}" for s in measured) or "none"
        missing.append(f"B5 (scaling): needs two scale factors; this run measured SF {shown} "
                       "(scale factors not asked for are not run)")
    lines += [f"- {s}" for s in missing] or ["- nothing"]
    if notes:
        lines += ["", notes.strip()]
    return "\n".join(lines) + "\n"


def machine() -> dict[str, str]:
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return {
        "CPU": f"{cpu}, {os.cpu_count()} cores", "memory": f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
        "OS": platform.platform(), "load average at start (1, 5, 15 min)": load,
    }


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"Python": platform.python_version()}
    for name in ("pyspark", "delta-spark", "pydeequ", "duckdb", "tpchgen-cli", "psutil"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
        out["Java"] = java.stderr.splitlines()[0] if java.stderr else "unknown"
    except OSError:
        out["Java"] = "not found"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="0.1,1,3", help="TPC-H scale factors (0.1,1,3)")
    parser.add_argument("--full-at", type=float,
                        help="the SF at which every case runs (default: 1 when measured, else "
                             "the first SF)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per case up to the --full-at SF (default 3)")
    parser.add_argument("--big-repeats", type=int, default=2,
                        help="runs per case above the --full-at SF (default 2)")
    parser.add_argument("--quick", action="store_true",
                        help="CI smoke: SF 0.01, one repetition, 10 minutes")
    parser.add_argument("--budget-minutes", type=float, default=90.0,
                        help="stop adding repetitions and scales after this (default 90)")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--work", help="scratch folder (default: a new temporary folder)")
    parser.add_argument("--report", type=Path, help="write the Markdown report here (+ .json)")
    parser.add_argument("--notes", type=Path, default=ROOT / "docs" / "benchmarks_notes.md",
                        help="analysis appended to the report")
    parser.add_argument("--render", type=Path, help="re-render the report from this JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    os.environ.setdefault("SPARK_VERSION", "3.5")
    notes = args.notes.read_text() if args.notes and args.notes.exists() else ""

    if args.render:
        results = json.loads(args.render.read_text())
    else:
        if args.quick:
            args.scales, args.repeats, args.big_repeats = "0.01", 1, 1
            args.budget_minutes = min(args.budget_minutes, 10.0)
        args.scales = [float(s) for s in args.scales.split(",")]
        if args.full_at is None:
            args.full_at = 1.0 if 1.0 in args.scales else args.scales[0]
        if args.full_at not in args.scales:
            parser.error(f"--full-at {args.full_at:g} is not one of --scales")
        results = {
            "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
            "command": " ".join(["python scripts/bench_tpch.py", *(argv or sys.argv[1:])]),
            "scales": args.scales, "full_at": args.full_at, "machine": machine(),
            "versions": versions(),
            "cases": [], "skipped": [], "errors": [], "change_rows": {},
        }
        Plan(args, results).run()
    table = ratios(results)
    print("\nratio                                                       SF        value  target")
    for r in table:
        target = "" if r["target"] is None else f"{r['op']} {r['target']:g}"
        print(f"{r['id']:>4} {r['what'][:55]:<55} {r['scale']:>9} {r['value']:6.2f}  "
              f"{target:<8} {mark(r['passed'])}")
    for s in [*results["skipped"], *results.get("errors", [])]:
        print(f"not measured: {s}")
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(render(results, notes))
        print(f"report written to {args.report}")
    missed = any(r["passed"] is False for r in table)
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
