"""etl.readers.rest against a local HTTP API (a threaded http.server on 127.0.0.1 started by
the tests) that paginates in four styles, throttles with 429, fails intermittently with 500,
truncates a body, serves records that do not fit the schema, and can keep failing; that links
or redirects to another origin (a second server) or to file:, answers too much, or trickles."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from chispa import assert_df_equality

from etl.config import (
    RestAuth,
    RestConfig,
    RestIncremental,
    RestPagination,
    RestRetry,
    TargetConfig,
)
from etl.context import RunContext, Warehouse
from etl.errors import ApiError, ConfigError, SourceError
from etl.readers.jdbc import WatermarkRange
from etl.readers.rest import backoff_delay, read_rest, retry_after
from etl.staging import Staging
from etl.watermarks import Watermark, WatermarkStore
from etl.writers.quarantine import write_quarantine
from etl.writers.targets import write_target

SCHEMA = "id bigint, name string, updated_at timestamp"
# what the reader returns: the configured fields, and the ones it does not know as JSON
# (null here: the test server's records have no others)
ROWS = f"{SCHEMA}, _rescued_data string"
PAGE_SIZE = 3


def record(i: int) -> dict[str, object]:
    return {"id": i, "name": f"item {i}", "updated_at": f"2026-01-01T{i:02d}:00:00"}


def row(i: int) -> tuple[int, str, dt.datetime, None]:
    return i, f"item {i}", dt.datetime(2026, 1, 1, i), None


@dataclass
class Api:
    """What the test server serves: records, faults per (route, page) answered before the
    real page, a fault answered to every request, the requests seen and the auth headers."""

    records: list[object] = field(default_factory=lambda: [record(i) for i in range(1, 8)])
    faults: dict[tuple[str, int], list[tuple[str, object]]] = field(default_factory=dict)
    always: tuple[str, object] | None = None
    requests: list[str] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    #: Where the Link header's next page points ("" for a relative link to this server).
    link_base: str = ""
    #: Where GET /moved redirects to.
    redirect_to: str = "/link"

    def page(self, route: str, query: dict[str, str]) -> tuple[int, list[object], dict]:
        """The page number, the page's records and the extra body fields of a request."""
        since = query.get("since")
        rows = [r for r in self.records
                if not (since and isinstance(r, dict) and str(r.get("updated_at")) <= since)]
        if route == "/page":
            number, size = int(query["page"]), int(query["per_page"])
            return number, rows[(number - 1) * size:number * size], {}
        if route == "/offset":
            offset, size = int(query["offset"]), int(query["limit"])
            return offset // size + 1, rows[offset:offset + size], {}
        if route == "/cursor":
            number = int(query.get("cursor", "0")) + 1
            more = len(rows) > number * PAGE_SIZE
            return number, rows[(number - 1) * PAGE_SIZE:number * PAGE_SIZE], {
                "next": str(number) if more else None}
        number = int(query.get("p", "1"))
        return number, rows[(number - 1) * PAGE_SIZE:number * PAGE_SIZE], {}


