"""The HTML run report (``etl report``): one self-contained file per report, viewable offline.

`collect` reads what the project recorded about one or more runs (Spark, small reads):

* the run record ``_etl/runs`` (`etl.runlog`): the run row (status, timings, rows read / loaded /
  quarantined / filtered, writes with Delta versions, quality results, schema changes, notes,
  error) and its step rows (timings, rows in / out);
* ``_etl/quality_metrics`` (`etl.quality.history`): every earlier result of the job's rules, so
  each rule gets a chart of its observed value over runs, failed results (anomalies) marked;
* the OpenLineage events under ``_etl/lineage/`` (`etl.lineage`): the run's graph of datasets.

`render` turns that into HTML with the jinja2 template ``etl/templates/report.html.j2`` (package
data, autoescaped: every value from the records is escaped), inline CSS, SVG charts and a
little inline JavaScript (a filter for failing rules), all in the one file; nothing refers to the
network. The SVG drawings (`sparkline`, `lineage_svg`) are laid out here, their text escaped,
and handed to the template as markup. Sections link to each other: the run list to each run, a
step to the run's writes and quality results, a lineage node to the table's write, a rule to its
chart.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2
from markupsafe import Markup, escape

from etl.config import S3Settings
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
    warehouse: Warehouse,
    landing: str,
    *,
    run_id: str | None = None,
    job: str | None = None,
    last: int = 1,
    s3: S3Settings | None = None,
) -> list[RunReport]:
    """The runs to report: ``run_id``, or the ``last`` runs of ``job`` (newest first), read from
    the warehouse's records without Spark (`etl.inspection`)."""
    from etl.inspection import RUN, STEP, query_runs
    from etl.native import TABLE, literal, query_path

    if (run_id is None) == (job is None):
        raise ConfigError("give either a run id or a job")
    if last < 1:
        raise ConfigError(f"--last must be at least 1, got {last}")
    path = warehouse.records("runs")
    rows = query_runs(path, s3, job, run_id=run_id, record_type=RUN, limit=last)
    if rows is None:
        raise ConfigError(f"no runs recorded under {path}")
    if not rows:
        wanted = f"run {run_id}" if run_id else f"runs of job {job}"
        raise ConfigError(f"no {wanted} recorded under {path}")
    ids = ", ".join(literal(r["run_id"]) for r in rows)
    step_rows = query_path(path, f"SELECT * FROM {TABLE} WHERE record_type = {literal(STEP)} "
                                 f"AND run_id IN ({ids})", s3) or []
    jobs = ", ".join(literal(j) for j in sorted({r["job"] for r in rows}))
    history_rows = query_path(
        warehouse.records("quality_metrics"),
        f"SELECT job, \"table\", rule, \"constraint\", run_id, checked_at, value, passed "
        f"FROM {TABLE} WHERE kind = 'rule' AND job IN ({jobs})", s3) or []
    events = _events(warehouse, s3, [_lineage_id(row) for row in rows])
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


def _events(warehouse: Warehouse, s3: S3Settings | None,
            runs: Sequence[str]) -> list[dict[str, Any]]:
    """The COMPLETE events of ``runs`` (OpenLineage run ids)."""
    try:
        return read_events(warehouse, s3, types=[COMPLETE], runs=runs)
    except ConfigError:  # an object store other than S3: its events are not read
        return []


def _history(rows: Sequence[Any], until: dt.datetime | None) -> dict[RuleKey, list[Point]]:
    """Each rule's results up to the run's end (``until``), oldest first."""
    history: dict[RuleKey, list[Point]] = {}
    for r in sorted(rows, key=lambda r: (r.checked_at, r.run_id)):
        if until is None or r.checked_at <= until:
            history.setdefault((r.table, r.rule, r.constraint), []).append(
                (r.run_id, str(r.checked_at), r.value, bool(r.passed)))
    return history


def _lineage_id(run: Mapping[str, Any]) -> str:
    return run.get("lineage_run_id") or lineage_run_id(run["run_id"])


def _run_graph(events: Sequence[Mapping[str, Any]], run: Mapping[str, Any], warehouse: Warehouse,
               landing: str) -> Graph | None:
    wanted = _lineage_id(run)
    mine = [e for e in events if e.get("run", {}).get("runId") == wanted]
    return build_graph(mine, warehouse, landing) if mine else None


# --------------------------------------------------------------------------------------------
# Rendering (pure: data in, HTML out)
# --------------------------------------------------------------------------------------------

TEMPLATE = "report.html.j2"


def _absent(value: Any) -> bool:
    return value is None or isinstance(value, jinja2.Undefined)


def esc(value: Any) -> str:
    """Text for HTML: ``None`` as empty, everything else escaped (quotes included)."""
    return "" if _absent(value) else str(escape(str(value)))


def slug(text: str) -> str:
    """An id/anchor fragment for ``text`` (letters, digits, ``-``)."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def _count(value: Any) -> str:
    return "" if _absent(value) else f"{int(value):,}"


def _number(value: Any) -> str:
    return "" if _absent(value) else f"{float(value):.6g}"


def _seconds(value: Any) -> str:
    return "" if _absent(value) else f"{float(value):.1f} s"


def _float_or_zero(value: Any) -> float:
    return 0.0 if _absent(value) else float(value or 0)


def _none_empty(value: Any) -> Any:
    return "" if _absent(value) else value


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


def _sparkline_of(report: RunReport, rule: Mapping[str, Any]) -> Markup:
    points = report.history.get((rule["table"], rule["rule"], rule["constraint"]), [])
    return Markup(sparkline(points, str(report.run["run_id"])))  # escaped in sparkline/lineage_svg


def _lineage_of(report: RunReport, anchor: str) -> Markup:
    assert report.lineage is not None
    written = {w["table"]: f"{anchor}-write-{slug(w['table'])}"
               for w in report.run.get("writes") or []}
    return Markup(lineage_svg(report.lineage, written))  # escaped in sparkline/lineage_svg


@functools.cache
def environment() -> jinja2.Environment:
    """The report's jinja2 environment: templates from the package, autoescape on; a field
    missing from a record renders empty, as ``None`` does."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("etl", "templates"), autoescape=True,
                             keep_trailing_newline=False)
    env.filters.update(slug=slug, count_=_count, number=_number, seconds=_seconds,
                       float_or_zero=_float_or_zero, none_empty=_none_empty)
    env.globals.update(sparkline_of=_sparkline_of, lineage_of=_lineage_of)
    return env


def render(reports: Sequence[RunReport], *, generated_at: dt.datetime | None = None) -> str:
    """The whole HTML document for ``reports`` (newest first)."""
    when = (generated_at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    jobs = sorted({str(r.run["job"]) for r in reports})
    return environment().get_template(TEMPLATE).render(
        reports=reports, title=f"etl run report: {', '.join(jobs)}", generated=when)


__all__ = ["RunReport", "collect", "esc", "lineage_svg", "render", "slug", "sparkline"]
