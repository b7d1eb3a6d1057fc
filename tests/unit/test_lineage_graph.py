"""`etl lineage`: the graph of datasets and jobs built from stored events, and its renderings."""

from __future__ import annotations

import json

import pytest

from etl.cli import main
from etl.context import Warehouse
from etl.errors import ConfigError
from etl.lineage import build_graph, render

WH, LANDING = "/data/wh", "/data/landing"


def event(job: str, inputs: list[str], outputs: list[str], event_type: str = "COMPLETE") -> dict:
    return {
        "eventType": event_type, "eventTime": "2026-01-01T00:00:00.000+00:00",
        "job": {"namespace": "etl", "name": job},
        "inputs": [{"namespace": "file", "name": n} for n in inputs],
        "outputs": [{"namespace": "file", "name": n} for n in outputs],
    }


EVENTS = [
    event("flights", [f"{LANDING}/flights", f"{LANDING}/airlines"],
          [f"{WH}/bronze/flights", f"{WH}/bronze/airlines", f"{WH}/silver/flights",
           f"{WH}/gold/carrier_daily_performance"]),
    event("exports", [f"{WH}/gold/carrier_daily_performance"], ["/exports/daily.csv"]),
    event("ignored", [f"{WH}/silver/flights"], ["/never"], event_type="START"),
]


@pytest.fixture()
def graph():
    return build_graph(EVENTS, Warehouse.at(WH), LANDING)


def test_text_from_landing_to_gold(graph):
    landing = graph.find("landing/flights")
    assert render(graph.around(landing, upstream=False), "text").splitlines() == [
        "landing/flights -> job flights",
        "job flights -> bronze/airlines",
        "job flights -> bronze/flights",
        "job flights -> silver/flights",
        "job flights -> gold/carrier_daily_performance",
        "gold/carrier_daily_performance -> job exports",
        "job exports -> /exports/daily.csv",
    ]


def test_upstream_only(graph):
    gold = graph.find("gold/carrier_daily_performance")
    assert render(graph.around(gold, downstream=False), "text").splitlines() == [
        "landing/airlines -> job flights",
        "landing/flights -> job flights",
        "job flights -> gold/carrier_daily_performance",
    ]


def test_downstream_only(graph):
    gold = graph.find("gold/carrier_daily_performance")
    assert render(graph.around(gold, upstream=False), "text").splitlines() == [
        "gold/carrier_daily_performance -> job exports",
        "job exports -> /exports/daily.csv",
    ]


def test_mermaid_and_dot(graph):
    airlines = graph.find("landing/airlines")
    part = graph.around(airlines)
    assert render(part, "mermaid").splitlines() == [
        "flowchart LR",
        '  n0["/exports/daily.csv"]',
        '  n1["bronze/airlines"]',
        '  n2["bronze/flights"]',
        '  n3["gold/carrier_daily_performance"]',
        '  n4(["job exports"])',
        '  n5(["job flights"])',
        '  n6["landing/airlines"]',
        '  n7["silver/flights"]',
        "  n6 --> n5",
        "  n5 --> n1",
        "  n5 --> n2",
        "  n5 --> n7",
        "  n5 --> n3",
        "  n3 --> n4",
        "  n4 --> n0",
    ]
    dot = render(graph.around(graph.find("landing/flights"), upstream=True, downstream=False),
                 "dot")
    assert dot.splitlines() == [
        "digraph lineage {", "  rankdir=LR;", '  n0 [label="landing/flights", shape=box];', "}"]


def test_unknown_and_ambiguous_tables(graph):
    with pytest.raises(ConfigError, match=r"^no dataset 'silver/planes' in the stored lineage; "
                       r"known: \['/exports/daily.csv', 'bronze/airlines', "):
        graph.find("silver/planes")
    ambiguous = build_graph([event("a", [], ["/x/t"]), {**event("b", [], ["/x/t"]),
                             "outputs": [{"namespace": "s3://b", "name": "/x/t"}]}],
                            Warehouse.at(WH), LANDING)
    with pytest.raises(ConfigError, match=r"^'/x/t' is ambiguous: \['/x/t', 's3://b//x/t'\]$"):
        ambiguous.find("/x/t")


def test_cli_prints_mermaid_from_stored_events(tmp_path, capsys, monkeypatch):
    conf = tmp_path / "conf"
    (conf / "jobs").mkdir(parents=True)
    (conf / "base.yml").write_text(f"paths:\n  warehouse: {tmp_path}/wh\n  landing: {LANDING}\n")
    (conf / "local.yml").write_text("")
    folder = tmp_path / "wh" / "_etl" / "lineage"
    folder.mkdir(parents=True)
    wh = f"{tmp_path}/wh"
    (folder / "flights.jsonl").write_text(json.dumps(event(
        "flights", [f"{LANDING}/flights"], [f"{wh}/bronze/flights", f"{wh}/silver/flights"])) + "\n")
    assert main(["--conf-dir", str(conf), "lineage", "silver/flights", "--upstream",
                 "--format", "mermaid"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "flowchart LR", '  n0(["job flights"])', '  n1["landing/flights"]',
        '  n2["silver/flights"]', "  n1 --> n0", "  n0 --> n2"]
    assert main(["--conf-dir", str(conf), "lineage", "gold/x"]) == 2
    assert capsys.readouterr().err == (
        "etl: error: no dataset 'gold/x' in the stored lineage; known: "
        "['bronze/flights', 'landing/flights', 'silver/flights']\n")
