"""The HTML run report's rendering (`etl.report.render`): pure, no Spark."""

from __future__ import annotations

import datetime as dt
import re

from etl.lineage import Graph
from etl.report import RunReport, lineage_svg, render, sparkline

RUN_ID = "20260101T000000Z-abc"
GRAPH = Graph(
    edges=frozenset({("file:/l/flights", "job:etl/flights"), ("job:etl/flights", "file:/w/silver/flights")}),
    labels={"file:/l/flights": "landing/flights", "job:etl/flights": "job flights",
            "file:/w/silver/flights": "silver/flights"},
    names={"file:/l/flights": "/l/flights", "file:/w/silver/flights": "/w/silver/flights"},
)


def report(**run: object) -> RunReport:
    base = {
        "run_id": RUN_ID, "job": "flights", "env": "local", "mode": "backfill", "status": "succeeded",
        "date_from": dt.date(2013, 1, 2), "date_to": dt.date(2013, 1, 2),
        "started_at": dt.datetime(2026, 1, 1), "duration_s": 12.5, "rows_read": 1843,
        "rows_loaded": 1800, "rows_quarantined": 43, "rows_filtered": 0, "rows_written": 1900,
        "writes": [{"table": "silver/flights", "operation": "MERGE", "version": 3,
                    "rows_inserted": 1800, "rows_updated": 0, "rows_deleted": 0}],
        "schema_changes": ["silver/flights: +wind_gust double"], "notes": ["a <b>note</b>"],
        **run,
    }
    quality = [
        {"table": "silver/flights", "rule": "departed", "severity": "warn", "passed": False,
         "value": 0.98, "rows_failed": 37, "constraint": "Completeness(dep_time)", "message": ""},
        {"table": "silver/flights", "rule": "key<script>", "severity": "error", "passed": True,
         "value": 1.0, "rows_failed": 0, "constraint": "Uniqueness", "message": "m"},
    ]
    history = {("silver/flights", "departed", "Completeness(dep_time)"):
               [("r0", "t0", 0.99, True), (RUN_ID, "t1", 0.98, False)]}
    steps = [{"step": "extract", "status": "succeeded", "rows_read": None, "rows_written": 5,
              "duration_s": 1.0, "step_index": 0},
             {"step": "transform", "status": "succeeded", "rows_read": 1843, "rows_written": 1843,
              "duration_s": 4.0, "step_index": 1}]
    return RunReport(run=base, steps=steps, quality=quality, history=history, lineage=GRAPH)


def test_render_shows_the_numbers_links_and_escapes_everything():
    shown = report()
    run, (departed, _) = shown.run, shown.quality
    page = render([shown], generated_at=dt.datetime(2026, 1, 1, 5))
    for metric in ("read", "loaded", "quarantined", "filtered", "written"):
        assert (f'<div class="tile" data-metric="{metric}"><b>{run[f"rows_{metric}"]:,}</b>rows '
                f"{metric}</div>") in page
    assert 'id="run-20260101t000000z-abc-step-transform"' in page
    assert f'<td class="n">{departed["rows_failed"]}</td>' in page
    passed = sum(1 for q in shown.quality if q["passed"])
    assert f"Quality ({passed} passed, {len(shown.quality) - passed} failed)" in page
    assert "key&lt;script&gt;" in page and "key<script>" not in page
    assert "a &lt;b&gt;note&lt;/b&gt;" in page
    assert "<li>silver/flights: +wind_gust double</li>" in page
    # the lineage node of the table written links to its row of the writes table
    assert '<a href="#run-20260101t000000z-abc-write-silver-flights">' in page
    assert 'id="run-20260101t000000z-abc-write-silver-flights"' in page
    # self-contained: nothing loaded from anywhere
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "generated 2026-01-01 05:00:00 UTC" in page


def test_sparkline_marks_failed_results_and_rings_the_current_run():
    svg = sparkline([("r0", "t0", 1.0, True), ("r1", "t1", 3.0, False), ("r2", "t2", None, True)], "r1")
    assert svg.count('class="ok"') == 1
    assert svg.count('class="anomaly"') == 1
    assert '<circle cx="182.0" cy="8.0" r="6" fill="none" stroke="#1d2330"/>' in svg
    assert "<title>r1 t1: 3 (failed)</title>" in svg
    assert sparkline([("r0", "t0", None, True)], "r0") == '<span class="muted">no values</span>'


def test_lineage_svg_places_sources_left_of_targets():
    svg = lineage_svg(GRAPH, {})
    positions = {label: int(x) for x, label in re.findall(r'<rect x="(\d+)"[^>]*/><text[^>]*>([^<]+)<', svg)}
    assert positions == {"landing/flights": 10, "job flights": 270, "silver/flights": 530}
    assert svg.count('class="edge"') == 2
    assert svg.count('<g class="node job"') == 1


def test_report_command_checks_its_arguments_before_spark(capsys):
    from etl.cli import main

    assert main(["report", "--run", "r1", "--last", "2"]) == 2
    assert main(["report", "--job", "flights", "--last", "0"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "etl: error: --last goes with --job, not --run",
        "etl: error: --last must be at least 1, got 0",
    ]


def test_script_tags_from_the_records_are_escaped_everywhere():
    """Every field a record can carry is escaped: a ``<script>`` in any of them stays text."""
    evil = "<script>alert(1)</script>"
    base = report(run_id=f"r{evil}", job=f"j{evil}", mode=f"m{evil}", env=f"e{evil}",
                  status=f"s{evil}", error_class=f"E{evil}", error_message=f"msg{evil}",
                  notes=[f"n{evil}"], schema_changes=[f"c{evil}"], spark_app_id=f"a{evil}",
                  git_commit=f"g{evil}",
                  writes=[{"table": f"t{evil}", "operation": f"o{evil}", "version": 1,
                           "rows_inserted": 1, "rows_updated": 0, "rows_deleted": 0}])
    evil_steps = [{"step": f"st{evil}", "status": f"ok{evil}", "rows_read": 1, "rows_written": 1,
                   "duration_s": 1.0, "step_index": 0}]
    evil_quality = [{**q, "rule": f"r{evil}", "table": f"t{evil}", "severity": f"v{evil}",
                     "constraint": f"c{evil}"} for q in base.quality]
    graph = Graph(edges=frozenset({("file:/l/x", "job:etl/x")}),
                  labels={"file:/l/x": f"l{evil}", "job:etl/x": f"job{evil}"},
                  names={"file:/l/x": "/l/x"})
    page = render([RunReport(run=base.run, steps=evil_steps, quality=evil_quality,
                             history={}, lineage=graph)], generated_at=dt.datetime(2026, 1, 1))
    # the only script element is the report's own filter script
    assert page.count("<script") == 1 and page.count("</script>") == 1
    assert re.search(r"<script>\s*document\.querySelectorAll\('input\.only-failed'\)", page)
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    # each field shows up escaped (the run id and job in the index, the nav and the section too)
    for field in ("r", "j", "m", "e", "s", "E", "msg", "n", "c", "a", "g", "t", "o", "st", "ok",
                  "v", "l", "job"):
        assert f"{field}{escaped}" in page, field
