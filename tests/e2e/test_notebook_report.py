"""notebooks/flights.ipynb executed headless (nbclient, an ipykernel of this Python, its own
SparkSession in the kernel's process) on two landed days of January, then the HTML run report of
the runs it made, written by ``etl report`` and rendered in headless Chromium.

One notebook execution feeds every test of the module, so the job runs twice in all (the
notebook's incremental run and its backfill of 2013-01-02)."""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
from pathlib import Path

import pytest

from etl.config import load_job_config
from tests.flights_expected import Expected

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import land_flights

from tests.browser import chromium_binary, render_page

pytestmark = pytest.mark.e2e
NOTEBOOK = ROOT / "notebooks" / "flights.ipynb"

JANUARY_2 = dt.date(2013, 1, 2)


def expected_output(landing: Path) -> str:
    """What the notebook must print, computed from the landed files (`tests.flights_expected`):
    its incremental run reads both landed days, its backfill 2013-01-02 alone."""
    both, day2 = Expected.landed(landing), Expected.landed(landing, [JANUARY_2])
    config = load_job_config("flights", directory=ROOT / "conf")
    read, quarantined = len(both.flights), both.quarantined()
    filtered = read - quarantined - both.keys()  # older versions of a key
    loaded = read - quarantined - filtered
    failed = both.failed()
    lines = [
        f"job: flights | sources: {', '.join(sorted(config.sources))}",
        f"run incremental: read {read} loaded {loaded} quarantined {quarantined} "
        f"filtered {filtered}",
        f"step extract: rows in None out {len(config.sources)}",
        f"step transform: rows in {read} out {read}",
        f"step audit: rows in {read} out {read - quarantined}",
        f"step publish: rows in None out {loaded}",
        *(f"gold {day}: flights {n} cancelled {both.cancelled_per_day()[day]}"
          for day, n in both.per_day().items()),
        f"landed airlines rows: {len(both.references['airlines'])}",
        f"silver flights rows: {both.keys()}",
        *(f"check {rule}: failing rows {n}" for rule, n in sorted(failed.items())),
        f"rules passed: {len(both.constraints()) - len(failed)} of {len(both.constraints())}",
        f"preview {JANUARY_2} rows: {len(day2.flights)}",
        f"run backfill: read {len(day2.flights)} loaded {day2.keys()} "
        f"quarantined {day2.quarantined()}",
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The executed notebook and its warehouse."""
    import nbformat
    from nbclient import NotebookClient

    root = tmp_path_factory.mktemp("notebook")
    land_flights.land(root / "landing", [1], [1, 2])
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}})
    with pytest.MonkeyPatch.context() as env:  # the kernel inherits this environment
        env.setenv("ETL_WAREHOUSE", str(root / "warehouse"))
        env.setenv("ETL_LANDING", str(root / "landing"))
        env.setenv("ETL_JARS_DIR", str(ROOT / ".jars"))
        env.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        client.execute()
    return notebook, root / "warehouse"


def printed(notebook) -> str:
    """Everything the cells printed on stdout, in order."""
    return "".join(
        output["text"] for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream" and output.get("name") == "stdout"
    )


def test_notebook_runs_headless_and_prints_the_flights_numbers(executed):
    notebook, warehouse = executed
    landing = warehouse.parent / "landing"
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert errors == []
    assert printed(notebook) == expected_output(landing)


@pytest.fixture(scope="module")
def report_file(executed, tmp_path_factory, spark):
    from etl.cli import main

    _, warehouse = executed
    out = tmp_path_factory.mktemp("report") / "flights.html"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ETL_WAREHOUSE", str(warehouse))
        env.setenv("ETL_LANDING", str(warehouse.parent / "landing"))
        assert main(["--conf-dir", str(ROOT / "conf"), "report", "--job", "flights", "--last",
                     "2", "--out", str(out)]) == 0
    return out


def test_report_holds_both_runs_their_numbers_and_the_lineage(report_file, executed):
    page = report_file.read_text()
    landing = executed[1].parent / "landing"
    runs = re.findall(r'<section class="run" id="run-([a-z0-9-]+)">', page)
    assert len(runs) == 2
    both, day2 = Expected.landed(landing), Expected.landed(landing, [JANUARY_2])
    # newest first: the backfill of one day, then the incremental run of both days
    assert re.findall(r'data-metric="read"><b>([0-9,]+)</b>', page) == [
        f"{len(day2.flights):,}", f"{len(both.flights):,}"]
    assert re.findall(r'data-metric="quarantined"><b>([0-9,]+)</b>', page) == [
        f"{day2.quarantined():,}", f"{both.quarantined():,}"]
    assert page.count('class="node job"') == 2
    assert 'data-label="silver/flights"' in page and 'data-label="landing/flights"' in page
    assert "<li>silver/flights: created</li>" in page
    assert "http://" not in page and "https://" not in page


def test_report_renders_in_headless_chromium(report_file, executed, spark, tmp_path):
    from etl.runlog import RUN, read_runs

    warehouse = executed[1]
    landing = warehouse.parent / "landing"
    both, day2 = Expected.landed(landing), Expected.landed(landing, [JANUARY_2])
    config = load_job_config("flights", directory=ROOT / "conf")
    # tables each run wrote, as its run record says: the incremental run every target, the
    # backfill of a date the keyed ones (silver and gold; bronze keeps what was landed)
    written = sorted(len(r.writes) for r in read_runs(
        spark, str(warehouse / "_etl" / "runs"), "flights", record_type=RUN).collect())
    assert written == [len([t for t in config.targets.values() if t.keys]), len(config.targets)]
    assert chromium_binary() is not None, "chromium not installed: run scripts/install_chromium.sh (make test does)"
    seen = render_page(report_file, {
        "ready": "document.body.dataset.ready",
        "charts": "document.querySelectorAll('svg.spark').length",
        "anomalies": "document.querySelectorAll('svg.spark circle.anomaly').length",
        "lineage_nodes": "document.querySelectorAll('svg.lineage g.node').length",
        "filter": "(function(){var b=document.querySelector('input.only-failed');b.click();"
                  "return document.getElementById(b.dataset.table)"
                  ".querySelectorAll('tbody tr:not(.hidden)').length;})()",
    })
    shot = tmp_path / "report.png"
    shot.write_bytes(seen.screenshot)
    assert seen.errors == []
    assert seen.values["ready"] == "true"
    # one chart per rule constraint in each of the two runs' sections
    assert seen.values["charts"] == 2 * len(both.constraints())
    # failed points: in the first run's section, one per rule failed on both days; in the
    # backfill's section, those again (its chart holds both runs) and the rules failed on day 2
    assert seen.values["anomalies"] == 2 * len(both.failed()) + len(day2.failed())
    # per run: a node per landing folder, the job, and a node per table written
    assert seen.values["lineage_nodes"] == sum(len(config.sources) + 1 + n for n in written)
    assert seen.values["filter"] == len(day2.failed())  # the backfill's (shown first)
    assert f"{len(day2.flights):,}\nrows read" in seen.text
    assert f"{len(both.flights):,}\nrows read" in seen.text
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
