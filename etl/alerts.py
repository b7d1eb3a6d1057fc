"""Alerts: a message to every configured channel when a run fails, its quality gate fails, an
anomaly is reported, or it runs longer than its limit.

Channels (``alerts.channels`` in conf):

* ``webhook``: POST of a JSON body to ``url``. The body is Slack-compatible (``text`` is the
  one-line message) and carries the details under ``alert``.
* ``sns``: ``Publish`` to the SNS topic ``topic_arn`` (boto3; ``region`` and ``endpoint_url``
  optional) with ``Subject`` the one-line message made fit for SNS (`sns_subject`: ASCII, no
  line breaks or control characters, at most 100 characters) and ``Message`` the same JSON body.
* ``log``: a ``warning`` log line ``alert`` with the details.

`send_alert` sends one message per channel and never raises: a channel that cannot be reached
or answers with a broken response is logged (``alert not delivered``), so a broken channel
never hides the run's own error. `alert_failed_run` sends a failed run's alert before the writes
that record the failure, so the alert goes out even when the warehouse is what failed.
`report_anomaly` is the hook for code that detects something unusual (a volume drop, a metric
out of range) and wants the same channels told.

Example::

    report_anomaly(config, ctx, "flights volume dropped 80% against the 7-day mean",
                   metric="rows_read", value=612, expected=3100)
"""

from __future__ import annotations

import http.client
import json
import re
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from etl.config import AlertChannel, AlertSettings, JobConfig
from etl.context import RunContext
from etl.logs import get_logger

AlertKind = Literal["failure", "quality_gate", "anomaly", "slow_run", "bad_file"]
KINDS: tuple[str, ...] = ("failure", "quality_gate", "anomaly", "slow_run", "bad_file")


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    job: str
    run_id: str
    env: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"alert kind must be one of {', '.join(KINDS)}, got {self.kind!r}")

    @property
    def text(self) -> str:
        return f"[etl {self.env}] {self.kind}: job {self.job} run {self.run_id}: {self.summary}"

    def body(self) -> dict[str, Any]:
        """The JSON body of webhook and SNS messages: Slack's ``text`` plus the details."""
        return {"text": self.text, "alert": asdict(self)}


def run_alert(ctx: RunContext, kind: AlertKind, summary: str, **details: Any) -> Alert:
    return Alert(kind=kind, job=ctx.job, run_id=ctx.run_id, env=ctx.env, summary=summary,
                 details=details)


def wanted(settings: AlertSettings, kind: str) -> bool:
    """Whether ``settings`` ask for alerts of ``kind`` (``slow_run`` needs a limit)."""
    return {
        "failure": settings.on_failure,
        "bad_file": settings.on_bad_file,
        "quality_gate": settings.on_quality_gate,
        "anomaly": settings.on_anomaly,
        "slow_run": settings.max_duration_s > 0,
    }[kind]


def send_alert(settings: AlertSettings, alert: Alert) -> list[str]:
    """Send ``alert`` to every channel (when its kind is wanted); return the channel types
    that took it."""
    if not wanted(settings, alert.kind):
        return []
    log = get_logger("etl.alerts")
    delivered: list[str] = []
    for channel in settings.channels:
        try:
            _SENDERS[channel.type](channel, alert)
        except _DELIVERY_ERRORS as exc:
            log.error("alert not delivered", channel=channel.type, kind=alert.kind,
                      error=f"{type(exc).__name__}: {exc}")
            continue
        delivered.append(channel.type)
    return delivered


def alert_failed_run(settings: AlertSettings, alert: Alert, error: BaseException,
                     *records: Callable[[], object]) -> None:
    """Send ``alert`` about a run that failed with ``error``, then run each of ``records`` (the
    writes that record the failure: dead letter, run record, lineage event).

    The alert does not wait on the records: it has gone out before they start, so a warehouse
    that refuses writes cannot stop it. A record that raises is logged (``failure not
    recorded``) and named in a note on ``error`` (`BaseException.add_note`); the other records
    are still attempted, and the caller re-raises ``error``, the run's own error."""
    send_alert(settings, alert)
    for write in records:
        try:
            write()
        except Exception as exc:
            first_line = error_line(exc)
            get_logger("etl.alerts").error("failure not recorded", run_id=alert.run_id,
                                           error=f"{type(exc).__name__}: {first_line}")
            error.add_note(f"the failure could not be recorded: {type(exc).__name__}: "
                           f"{first_line}")


