"""notebooks/flights.ipynb executed headless (nbclient, an ipykernel of this Python, its own
SparkSession in the kernel's process) on two landed days of January, then the HTML run report of
the runs it made, written by ``etl report`` and rendered in headless Chromium.

One notebook execution feeds every test of the module, so the job runs twice in all (the
notebook's incremental run and its backfill of 2013-01-02)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import land_flights

from tests.browser import chromium_binary, render_page

pytestmark = pytest.mark.e2e
NOTEBOOK = ROOT / "notebooks" / "flights.ipynb"

#: What the notebook prints, on the real data of 2013-01-01 and 2013-01-02 (842 + 943 flights).
EXPECTED_OUTPUT = """\
job: flights | sources: airlines, airports, flights, planes, weather
run incremental: read 1785 loaded 1785 quarantined 0 filtered 0
step extract: rows in None out 5
step transform: rows in 1785 out 1785
step audit: rows in 1785 out 1785
step publish: rows in None out 1785
gold 2013-01-01: flights 842 cancelled 4
gold 2013-01-02: flights 943 cancelled 8
landed airlines rows: 16
silver flights rows: 1785
check arrived_with_delay: failing rows 11
check departed: failing rows 12
check dest_in_airports: failing rows 52
check tailnum_in_planes: failing rows 292
check weather_for_flight_hour: failing rows 39
rules passed: 10 of 15
preview 2013-01-02 rows: 943
run backfill: read 943 loaded 943 quarantined 0
"""


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
    notebook, _ = executed
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert errors == []
    assert printed(notebook) == EXPECTED_OUTPUT


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


def test_report_holds_both_runs_their_numbers_and_the_lineage(report_file):
    page = report_file.read_text()
    runs = re.findall(r'<section class="run" id="run-([a-z0-9-]+)">', page)
    assert len(runs) == 2
    # newest first: the backfill of one day, then the incremental run of both days
    assert re.findall(r'data-metric="read"><b>([0-9,]+)</b>', page) == ["943", "1,785"]
    assert re.findall(r'data-metric="quarantined"><b>([0-9,]+)</b>', page) == ["0", "0"]
    assert page.count('class="node job"') == 2
    assert 'data-label="silver/flights"' in page and 'data-label="landing/flights"' in page
    assert "<li>silver/flights: created</li>" in page
    assert "http://" not in page and "https://" not in page


def test_report_renders_in_headless_chromium(report_file, tmp_path):
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
    assert seen.values["charts"] == 30  # 15 rule constraints in each of the two runs
    # failed points: the first run's 5 failed rules (1 point each); in the backfill's section
    # 4 rules failed in both runs (2 points each) and weather_for_flight_hour only in the first
    assert seen.values["anomalies"] == 5 + 4 * 2 + 1
    # 5 landing folders + the job + 7 tables written, then 5 + 1 + silver and gold
    assert seen.values["lineage_nodes"] == 13 + 8
    assert seen.values["filter"] == 4  # the backfill's (shown first) 4 failed rules
    assert "943\nrows read" in seen.text and "1,785\nrows read" in seen.text
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
