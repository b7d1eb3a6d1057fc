"""Lineage transports: the HTTP transport posts each event once to a Marquez-compatible endpoint
(a local HTTP server started by the test), the file transport appends JSON lines, and a
transport that fails never fails the run."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

import pytest
import structlog

from etl.config import load_job_config
from etl.lineage import RunLineage, lineage_run_id, read_events
from etl.runner import new_context
from tests.unit.test_lineage_events import validate_event


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST (path, headers, JSON body)."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, dict(self.headers), json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver():
    with Receiver() as server:
        yield server


def config_for(tmp_path, *overrides: str):
    return load_job_config("flights", overrides=[f"paths.warehouse={tmp_path}/wh",
                                                 f"paths.landing={tmp_path}/landing", *overrides])


def test_http_transport_posts_each_event_once(tmp_path, receiver, monkeypatch):
    monkeypatch.setenv("LINEAGE_KEY", "s3cret")
    config = config_for(tmp_path, "lineage.transport=http", f"lineage.url={receiver.url}",
                        "lineage.api_key_env=LINEAGE_KEY")
    ctx = new_context(config, run_id="http-1")
    lineage = RunLineage(config, ctx)
    lineage.start()
    lineage.fail(None, RuntimeError("boom"))
    assert [(path, body["eventType"]) for path, _, body in receiver.received] == [
        ("/api/v1/lineage", "START"), ("/api/v1/lineage", "FAIL")]
    assert {headers["Authorization"] for _, headers, _ in receiver.received} == {"Bearer s3cret"}
    for _, _, body in receiver.received:
        validate_event(body)
    assert receiver.received[1][2]["run"]["facets"]["errorMessage"]["message"] == (
        "RuntimeError: boom")
    assert lineage.emitted == 2
    assert not (tmp_path / "wh" / "_etl" / "lineage").exists()


def test_file_transport_appends_json_lines(tmp_path):
    config = config_for(tmp_path)
    for run_id in ("f-1", "f-2"):
        RunLineage(config, new_context(config, run_id=run_id)).start()
    warehouse = new_context(config).warehouse
    events = read_events(warehouse)
    assert [(e["eventType"], e["run"]["facets"]["etl_run"]["runId"]) for e in events] == [
        ("START", "f-1"), ("START", "f-2")]
    assert read_events(warehouse, runs=[lineage_run_id("f-2")]) == [events[1]]
    assert read_events(warehouse, types=["START"], runs=[lineage_run_id("f-1")]) == [events[0]]
    assert read_events(warehouse, types=["COMPLETE"]) == []
    lines = (tmp_path / "wh" / "_etl" / "lineage" / "flights.jsonl").read_text().splitlines()
    assert len(lines) == 2


@pytest.fixture()
def json_logs():
    """Reset structlog after a test configured it on the stream pytest captures."""
    yield
    structlog.reset_defaults()


def test_an_unreachable_backend_never_fails_the_run(tmp_path, capsys, json_logs):
    from etl import logs

    logs.configure("json", "INFO")
    config = config_for(tmp_path, "lineage.transport=http", "lineage.url=http://127.0.0.1:9",
                        "lineage.timeout_s=1", "lineage.retries=0")
    lineage = RunLineage(config, new_context(config, run_id="down-1"))
    lineage.start()
    assert lineage.emitted == 0
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    (warning,) = [line for line in lines if line["event"] == "lineage event not emitted"]
    assert (warning["level"], warning["event_type"], warning["transport"]) == (
        "warning", "START", "http")