class Handler(BaseHTTPRequestHandler):
    api: Api

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def answer(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def fault(self, kind: str, arg: object, body: str) -> None:
        if kind == "status":
            self.answer(int(arg), json.dumps({"error": "injected"}))  # type: ignore[call-overload]
        elif kind == "429":
            self.answer(429, "{}", {"Retry-After": str(arg)})
        elif kind == "truncate":
            self.answer(200, body[: len(body) // 2])
        elif kind == "sleep":
            time.sleep(float(arg))  # type: ignore[arg-type]
            self.answer(200, body)
        elif kind in ("trickle", "unannounced"):
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if kind == "trickle":  # announced, then one byte every `arg` seconds
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()  # unannounced: the body ends when the connection closes
            try:
                for i in range(len(data)):
                    self.wfile.write(data[i:i + 1])
                    self.wfile.flush()
                    if kind == "trickle":
                        time.sleep(float(arg))  # type: ignore[arg-type]
            except OSError:  # the reader hung up
                pass

    def do_GET(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        self.api.requests.append(self.path)
        self.api.auth.append(self.headers.get("Authorization"))
        if parts.path == "/moved":
            self.answer(302, "{}", {"Location": self.api.redirect_to})
            return
        number, records, extra = self.api.page(parts.path, query)
        body = json.dumps(records if parts.path == "/link" else {"data": records, **extra})
        pending = self.api.faults.get((parts.path, number), [])
        fault = self.api.always or (pending.pop(0) if pending else None)
        if fault is not None:
            self.fault(*fault, body)
            return
        headers = {}
        if parts.path == "/link" and len(records) == PAGE_SIZE:
            following = urllib.parse.urlencode({**query, "p": str(number + 1)})
            headers["Link"] = (f'<{self.api.link_base}/link?{following}>; rel="next", '
                               '</link?p=1>; rel="first"')
        self.answer(200, body, headers)


def serve() -> Iterator[tuple[Api, str]]:
    """A fresh API and its base URL (``http://127.0.0.1:<port>``) until the block ends."""
    state = Api()
    handler = type("ApiHandler", (Handler,), {"api": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture()
def api() -> Iterator[tuple[Api, str]]:
    yield from serve()


@pytest.fixture()
def other_api() -> Iterator[tuple[Api, str]]:
    """A second API on another port: another origin."""
    yield from serve()


@pytest.fixture()
def ctx(tmp_path: Path) -> RunContext:
    return RunContext(job="api", env="test", warehouse=Warehouse.at(str(tmp_path / "wh")),
                      landing=str(tmp_path / "landing"))


PAGINATION = {
    "/page": RestPagination(style="page", page_size=PAGE_SIZE),
    "/offset": RestPagination(style="offset", page_size=PAGE_SIZE, size_param="limit"),
    "/cursor": RestPagination(style="cursor"),
    "/link": RestPagination(style="link"),
}
FAST_RETRY = RestRetry(attempts=4, backoff_s=0.01, max_backoff_s=0.05, max_retry_after_s=0.2)


def rest_config(base: str, route: str, **kwargs: object) -> RestConfig:
    kwargs.setdefault("retry", FAST_RETRY)
    kwargs.setdefault("timeout_s", 2.0)
    return RestConfig(url=base + route, schema=SCHEMA, pagination=PAGINATION[route],
                      records_path="" if route == "/link" else "data", **kwargs)  # type: ignore[arg-type]


def read(spark, ctx, config: RestConfig, **kwargs):
    staging = Staging(spark, ctx.warehouse.root + "/staging")
    return read_rest(spark, config, source_name="items", staging=staging, ctx=ctx, **kwargs)


def test_every_record_once_while_the_api_throttles_fails_and_truncates(spark, api, ctx):
    state, base = api
    state.records[4] = {"id": "five", "name": "item 5", "updated_at": "2026-01-01T05:00:00"}
    state.records[5] = 42
    state.faults = {("/page", 2): [("status", 500), ("429", "30"), ("truncate", None)],
                    ("/page", 3): [("status", 502)]}

    extract = read(spark, ctx, rest_config(base, "/page", required=["name"]))

    assert_df_equality(extract.df, spark.createDataFrame([row(i) for i in (1, 2, 3, 4, 7)], ROWS),
                       ignore_row_order=True, ignore_nullable=True)
    assert write_quarantine(extract.rejected, ctx, "items", []) == 2
    quarantine = spark.read.format("delta").load(ctx.warehouse.quarantine("items")).select(
        "source_file", "reasons", "record")
    reason = "record does not fit the schema struct<id:bigint,name:string,updated_at:timestamp>"
    expected = spark.createDataFrame([
        (f"{base}/page?per_page=3&page=2 record 1", [reason],
         json.dumps(state.records[4], separators=(",", ":"))),
        (f"{base}/page?per_page=3&page=2 record 2", [reason], "42"),
    ], "source_file string, reasons array<string>, record string")
    assert_df_equality(quarantine, expected, ignore_row_order=True, ignore_nullable=True)
    # pages 1 and 3 at once; page 2 after 500, 429 and a truncated body; page 3 after a 502
    assert (extract.pages, extract.requests, extract.watermark) == (3, 7, None)
    staged = [json.loads(line) for line in Path(extract.staged_path, "pages.jsonl").read_text()
              .splitlines()]
    assert [(p["page"], p["url"], len(json.loads(p["body"])["data"])) for p in staged] == [
        (n, f"{base}/page?per_page=3&page={n}", size) for n, size in ((1, 3), (2, 3), (3, 1))]


@pytest.mark.parametrize("route", ["/offset", "/cursor", "/link"])
def test_pagination_styles_read_every_record_once(spark, api, ctx, route):
    state, base = api
    state.faults = {(route, 2): [("status", 500)], (route, 3): [("429", "0")]}

    extract = read(spark, ctx, rest_config(base, route))

    assert_df_equality(extract.df, spark.createDataFrame([row(i) for i in range(1, 8)], ROWS),
                       ignore_row_order=True, ignore_nullable=True)
    assert (extract.pages, extract.requests, extract.rejected.count()) == (3, 5, 0)


def test_incremental_sends_the_stored_watermark_and_returns_the_next(spark, api, ctx, monkeypatch):
    state, base = api
    monkeypatch.setenv("ITEMS_TOKEN", "s3cr3t")
    config = rest_config(base, "/cursor", auth=RestAuth(token_env="ITEMS_TOKEN"),
                         incremental=RestIncremental(param="since", field="updated_at"))
    stored = Watermark(job="api", source="items", column="updated_at",
                       value=dt.datetime(2026, 1, 1, 4))

    extract = read(spark, ctx, config, watermark=stored)

    assert_df_equality(extract.df, spark.createDataFrame([row(i) for i in (5, 6, 7)], ROWS),
                       ignore_row_order=True, ignore_nullable=True)
    assert extract.watermark == WatermarkRange(
        column="updated_at", low=dt.datetime(2026, 1, 1, 4), high=dt.datetime(2026, 1, 1, 7))
    assert state.requests == ["/cursor?since=2026-01-01T04%3A00%3A00"]
    assert state.auth == ["Bearer s3cr3t"]


def _load(spark, ctx, config: RestConfig, store: WatermarkStore, target: TargetConfig) -> None:
    """A job's run: read past the stored watermark, write the target, then advance."""
    extract = read(spark, ctx, config, watermark=store.get("api", "items"))
    write_target(spark, ctx, "items", target, extract.df)
    assert extract.watermark is not None and extract.watermark.high is not None
    store.advance("api", {"items": ("updated_at", extract.watermark.high)}, ctx.run_id)


def test_timeouts_exhaust_retries_and_keep_watermark(spark, api, ctx):
    """A good run, then a run against an API that never answers in time: bounded retries, an
    error naming the request, and the target and the watermark as the good run left them."""
    state, base = api
    store = WatermarkStore(spark, ctx.warehouse.records("state/watermarks"))
    target = TargetConfig(layer="bronze", table="items", mode="merge", keys=["id"])
    config = rest_config(base, "/page", incremental=RestIncremental(param="since",
                                                                    field="updated_at"),
                         retry=RestRetry(attempts=3, backoff_s=0.01), timeout_s=0.5)
    _load(spark, ctx, config, store, target)
    path = ctx.warehouse.table("bronze", "items")
    version = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").count()
    state.records.append(record(8))
    state.always = ("sleep", 1.5)
    state.requests.clear()

    with pytest.raises(ApiError) as caught:
        _load(spark, ctx, config, store, target)

    assert str(caught.value) == (
        f"source items: GET {base}/page?since=2026-01-01T07%3A00%3A00&per_page=3&page=1 failed "
        "after 3 attempts: timed out after 0.5 s")
    assert len(state.requests) == 3
    assert store.get("api", "items").value == dt.datetime(2026, 1, 1, 7)
    assert spark.sql(f"DESCRIBE HISTORY delta.`{path}`").count() == version
    assert_df_equality(spark.read.format("delta").load(path),
                       spark.createDataFrame([row(i) for i in range(1, 8)], ROWS),
                       ignore_row_order=True, ignore_nullable=True)


def test_a_server_that_keeps_failing_ends_the_run_with_the_endpoint_and_status(spark, api, ctx):
    state, base = api
    state.always = ("status", 503)

    with pytest.raises(ApiError) as caught:
        read(spark, ctx, rest_config(base, "/page", retry=RestRetry(attempts=3, backoff_s=0.01)))

    assert str(caught.value) == (
        f"source items: GET {base}/page?per_page=3&page=1 failed after 3 attempts: "
        "HTTP 503 Service Unavailable")
    assert len(state.requests) == 3
    assert not Path(ctx.warehouse.root, "staging").exists()


def test_a_client_error_is_not_retried(api, ctx, spark):
    state, base = api
    state.always = ("status", 404)

    with pytest.raises(ApiError, match=r"^source items: GET .*/link failed: HTTP 404 Not Found$"):
        read(spark, ctx, rest_config(base, "/link"))
    assert len(state.requests) == 1


def test_arguments_are_checked_before_any_request(api, ctx, spark):
    state, base = api
    config = rest_config(base, "/link", retry=RestRetry(attempts=0))

    with pytest.raises(ConfigError) as caught:
        read(spark, ctx, config)
    assert str(caught.value) == "sources.items.rest.retry.attempts: expected at least 1, got 0"
    assert state.requests == []


def test_a_missing_token_fails_before_any_request(api, ctx, spark, monkeypatch):
    state, base = api
    monkeypatch.delenv("ITEMS_TOKEN", raising=False)

    with pytest.raises(SourceError) as caught:
        read(spark, ctx, rest_config(base, "/link", auth=RestAuth(token_env="ITEMS_TOKEN")))
    assert str(caught.value) == (
        "source items: environment variable ITEMS_TOKEN (the API token) is not set")
    assert state.requests == []


def test_backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half():
    retry = RestRetry(backoff_s=1.0, max_backoff_s=5.0)
    ceilings = [1.0, 2.0, 4.0, 5.0, 5.0]
    for attempt, ceiling in enumerate(ceilings, start=1):
        delays = [backoff_delay(retry, attempt) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1


def test_retry_after_reads_seconds_and_http_dates():
    now = dt.datetime(2026, 11, 26, 3, 0, tzinfo=dt.UTC)
    assert retry_after("7") == 7.0
    assert retry_after("Thu, 26 Nov 2026 03:00:30 GMT", now) == 30.0
    assert (retry_after(None), retry_after("soon")) == (None, None)


def staged_run_folder(ctx: RunContext) -> Path:
    return Path(ctx.warehouse.root, "staging", "items", ctx.started_at.date().isoformat(), ctx.run_id)


def test_a_next_page_link_to_another_origin_is_refused_and_never_gets_the_token(
    spark, api, other_api, ctx, monkeypatch
):
    state, base = api
    other, elsewhere = other_api
    state.link_base = elsewhere
    monkeypatch.setenv("ITEMS_TOKEN", "s3cr3t")
    config = rest_config(base, "/link", auth=RestAuth(token_env="ITEMS_TOKEN"))

    with pytest.raises(ApiError) as caught:
        read(spark, ctx, config)

    assert str(caught.value) == (
        f"source items: refusing to follow the next-page link to {elsewhere}/link?p=2: another "
        f"origin than {base}, and the credentials go only there (set cross_origin: "
        "without_credentials to follow it without them)")
    assert (state.auth, other.requests) == (["Bearer s3cr3t"], [])
    assert not staged_run_folder(ctx).exists()  # page 1 was staged, then removed


def test_a_next_page_link_to_another_origin_is_followed_without_credentials_when_allowed(
    spark, api, other_api, ctx, monkeypatch
):
    state, base = api
    other, elsewhere = other_api
    state.link_base = elsewhere
    monkeypatch.setenv("ITEMS_TOKEN", "s3cr3t")
    config = rest_config(base, "/link", auth=RestAuth(token_env="ITEMS_TOKEN"),
                         headers={"X-Api-Key": "k3y"}, cross_origin="without_credentials")

    extract = read(spark, ctx, config)

    assert_df_equality(extract.df, spark.createDataFrame([row(i) for i in range(1, 8)], ROWS),
                       ignore_row_order=True, ignore_nullable=True)
    assert (state.requests, state.auth) == (["/link"], ["Bearer s3cr3t"])
    assert (other.requests, other.auth) == (["/link?p=2", "/link?p=3"], [None, None])
    staged = [json.loads(line)["url"] for line in
              Path(extract.staged_path, "pages.jsonl").read_text().splitlines()]
    assert staged == [f"{base}/link", f"{elsewhere}/link?p=2", f"{elsewhere}/link?p=3"]


def test_redirects_keep_the_credentials_at_the_configured_origin_only(
    spark, api, other_api, ctx, monkeypatch
):
    state, base = api
    other, elsewhere = other_api
    monkeypatch.setenv("ITEMS_TOKEN", "s3cr3t")
    config = dataclasses.replace(rest_config(base, "/link", auth=RestAuth(token_env="ITEMS_TOKEN")),
                                 url=f"{base}/moved")

    extract = read(spark, ctx, config)  # /moved -> /link on the same origin
    assert extract.df.count() == 7
    assert (state.requests[:2], state.auth[:2]) == (["/moved", "/link"], ["Bearer s3cr3t"] * 2)

    for target, reason in [
        (f"{elsewhere}/link", f"another origin than {base}, and the credentials go only there "
                              "(set cross_origin: without_credentials to follow it without them)"),
        ("file:///etc/passwd", "only http and https URLs are read"),
        (f"https://127.0.0.1:{base.rsplit(':', 1)[1]}/link",
         f"another origin than {base}, and the credentials go only there "
         "(set cross_origin: without_credentials to follow it without them)"),
    ]:
        state.redirect_to = target
        with pytest.raises(ApiError) as caught:
            read(spark, ctx, config)
        assert str(caught.value) == f"source items: refusing to follow a redirect to {target}: {reason}"
    assert other.requests == []


@pytest.mark.parametrize("fault", [None, ("unannounced", None)])
def test_an_answer_over_the_size_cap_fails_at_once(spark, api, ctx, fault):
    """Announced by Content-Length (refused before reading) or not (counted as it streams)."""
    state, base = api
    state.always = fault

    with pytest.raises(ApiError) as caught:
        read(spark, ctx, rest_config(base, "/link", max_response_bytes=100))

    assert str(caught.value) == (
        f"source items: GET {base}/link failed: the answer is larger than 100 bytes "
        "(max_response_bytes)")
    assert state.requests == ["/link"]


def test_an_answer_that_trickles_in_is_cut_at_the_read_s_deadline(spark, api, ctx):
    state, base = api
    state.always = ("trickle", 0.3)  # each byte within the timeout; the page would take ~60 s
    started = time.monotonic()

    with pytest.raises(ApiError) as caught:
        read(spark, ctx, rest_config(base, "/link", deadline_s=1.0))

    assert str(caught.value) == (
        f"source items: GET {base}/link stopped: the read took longer than its deadline of 1 s "
        "(deadline_s)")
    assert time.monotonic() - started < 20  # 1 s, and the session's start on a busy machine
    assert state.requests == ["/link"]


def test_waits_honour_retry_after_and_back_off_with_jitter(spark, api, ctx):
    state, base = api
    state.faults = {("/link", 1): [("429", "7"), ("status", 500)]}
    waits: list[float] = []
    retry = RestRetry(attempts=3, backoff_s=1.0, max_backoff_s=30.0, max_retry_after_s=120.0)

    extract = read(spark, ctx, rest_config(base, "/link", retry=retry), sleep=waits.append)

    assert (extract.pages, extract.requests) == (3, 5)
    assert waits[0] == 7.0  # the 429's Retry-After
    assert 1.0 <= waits[1] <= 2.0  # retry 2: half of 1 * 2^1 plus jitter


@pytest.mark.parametrize(("change", "key", "message"), [
    ({"max_response_bytes": 0}, "max_response_bytes", "expected a number of bytes >= 1, got 0"),
    ({"deadline_s": float("nan")}, "deadline_s", "expected a positive number of seconds, got nan"),
    ({"url": "file:///etc/passwd"}, "url", "expected an http(s) URL, got 'file:///etc/passwd'"),
])
def test_limits_are_checked_before_any_request(spark, api, ctx, change, key, message):
    state, base = api
    config = dataclasses.replace(rest_config(base, "/link"), **change)

    with pytest.raises(ConfigError) as caught:
        read(spark, ctx, config)

    assert str(caught.value) == f"sources.items.rest.{key}: {message}"
    assert state.requests == []
