"""The HTML run report (``etl report``): one self-contained file per report, viewable offline.

`collect` reads what the project recorded about one or more runs (Spark, small reads):

* the run record ``_etl/runs`` (`etl.runlog`): the run row (status, timings, rows read / loaded /
  quarantined / filtered, writes with Delta versions, quality results, schema changes, notes,
  error) and its step rows (timings, rows in / out);
* ``_etl/quality_metrics`` (`etl.quality.history`): every earlier result of the job's rules, so
  each rule gets a chart of its observed value over runs, failed results (anomalies) marked;
* the OpenLineage events under ``_etl/lineage/`` (`etl.lineage`): the run's graph of datasets.

`render` turns that into HTML with inline CSS, SVG charts and a little inline JavaScript (a
filter for failing rules); nothing refers to the network. Every value from the records is
escaped with `html.escape`. Sections link to each other: the run list to each run, a step to
the run's writes and quality results, a lineage node to the table's write, a rule to its chart.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from etl.context import Warehouse
from etl.errors import ConfigError
from etl.lineage import COMPLETE, Graph, build_graph, lineage_run_id, read_events

#: One point of a rule's history: (run id, checked at, value, passed).
Point = tuple[str, str, float | None, bool]
#: A rule's constraint: (table, rule, constraint); a rule on several columns has several.
RuleKey = tuple[str, str, str]


@dataclass(frozen=True)
class RunReport:
    """What the report shows about one run."""

    run: Mapping[str, Any]
    steps: Sequence[Mapping[str, Any]]
    quality: Sequence[Mapping[str, Any]]
    #: ``(table, rule, constraint)`` -> its results over the job's runs, oldest first.
    history: Mapping[RuleKey, Sequence[Point]] = field(default_factory=dict)
    lineage: Graph | None = None


def collect(
    spark: Any,
    warehouse: Warehouse,
    landing: str,
    *,
    run_id: str | None = None,
    job: str | None = None,
    last: int = 1,
) -> list[RunReport]:
    """The runs to report: ``run_id``, or the ``last`` runs of ``job`` (newest first)."""
    from pyspark.sql import functions as F

    from etl.runlog import RUN, STEP, read_runs
    from etl.tables import read_delta, table_exists

    if (run_id is None) == (job is None):
        raise ConfigError("give either a run id or a job")
    if last < 1:
        raise ConfigError(f"--last must be at least 1, got {last}")
    path = warehouse.records("runs")
    runs = read_runs(spark, path, job, record_type=RUN)
    if runs is None:
        raise ConfigError(f"no runs recorded under {path}")
    if run_id is not None:
        runs = runs.where(F.col("run_id") == run_id)
    rows = [r.asDict(recursive=True) for r in runs.limit(last).collect()]
    if not rows:
        wanted = f"run {run_id}" if run_id else f"runs of job {job}"
        raise ConfigError(f"no {wanted} recorded under {path}")
    ids = [r["run_id"] for r in rows]
    steps = read_runs(spark, path, record_type=STEP)
    step_rows = ([s.asDict() for s in steps.where(F.col("run_id").isin(ids)).collect()]
                 if steps is not None else [])
    metrics_path = warehouse.records("quality_metrics")
    history_rows = []
    if table_exists(spark, metrics_path):
        history_rows = (
            read_delta(spark, metrics_path)
            .where((F.col("kind") == "rule") & F.col("job").isin(sorted({r["job"] for r in rows})))
            .select("job", "table", "rule", "constraint", "run_id", "checked_at", "value",
                    "passed")
            .collect()
        )
    events = _events(warehouse)
    return [
        RunReport(
            run=row,
            steps=sorted((s for s in step_rows if s["run_id"] == row["run_id"]),
                         key=lambda s: s["step_index"]),
            quality=json.loads(row.get("quality") or "[]"),
            history=_history([h for h in history_rows if h.job == row["job"]], row["ended_at"]),
            lineage=_run_graph(events, row, warehouse, landing),
        )
        for row in rows
    ]


def _events(warehouse: Warehouse) -> list[dict[str, Any]]:
    try:
        return read_events(warehouse)
    except ConfigError:  # an object-store warehouse: no local event files to read
        return []


def _history(rows: Sequence[Any], until: dt.datetime | None) -> dict[RuleKey, list[Point]]:
    """Each rule's results up to the run's end (``until``), oldest first."""
    history: dict[RuleKey, list[Point]] = {}
    for r in sorted(rows, key=lambda r: (r.checked_at, r.run_id)):
        if until is None or r.checked_at <= until:
            history.setdefault((r.table, r.rule, r.constraint), []).append(
                (r.run_id, str(r.checked_at), r.value, bool(r.passed)))
    return history


def _run_graph(events: Sequence[Mapping[str, Any]], run: Mapping[str, Any], warehouse: Warehouse,
               landing: str) -> Graph | None:
    wanted = run.get("lineage_run_id") or lineage_run_id(run["run_id"])
    mine = [e for e in events if e.get("run", {}).get("runId") == wanted
            and e.get("eventType") == COMPLETE]
    return build_graph(mine, warehouse, landing) if mine else None


# --------------------------------------------------------------------------------------------
# Rendering (pure: data in, HTML out)
# --------------------------------------------------------------------------------------------

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"DejaVu Sans",sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
header{background:#1d2330;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#c5cad6}nav{padding:8px 24px;background:#e8ebf0}
nav a{margin-right:14px}main{padding:8px 24px 40px}a{color:#1f5fbf;text-decoration:none}
a:hover{text-decoration:underline}section.run{background:#fff;border:1px solid #d8dce3;
border-radius:6px;margin:16px 0;padding:8px 18px 16px}h2{font-size:18px}h3{font-size:15px;
margin:18px 0 6px}table{border-collapse:collapse;margin:4px 0}th,td{padding:3px 10px;
border-bottom:1px solid #e3e6eb;text-align:left;vertical-align:top}td.n{text-align:right;
font-variant-numeric:tabular-nums}th{background:#f0f2f5;font-weight:600}
.status{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600}
.succeeded,.pass{background:#2e7d32}.failed,.FAIL{background:#c62828}.quality_failed{background:#ef6c00}
.warn{background:#ef6c00}.tiles{display:flex;gap:12px;flex-wrap:wrap}.tile{border:1px solid #d8dce3;
border-radius:6px;padding:6px 14px;min-width:110px}.tile b{display:block;font-size:20px}
.bar{fill:#5b8def}.anomaly{fill:#c62828}.ok{fill:#2e7d32}svg text{font:11px system-ui,"DejaVu Sans",sans-serif}
.node rect{fill:#eef3fb;stroke:#5b8def}.node.job rect{fill:#fff4e0;stroke:#ef6c00}
.edge{stroke:#8a93a3;fill:none;marker-end:url(#arrow)}.muted{color:#6b7385}
tr.hidden{display:none}td.constraint{max-width:260px;overflow:hidden;text-overflow:ellipsis;
white-space:nowrap;font-size:12px;color:#4a5262}pre{white-space:pre-wrap;background:#fbecec;padding:8px}
"""

