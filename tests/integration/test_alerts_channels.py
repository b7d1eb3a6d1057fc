"""Alerts end to end: runs of a tiny job that fails, fails its quality gate, reports an anomaly
or runs too long each deliver exactly one message to every channel: a webhook (a local HTTP
server), AWS SNS (moto's server on 127.0.0.1:5055, read back through an SQS subscription) and
the log. The same runs check the run record's filters and the dead letters."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
import structlog
from pyspark.sql import functions as F

from etl import logs
from etl.alerts import report_anomaly
from etl.cli import main
from etl.config import load_job_config
from etl.errors import QualityGateError, SourceError
from etl.runlog import read_runs
from etl.runner import run_job
from tests.services import TEST_SERVICES  # noqa: F401  (sets the services' environment first)
from tests.unit.test_lineage_transports import Receiver

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
MOTO = os.environ["ETL_S3_ENDPOINT"]  # set by tests.services (default http://127.0.0.1:5055)


def job(spark, ctx, config) -> None:
    """The job under test: ``params.behaviour`` says how it ends."""
    behaviour = config.params["behaviour"]
    with ctx.step("work") as step:
        step.rows_in = ctx.rows_read = 3
        if behaviour == "fail":
            raise SourceError("source api: still failing after 3 attempts (HTTP 503)")
        if behaviour == "quality":
            raise QualityGateError("silver/things", ["thing_key_unique [error] Uniqueness"])
        if behaviour == "anomaly":
            report_anomaly(config, ctx, "volume dropped", metric="rows_read", value=3, expected=30)
        if behaviour == "slow":
            time.sleep(2.1)  # the record's times have whole seconds: >= 2 s is > 1 s
        step.rows_out = ctx.rows_loaded = 3


@pytest.fixture(scope="module")
def aws():

    options = {"endpoint_url": MOTO, "region_name": "us-east-1", "aws_access_key_id": "testing",
               "aws_secret_access_key": "testing"}
    sns, sqs = boto3.client("sns", **options), boto3.client("sqs", **options)
    try:
        topic = sns.create_topic(Name=f"etl-alerts-{uuid.uuid4().hex[:8]}")["TopicArn"]
    except botocore.exceptions.EndpointConnectionError as exc:
        pytest.fail(f"moto is not running on {MOTO}: scripts/services.sh start s3 ({exc})")
    queue = sqs.create_queue(QueueName=f"etl-alerts-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn["Attributes"]["QueueArn"])

    def received(envelopes: bool = False) -> list[dict]:
        """The messages published since the last call (with ``envelopes``, SNS's notifications
        around them, which carry the ``Subject``)."""
        messages = []
        while True:
            batch = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10,
                                        WaitTimeSeconds=0).get("Messages", [])
            if not batch:
                return messages
            for message in batch:
                envelope = json.loads(message["Body"])
                messages.append(envelope if envelopes else json.loads(envelope["Message"]))
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])

    return topic, received


@pytest.fixture(scope="module")
def runs(spark, aws, tmp_path_factory):
    """Run the job once per behaviour; collect what every channel received for each run."""
    root = tmp_path_factory.mktemp("alerts")
    conf = root / "conf"
    (conf / "jobs").mkdir(parents=True)
    for name in ("base.yml", "local.yml"):
        shutil.copy(ROOT / "conf" / name, conf / name)
    (conf / "jobs" / "things.yml").write_text(
        "job:\n  name: things\n  entrypoint: tests.integration.test_alerts_channels:job\n")
    topic, sns_received = aws
    results = {}
    with Receiver() as webhook, pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        channels = (f"[{{type: webhook, url: '{webhook.url}/hooks/etl'}}, "
                    f"{{type: sns, topic_arn: '{topic}', region: us-east-1, endpoint_url: '{MOTO}'}},"
                    " {type: log}]")
        for behaviour in ("ok", "fail", "quality", "anomaly", "slow"):
            config = load_job_config("things", directory=conf, overrides=[
                f"paths.warehouse={root}/wh", f"params.behaviour={behaviour}",
                f"alerts.channels={channels}",
                f"alerts.max_duration_s={1 if behaviour == 'slow' else 0}"])
            error = None
            try:
                ctx = run_job(config, spark=spark, run_id=f"run-{behaviour}")
            except (SourceError, QualityGateError) as exc:
                error, ctx = exc, None
            hooks = [body for _, _, body in webhook.received]
            webhook.received.clear()
            results[behaviour] = {"ctx": ctx, "error": error, "webhook": hooks,
                                  "sns": sns_received()}
    return root, results


def kinds(messages: list[dict]) -> list[str]:
    return [m["alert"]["kind"] for m in messages]


@pytest.mark.parametrize(("behaviour", "expected"), [
    ("ok", []), ("fail", ["failure"]), ("quality", ["quality_gate"]), ("anomaly", ["anomaly"]),
    ("slow", ["slow_run"]),
])
def test_one_message_per_alerting_event_on_each_channel(runs, behaviour, expected):
    _, results = runs
    assert kinds(results[behaviour]["webhook"]) == expected
    assert kinds(results[behaviour]["sns"]) == expected


def test_message_bodies_are_slack_compatible(runs):
    _, results = runs
    (hook,) = results["fail"]["webhook"]
    assert hook["text"] == ("[etl local] failure: job things run run-fail: SourceError: source "
                            "api: still failing after 3 attempts (HTTP 503)")
    assert (hook["alert"]["job"], hook["alert"]["run_id"], hook["alert"]["details"]) == (
        "things", "run-fail", {"error_class": "SourceError"})
    (message,) = results["quality"]["sns"]
    assert message["alert"]["details"] == {
        "table": "silver/things", "failures": ["thing_key_unique [error] Uniqueness"]}
    (anomaly,) = results["anomaly"]["webhook"]
    assert anomaly["alert"]["details"] == {"metric": "rows_read", "value": 3, "expected": 30}
    assert results["anomaly"]["ctx"].notes == ["anomaly: volume dropped"]


@pytest.fixture()
def json_logs():
    """Reset structlog after a test configured it on the stream pytest captures."""
    yield
    structlog.reset_defaults()


def test_log_channel_writes_one_line_per_alert(spark, tmp_path, capsys, json_logs):
    config = load_job_config("flights", overrides=[f"paths.warehouse={tmp_path}/wh"])
    from etl.alerts import run_alert, send_alert
    from etl.runner import new_context

    logs.configure("json", "INFO")
    ctx = new_context(config, run_id="log-1")
    assert send_alert(config.alerts, run_alert(ctx, "failure", "boom", error_class="X")) == ["log"]
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["event"], line["alert_kind"], line["summary"], line["detail_error_class"])
            for line in lines if line["event"] == "alert"] == [("alert", "failure", "boom", "X")]


def test_run_record_filters_and_dead_letters(spark, runs, capsys, monkeypatch):
    root, _ = runs
    path = f"{root}/wh/_etl/runs"
    failed = read_runs(spark, path, "things", status="failed")
    assert [r.run_id for r in failed.collect()] == ["run-fail"]
    quality = read_runs(spark, path, status="quality_failed").collect()
    assert [(r.run_id, r.error_class) for r in quality] == [("run-quality", "QualityGateError")]
    today = dt.datetime.now(dt.UTC).date()
    assert read_runs(spark, path, since=today).count() == 5
    assert read_runs(spark, path, until=today - dt.timedelta(days=1)).count() == 0
    steps = read_runs(spark, path, "things", record_type="step").where(
        F.col("run_id").isin("run-ok", "run-fail")).collect()
    assert [(s.run_id, s.step, s.status, s.rows_read, s.rows_written, s.error_class)
            for s in steps] == [("run-ok", "work", "succeeded", 3, 3, None),
                                ("run-fail", "work", "failed", 3, None, "SourceError")]
    dead = spark.read.format("delta").load(f"{root}/wh/_etl/dead_letters").collect()
    assert [(d.job, d.run_id, d.source, d.error_class, d.reason) for d in dead] == [
        ("things", "run-fail", "api", "SourceError",
         "source api: still failing after 3 attempts (HTTP 503)")]
    capsys.readouterr()
    conf = root / "conf"
    env = ["--conf-dir", str(conf)]
    monkeypatch.setenv("ETL_WAREHOUSE", f"{root}/wh")
    assert main([*env, "runs", "--status", "failed"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:3] for line in out[2:]] == [["run-fail", "things", "failed"]]
    assert main([*env, "dead-letters", "things"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["recorded_at", "job", "run_id", "source", "file", "error_class",
                              "reason"]
    # a whole-source failure names no file: its cell is empty
    assert re.split(r"\s{2,}", out[2])[1:] == ["things", "run-fail", "api", "SourceError",
                                     "source api: still failing after 3 attempts (HTTP 503)"]


def test_an_sns_subject_from_a_multi_line_non_ascii_error_is_one_ascii_line(aws, monkeypatch):
    """SNS refuses a subject with a line break, a non-ASCII character or over 100 characters:
    an error message with all three is published with a subject it accepts."""
    from etl.alerts import Alert, send_alert
    from etl.config import AlertChannel, AlertSettings

    topic, received = aws
    received(envelopes=True)  # drop what earlier tests left
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    summary = "SourceError: source café: HTTP 503\nTraceback (most recent call last):\n" + "x" * 80
    alert = Alert(kind="failure", job="things", run_id="run-sns", env="local", summary=summary)
    settings = AlertSettings(channels=[AlertChannel(
        type="sns", topic_arn=topic, region="us-east-1", endpoint_url=MOTO)])

    assert send_alert(settings, alert) == ["sns"]

    (envelope,) = received(envelopes=True)
    one_line = ("[etl local] failure: job things run run-sns: SourceError: source cafe: HTTP 503 "
                "Traceback (most recent call last): " + "x" * 80)
    assert envelope["Subject"] == one_line[:97] + "..."
    assert json.loads(envelope["Message"])["alert"]["summary"] == summary
