"""Alerts fed bad input: a webhook that answers with something that is not HTTP or cuts its
answer short, subjects SNS would refuse, and records of a failed run that cannot be written."""

from __future__ import annotations

import socket
import threading
from typing import Self

import pytest

from etl.alerts import Alert, alert_failed_run, send_alert, sns_subject
from etl.config import AlertChannel, AlertSettings
from tests.unit.test_lineage_transports import Receiver

ALERT = Alert(kind="failure", job="things", run_id="r-1", env="test", summary="boom")


class BrokenServer:
    """A TCP server on 127.0.0.1 that reads one request and answers ``reply`` (raw bytes),
    then closes the connection."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.requests = 0
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(10)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}/hook"
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        try:
            connection, _ = self.socket.accept()
        except OSError:
            return
        with connection:
            connection.settimeout(10)
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = connection.recv(65536)
                if not chunk:  # the client gave up
                    return
                request += chunk
            self.requests += 1
            connection.sendall(self.reply)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(timeout=10)
        self.socket.close()


@pytest.mark.parametrize("reply", [
    pytest.param(b"HELLO\r\n\r\n", id="not-http"),                       # http.client.BadStatusLine
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort", id="cut-short"),  # IncompleteRead
])
def test_a_webhook_answering_badly_is_logged_and_the_other_channels_still_get_the_alert(reply):
    with BrokenServer(reply) as broken, Receiver() as good:
        settings = AlertSettings(channels=[
            AlertChannel(type="webhook", url=broken.url),
            AlertChannel(type="webhook", url=f"{good.url}/hook"),
            AlertChannel(type="log"),
        ])
        delivered = send_alert(settings, ALERT)
    assert broken.requests == 1
    assert delivered == ["webhook", "log"]
    assert [body["text"] for _, _, body in good.received] == [ALERT.text]


@pytest.mark.parametrize(("text", "subject"), [
    ("[etl prod] failure: job a run r: boom", "[etl prod] failure: job a run r: boom"),
    ("failure: X: first line\nsecond line\r\n\tthird", "failure: X: first line second line third"),
    ("Zürich → Orléans", "Zurich ? Orleans"),
    ("nul\x00bell\x07", "nul?bell?"),
    ("東京", "??"),
    ("\n\n", "?"),
    ("x" * 100, "x" * 100),
    ("y" * 101, "y" * 97 + "..."),
])
def test_sns_subjects_are_ascii_one_line_and_at_most_100_characters(text, subject):
    assert sns_subject(text) == subject
    assert len(subject) <= 100 and subject.isascii() and subject.isprintable()


def test_a_failed_runs_alert_goes_out_before_its_records_and_a_failing_record_is_noted():
    settings = AlertSettings(channels=[AlertChannel(type="log")])
    events: list[str] = []
    error = RuntimeError("the job's own error")

    def refused() -> None:
        events.append("run record")
        raise OSError("[Errno 30] Read-only file system: '/wh/_etl/runs'\nmore detail")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("etl.alerts.send_alert", lambda s, a: events.append(f"alert {a.kind}"))
        alert_failed_run(settings, ALERT, error, refused, lambda: events.append("lineage"))

    # the alert first; a record that fails does not stop the next one
    assert events == ["alert failure", "run record", "lineage"]
    assert error.__notes__ == [
        "the failure could not be recorded: OSError: [Errno 30] Read-only file system: "
        "'/wh/_etl/runs'"]