SCRIPT = """
document.querySelectorAll('input.only-failed').forEach(function (box) {
  box.addEventListener('change', function () {
    var table = document.getElementById(box.dataset.table);
    table.querySelectorAll('tbody tr').forEach(function (row) {
      row.classList.toggle('hidden', box.checked && row.dataset.passed === 'true');
    });
  });
});
document.body.dataset.ready = 'true';
"""


def esc(value: Any) -> str:
    """Text for HTML: ``None`` as empty, everything else escaped (quotes included)."""
    return "" if value is None else html.escape(str(value), quote=True)


def slug(text: str) -> str:
    """An id/anchor fragment for ``text`` (letters, digits, ``-``)."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def _count(value: Any) -> str:
    return "" if value is None else f"{int(value):,}"


def _number(value: Any) -> str:
    return "" if value is None else f"{float(value):.6g}"


def _seconds(value: Any) -> str:
    return "" if value is None else f"{float(value):.1f} s"


def _cell(text: str, numeric: bool = False) -> str:
    return f'<td class="n">{text}</td>' if numeric else f"<td>{text}</td>"


def _table(headers: Sequence[str], rows: Sequence[str], table_id: str = "") -> str:
    ident = f' id="{esc(table_id)}"' if table_id else ""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def sparkline(points: Sequence[Point], current: str, width: int = 250, height: int = 44) -> str:
    """An inline SVG of a rule's observed value over runs: one dot per run (red when the rule
    failed there, an anomaly for anomaly rules), the report's run ringed; values in tooltips."""
    valued = [p for p in points if p[2] is not None]
    if not valued:
        return '<span class="muted">no values</span>'
    values = [float(p[2]) for p in valued]  # type: ignore[arg-type]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    plot = width - 76  # the values' range is written right of the plot
    step = plot / max(len(valued) - 1, 1)
    coords = [(8 + i * step, height - 8 - (v - low) / span * (height - 16))
              for i, v in enumerate(values)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    dots = []
    for (x, y), (run_id, checked, value, passed) in zip(coords, valued, strict=True):
        cls = "ok" if passed else "anomaly"
        ring = (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="none" stroke="#1d2330"/>'
                if run_id == current else "")
        dots.append(f'{ring}<circle class="{cls}" cx="{x:.1f}" cy="{y:.1f}" r="3.5">'
                    f"<title>{esc(run_id)} {esc(checked)}: {esc(_number(value))}"
                    f"{'' if passed else ' (failed)'}</title></circle>")
    return (f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="history of {len(valued)} values">'
            f'<polyline points="{line}" fill="none" stroke="#5b8def" stroke-width="1.5"/>'
            f"{''.join(dots)}"
            f'<text x="{plot + 18}" y="12">{esc(_number(high))}</text>'
            f'<text x="{plot + 18}" y="{height - 4}">{esc(_number(low))}</text></svg>')


def lineage_svg(graph: Graph, link: Mapping[str, str]) -> str:
    """The graph as an SVG diagram: columns by depth (sources left), dataset boxes and job
    boxes, arrows for edges; a dataset the run wrote links to ``link[label]``."""
    depth = graph.depths()
    nodes = sorted(graph.labels, key=lambda n: (depth[n], graph.labels[n]))
    columns: dict[int, list[str]] = {}
    for n in nodes:
        columns.setdefault(depth[n], []).append(n)
    box_w, box_h, gap_x, gap_y = 190, 26, 70, 12
    place = {n: (10 + d * (box_w + gap_x), 10 + i * (box_h + gap_y))
             for d, members in columns.items() for i, n in enumerate(members)}
    width = 20 + (max(columns) + 1) * (box_w + gap_x) - gap_x
    height = 20 + max(len(m) for m in columns.values()) * (box_h + gap_y) - gap_y
    parts = ['<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
             'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#8a93a3"/>'
             "</marker></defs>"]
    for a, b in graph.ordered_edges():
        (ax, ay), (bx, by) = place[a], place[b]
        x1, y1, x2, y2 = ax + box_w, ay + box_h / 2, bx, by + box_h / 2
        mid = (x1 + x2) / 2
        parts.append(f'<path class="edge" d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"/>')
    for n in nodes:
        x, y = place[n]
        label = graph.labels[n]
        kind = "dataset" if n in graph.names else "job"
        text = label if len(label) <= 28 else label[:27] + "…"
        body = (f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="5"/>'
                f'<text x="{x + 8}" y="{y + 17}">{esc(text)}</text><title>{esc(label)}</title>')
        if label in link:
            body = f'<a href="#{esc(link[label])}">{body}</a>'
        parts.append(f'<g class="node {kind}" data-label="{esc(label)}">{body}</g>')
    return (f'<svg class="lineage" width="{width}" height="{height}" viewBox="0 0 {width} '
            f'{height}" role="img" aria-label="lineage graph">{"".join(parts)}</svg>')


def _run_section(report: RunReport) -> str:
    run = report.run
    rid = str(run["run_id"])
    anchor = f"run-{slug(rid)}"
    dates = f"{run['date_from']}..{run['date_to']}" if run.get("date_from") else ""
    out = [f'<section class="run" id="{anchor}">',
           f'<h2>Run {esc(rid)} <span class="status {esc(run["status"])}">{esc(run["status"])}'
           f"</span></h2>",
           f'<p>job <b>{esc(run["job"])}</b> · {esc(run["mode"])} {esc(dates)} · env '
           f'{esc(run["env"])} · started {esc(run["started_at"])} UTC · '
           f'<span class="duration">{esc(_seconds(run.get("duration_s")))}</span></p>',
           f'<p><a href="#{anchor}-steps">steps</a> · <a href="#{anchor}-writes">tables written'
           f'</a> · <a href="#{anchor}-quality">quality</a> · <a href="#{anchor}-lineage">'
           f'lineage</a> · <a href="#{anchor}-schema">schema changes</a></p>']
    tiles = [("read", run.get("rows_read")), ("loaded", run.get("rows_loaded")),
             ("quarantined", run.get("rows_quarantined")), ("filtered", run.get("rows_filtered")),
             ("written", run.get("rows_written"))]
    out.append('<div class="tiles">' + "".join(
        f'<div class="tile" data-metric="{name}"><b>{esc(_count(value))}</b>rows {name}</div>'
        for name, value in tiles) + "</div>")
    if run.get("error_class"):
        out.append(f'<h3>Error</h3><pre class="error">{esc(run["error_class"])}: '
                   f'{esc(run.get("error_message"))}</pre>')
    out.append(_steps(report, anchor))
    out.append(_writes(report, anchor))
    out.append(_quality(report, anchor))
    out.append(f'<h3 id="{anchor}-lineage">Lineage</h3>')
    if report.lineage is not None:
        written = {w["table"]: f"{anchor}-write-{slug(w['table'])}" for w in run.get("writes") or []}
        out.append(lineage_svg(report.lineage, written))
    else:
        out.append('<p class="muted">no lineage events stored for this run</p>')
    changes = run.get("schema_changes") or []
    out.append(f'<h3 id="{anchor}-schema">Schema changes</h3>')
    out.append("<ul>" + "".join(f"<li>{esc(c)}</li>" for c in changes) + "</ul>" if changes
               else '<p class="muted">no schema changes</p>')
    notes = run.get("notes") or []
    if notes:
        out.append("<h3>Notes</h3><ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    out.append(f'<p class="muted">Spark application {esc(run.get("spark_app_id"))} · '
               f'{esc(run.get("spark_stages"))} stages · etl {esc(run.get("etl_version"))} · '
               f'commit {esc(run.get("git_commit"))}</p></section>')
    return "\n".join(out)


def _steps(report: RunReport, anchor: str) -> str:
    longest = max((float(s.get("duration_s") or 0) for s in report.steps), default=0) or 1.0
    rows = []
    for s in report.steps:
        seconds = float(s.get("duration_s") or 0)
        bar = (f'<svg width="160" height="12"><rect class="bar" x="0" y="1" height="10" '
               f'width="{160 * seconds / longest:.1f}"/></svg>')
        rows.append(
            f'<tr id="{anchor}-step-{slug(str(s["step"]))}"><td>{esc(s["step"])}</td>'
            f'<td><span class="status {esc(s["status"])}">{esc(s["status"])}</span></td>'
            + _cell(esc(_count(s.get("rows_read"))), True)
            + _cell(esc(_count(s.get("rows_written"))), True)
            + _cell(esc(_seconds(seconds)), True) + f"<td>{bar}</td></tr>")
    body = _table(["step", "status", "rows in", "rows out", "time", ""], rows) if rows else (
        '<p class="muted">no steps recorded</p>')
    return f'<h3 id="{anchor}-steps">Steps</h3>{body}'


def _writes(report: RunReport, anchor: str) -> str:
    rows = [
        f'<tr id="{anchor}-write-{slug(w["table"])}"><td>{esc(w["table"])}</td>'
        f'<td>{esc(w["operation"])}</td>' + _cell(esc(w.get("version")), True)
        + _cell(esc(_count(w.get("rows_inserted"))), True)
        + _cell(esc(_count(w.get("rows_updated"))), True)
        + _cell(esc(_count(w.get("rows_deleted"))), True) + "</tr>"
        for w in report.run.get("writes") or []
    ]
    body = (_table(["table", "operation", "Delta version", "inserted", "updated", "deleted"], rows)
            if rows else '<p class="muted">no table written</p>')
    return f'<h3 id="{anchor}-writes">Tables written</h3>{body}'


def _quality(report: RunReport, anchor: str) -> str:
    rid = str(report.run["run_id"])
    rows = []
    for q in report.quality:
        passed = bool(q.get("passed"))
        result = "pass" if passed else ("FAIL" if q.get("severity") == "error" else "warn")
        points = report.history.get((q["table"], q["rule"], q["constraint"]), [])
        rows.append(
            f'<tr id="{anchor}-rule-{slug(q["table"] + "-" + q["rule"])}" '
            f'data-passed="{"true" if passed else "false"}"><td>{esc(q["rule"])}</td>'
            f'<td>{esc(q["table"])}</td><td>{esc(q.get("severity"))}</td>'
            f'<td><span class="status {result}">{result}</span></td>'
            + _cell(esc(_number(q.get("value"))), True)
            + _cell(esc(_count(q.get("rows_failed"))), True)
            + f'<td class="constraint" title="{esc(q.get("constraint"))}">'
            f'{esc(q.get("constraint"))}</td>'
            f"<td>{sparkline(points, rid)}</td></tr>")
    if not rows:
        return f'<h3 id="{anchor}-quality">Quality</h3><p class="muted">no quality rules ran</p>'
    failing = sum(1 for q in report.quality if not q.get("passed"))
    table_id = f"{anchor}-quality-table"
    return (f'<h3 id="{anchor}-quality">Quality ({len(rows) - failing} passed, {failing} '
            f'failed)</h3><label><input type="checkbox" class="only-failed" '
            f'data-table="{table_id}"> only failed rules</label>'
            + _table(["rule", "table", "severity", "result", "observed", "failing rows",
                      "constraint", "history (red: failed)"], rows, table_id))


def render(reports: Sequence[RunReport], *, generated_at: dt.datetime | None = None) -> str:
    """The whole HTML document for ``reports`` (newest first)."""
    when = (generated_at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    jobs = sorted({str(r.run["job"]) for r in reports})
    title = f"etl run report: {', '.join(jobs)}"
    index_rows = [
        f'<tr><td><a href="#run-{slug(str(r.run["run_id"]))}">{esc(r.run["run_id"])}</a></td>'
        f'<td>{esc(r.run["job"])}</td><td><span class="status {esc(r.run["status"])}">'
        f'{esc(r.run["status"])}</span></td><td>{esc(r.run["mode"])}</td>'
        + _cell(esc(_count(r.run.get("rows_read"))), True)
        + _cell(esc(_count(r.run.get("rows_loaded"))), True)
        + _cell(esc(_count(r.run.get("rows_quarantined"))), True)
        + _cell(esc(_seconds(r.run.get("duration_s"))), True) + "</tr>"
        for r in reports
    ]
    nav = "".join(f'<a href="#run-{slug(str(r.run["run_id"]))}">{esc(r.run["run_id"])}</a>'
                  for r in reports)
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">",
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        f"<header><h1>{esc(title)}</h1><p>{len(reports)} run(s) · generated {esc(when)}</p>"
        "</header>",
        f'<nav id="runs-nav">{nav}</nav><main>',
        '<h2 id="runs">Runs</h2>',
        _table(["run", "job", "status", "mode", "read", "loaded", "quarantined", "time"],
               index_rows, "runs-table"),
        *(_run_section(r) for r in reports),
        f"</main><script>{SCRIPT}</script></body></html>",
    ])


__all__ = ["RunReport", "collect", "esc", "lineage_svg", "render", "slug", "sparkline"]
