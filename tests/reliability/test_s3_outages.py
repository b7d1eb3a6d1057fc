"""Scenario 8, the S3 endpoint fails: a small HTTP proxy on 127.0.0.1 forwards to the S3 API
server (moto) but answers ``503 SlowDown`` to the first requests, or to every request. Only the
test's own bucket goes through it (``fs.s3a.bucket.<bucket>.*`` settings, and Hadoop caches one
FileSystem per bucket), with the S3A client's retries kept small. Transient errors are retried
by the client and the data arrive exactly; an endpoint that keeps failing ends the run, within a
bounded time, with `SourceError` naming the ``s3a://`` folder, and commits nothing."""

from __future__ import annotations

import http.client
import os
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from chispa import assert_df_equality

from etl.config import load_job_config
from etl.errors import SourceError
from etl.runner import run_job
from etl.tables import latest_version, read_delta
from etl.writers.delta import DeltaAppend
from tests.reliability.harness import ROOT

pytestmark = pytest.mark.integration
SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
             b"<Message>Please reduce your request rate.</Message><RequestId>proxy</RequestId>"
             b"</Error>")
#: The S3A client's own retries, kept small: SDK attempts, S3A retries of errors and of throttling.
RETRIES = {"attempts.maximum": "1", "retry.limit": "2", "retry.interval": "10ms",
           "retry.throttle.limit": "3", "retry.throttle.interval": "10ms"}


class FailingS3:
    """A proxy to the S3 API server that answers 503 SlowDown to its first ``failures`` requests
    (every request when None) and forwards the rest."""

    def __init__(self, failures: int | None):
        self.failures = failures
        self.requests = 0
        self.refused = 0
        target = urlsplit(os.environ["ETL_S3_ENDPOINT"])
        proxy = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with lock:
                    proxy.requests += 1
                    refuse = proxy.failures is None or proxy.refused < proxy.failures
                    proxy.refused += refuse
                if refuse:
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(SLOW_DOWN)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(SLOW_DOWN)
                    return
                upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                upstream.request(self.command, self.path, body=body, headers=dict(self.headers))
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                # a HEAD answer carries the object's length, with no body
                length = answer.getheader("Content-Length", "0") if self.command == "HEAD" \
                    else str(len(data))
                self.send_header("Content-Length", length)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture()
def failing_s3(spark, s3) -> Iterator:
    """``make(failures)`` routes the test's bucket through a `FailingS3` proxy; undone after."""
    _, bucket = s3
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    keys = [f"fs.s3a.bucket.{bucket}.{k}" for k in ("endpoint", *RETRIES)]
    proxies: list[FailingS3] = []

    def make(failures: int | None) -> FailingS3:
        proxy = FailingS3(failures)
        threading.Thread(target=proxy.server.serve_forever, daemon=True).start()
        proxies.append(proxy)
        conf.set(f"fs.s3a.bucket.{bucket}.endpoint", proxy.endpoint)
        for key, value in RETRIES.items():
            conf.set(f"fs.s3a.bucket.{bucket}.{key}", value)
        return proxy

    yield make
    for key in keys:
        conf.unset(key)
    for proxy in proxies:
        proxy.server.shutdown()
        proxy.server.server_close()


def test_transient_slow_downs_are_retried_and_the_table_is_exact(spark, s3, failing_s3):
    _, bucket = s3
    proxy = failing_s3(failures=2)
    path = f"s3a://{bucket}/silver/t"
    rows = spark.createDataFrame([(1, "a"), (2, "b"), (3, "c")], "id int, v string")

    DeltaAppend(spark, path).execute(rows)

    assert proxy.refused == 2
    assert proxy.requests > 2
    assert latest_version(spark, path) == 0
    assert_df_equality(read_delta(spark, path), rows, ignore_row_order=True)


def test_an_endpoint_that_keeps_failing_ends_the_run_and_commits_nothing(
        spark, s3, failing_s3, first_load, tmp_path):
    _, bucket = s3
    warehouse = tmp_path / "warehouse"
    shutil.copytree(first_load.warehouse, warehouse)
    tables = [warehouse / "silver" / "flights", warehouse / "_etl" / "state" / "files"]
    versions = [latest_version(spark, str(t)) for t in tables]
    config = load_job_config("flights", directory=ROOT / "conf", overrides=[
        f"paths.warehouse={warehouse}", f"paths.landing=s3a://{bucket}/landing"])
    proxy = failing_s3(failures=None)

    started = time.monotonic()
    with pytest.raises(SourceError) as info:
        run_job(config, spark=spark)
    elapsed = time.monotonic() - started

    folder = f"s3a://{bucket}/landing/airlines"  # the first folder the job lists
    unavailable = ("Service Unavailable (Service: Amazon S3; Status Code: 503; Error Code: 503 "
                   "Service Unavailable; Request ID: null; S3 Extended Request ID: null; "
                   "Proxy: null)")
    assert str(info.value) == (
        f"cannot list landing folder {folder}: org.apache.hadoop.fs.s3a."
        f"AWSServiceThrottledException: getFileStatus on {folder}: com.amazonaws.services.s3."
        f"model.AmazonS3Exception: {unavailable}, S3 Extended Request ID: null:503 Service "
        f"Unavailable: {unavailable}")
    assert elapsed < 60
    assert proxy.requests == proxy.refused
    assert [latest_version(spark, str(t)) for t in tables] == versions