def error_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, or for a Py4J error of the Java exception's (its
    Python message only names the JVM call)."""
    java = getattr(exc, "java_exception", None)
    text = str(java.toString()) if java is not None else str(exc)
    return (text.strip().splitlines() or [""])[0][:500]


def report_anomaly(config: JobConfig, ctx: RunContext, summary: str, **details: Any) -> list[str]:
    """The anomaly hook: send an ``anomaly`` alert for the current run to the job's channels."""
    ctx.note(f"anomaly: {summary}", **details)
    return send_alert(config.alerts, run_alert(ctx, "anomaly", summary, **details))


def _webhook(channel: AlertChannel, alert: Alert) -> None:
    if not channel.url:
        raise ValueError("webhook channel without a url (alerts.channels[].url)")
    request = urllib.request.Request(
        channel.url, data=json.dumps(alert.body(), default=str).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )
    with urllib.request.urlopen(request, timeout=channel.timeout_s) as response:
        response.read()


def _sns(channel: AlertChannel, alert: Alert) -> None:
    import boto3  # type: ignore[import-untyped]

    if not channel.topic_arn:
        raise ValueError("sns channel without a topic_arn (alerts.channels[].topic_arn)")
    options: dict[str, Any] = {}
    if channel.region:
        options["region_name"] = channel.region
    if channel.endpoint_url:
        options["endpoint_url"] = channel.endpoint_url
    client = boto3.client("sns", **options)
    client.publish(TopicArn=channel.topic_arn, Subject=sns_subject(alert.text),
                   Message=json.dumps(alert.body(), default=str))


#: The longest subject SNS accepts.
SNS_SUBJECT_MAX = 100
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")


def sns_subject(text: str) -> str:
    """``text`` as an SNS ``Subject``, which must be ASCII without line breaks or control
    characters and at most 100 characters: accents are dropped (``é`` → ``e``), every other
    character outside printable ASCII becomes ``?`` (line breaks and tabs a space), runs of
    spaces become one, and a longer text is cut to 97 characters plus ``...``.

    >>> sns_subject("failure: job x: boom\\n  at Zürich")
    'failure: job x: boom at Zurich'
    """
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_ = "".join(c for c in decomposed if not unicodedata.combining(c))
    spaced = re.sub(r"\s+", " ", ascii_).strip()
    subject = _NOT_PRINTABLE_ASCII.sub("?", spaced) or "?"
    if len(subject) > SNS_SUBJECT_MAX:
        subject = subject[:SNS_SUBJECT_MAX - 3] + "..."
    return subject


def _log(channel: AlertChannel, alert: Alert) -> None:
    get_logger("etl.alerts").warning("alert", alert_kind=alert.kind, summary=alert.summary,
                                     alert_run_id=alert.run_id, **_flat(alert.details))


def _flat(details: Mapping[str, Any]) -> dict[str, Any]:
    return {f"detail_{k}": v for k, v in details.items()}


def _delivery_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import (  # type: ignore[import-untyped]
        BotoCoreError,
        ClientError,
    )

    # http.client.HTTPException: a response that is not HTTP, or cut short (IncompleteRead)
    return (urllib.error.URLError, OSError, http.client.HTTPException, ValueError,
            BotoCoreError, ClientError)


_SENDERS = {"webhook": _webhook, "sns": _sns, "log": _log}
_DELIVERY_ERRORS = _delivery_errors()

__all__ = ["KINDS", "SNS_SUBJECT_MAX", "Alert", "alert_failed_run", "error_line", "report_anomaly",
           "run_alert", "send_alert", "sns_subject", "wanted"]
