"""JSON REST APIs, page by page, with bounded retries (`read_rest`).

What a read does, in order:

1. **fetch** (driver, one ``requests`` session): every page of the endpoint, following the
   configured pagination (page number, offset/limit, cursor token, ``Link: <...>; rel="next"``).
   Every request has the configured timeout. Connection errors, timeouts, 429 and 5xx answers
   are retried by urllib3's ``Retry`` (`RestRetryPolicy`), 2xx bodies that are not JSON or that
   break off by the reader, all within ``retry.attempts`` attempts per page: before retry n it
   waits `backoff_delay` (``backoff_s * 2^(n-1)`` capped at ``max_backoff_s``, with jitter),
   or an answer's ``Retry-After`` (capped at ``retry.max_retry_after_s``). Other 4xx answers
   fail at once. When a request still fails, `ApiError` names the source, the request URL and
   the last status or failure; nothing is kept in the staging area, so the stored watermark
   stays where it was.
2. **stage**: each raw body lands in the staging area as it arrives, as one JSON line of
   ``pages.jsonl`` (``page``, ``url``, ``body``), and a ``_manifest.json`` is written after the
   last page, before any parsing. At most one page is held in memory.
3. **parse** (Spark, from the staged file): the records at ``records_path`` of each body are
   parsed with the configured schema. A record that is not an object of that schema, or has a
   null in a ``required`` column, becomes a rejected row (``_errors`` reasons, ``_record`` the
   raw JSON, ``_source_file`` the page URL and record index) for `etl.writers.quarantine`.

Untrusted answers are bounded: only ``http`` and ``https`` URLs are requested (never ``file:``);
an answer larger than ``max_response_bytes`` (default 50 MB, counted as it streams in, after
decompression) fails the read, as does a read (every page, retry and wait) longer than
``deadline_s`` (default one hour). The credentials (the ``auth`` header and ``headers``) are
sent only to the origin (scheme, host and port) of the configured ``url``: redirects are
followed by the reader itself (at most 10), and a redirect or a next-page link to another origin
is refused with `ApiError` (``cross_origin: refuse``, the default) or requested without them
(``cross_origin: without_credentials``). URLs in errors and logs have their credentials masked
(`etl.logs.redact`).

Incremental reads send the stored watermark in ``incremental.param``; the greatest
``incremental.field`` of the valid records is the next watermark, to store with
`etl.watermarks.WatermarkStore.advance` only after the targets have committed.

Example::

    extract = read_rest(spark, config.source("tickets").rest, source_name="tickets",
                        staging=Staging(spark, ctx.warehouse.root + "/staging"), ctx=ctx,
                        watermark=store.get(ctx.job, "tickets"))
    write_target(spark, ctx, "bronze_tickets", config.target("bronze_tickets"), extract.df)
    write_quarantine(extract.rejected, ctx, "tickets", [])
    store.advance(ctx.job, {"tickets": (extract.watermark.column, extract.watermark.high)}, ...)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import json
import math
import os
import random
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import requests
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util.retry import Retry

from etl import storage
from etl.config import RestAuth, RestConfig, RestIncremental, RestRetry
from etl.context import RunContext
from etl.errors import ApiError, ConfigError, SourceError
from etl.logs import get_logger, redact
from etl.readers.jdbc import WatermarkRange, parse_lookback, read_secret
from etl.readers.json_records import json_fields, parse_schema
from etl.staging import MANIFEST, Staging
from etl.transforms.cleaning import ERRORS, RAW_RECORD, split_rejected
from etl.transforms.functions import values_where
from etl.watermarks import Watermark, WatermarkValue, format_value, parse_value

PAGES_FILE = "pages.jsonl"
_PAGE_SCHEMA = "page int, url string, body string"
_NEXT_LINK = re.compile(r'<(?P<url>[^>]*)>\s*;[^,]*\brel="?next"?', re.IGNORECASE)
_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECTS = (301, 302, 303, 307, 308)
#: At most this many redirects for one page.
MAX_REDIRECTS = 10
_CHUNK = 64 * 1024
Sleep = Callable[[float], None]
_log = get_logger("etl.readers")


@dataclass(frozen=True)
class Page:
    """One page as the API sent it: its number (from 1), the URL asked, the raw body."""

    number: int
    url: str
    body: str


@dataclass(frozen=True)
class RestExtract:
    """What `read_rest` read: valid records (lazy, typed by the schema), rejected records (with
    ``_errors``, ``_record``, ``_source_file``), where the raw pages are staged, the number of
    pages and HTTP requests, the watermark range (None for a full read), and how many records
    were rejected for a watermark past the run's start plus ``incremental.max_skew``."""

    source: str
    df: DataFrame
    rejected: DataFrame
    staged_path: str
    pages: int
    requests: int
    watermark: WatermarkRange | None
    beyond: int = 0


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------


def auth_headers(
    source_name: str, auth: RestAuth | None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The auth header of the source (empty without ``auth``). Errors name the variable or the
    secret, never a value."""
    if auth is None:
        return {}
    environ = os.environ if environ is None else environ
    if auth.secret_id:
        text = read_secret(source_name, auth.secret_id, auth.region)
        token = text
        if auth.secret_key:
            try:
                token = str(json.loads(text)[auth.secret_key])
            except (ValueError, KeyError, TypeError):
                raise SourceError(f"source {source_name}: secret {auth.secret_id} is not JSON "
                                  f"with key {auth.secret_key!r}") from None
    else:
        token = environ.get(auth.token_env, "")
        if not token:
            raise SourceError(f"source {source_name}: environment variable {auth.token_env} "
                              "(the API token) is not set")
    return {auth.header: f"{auth.scheme} {token}" if auth.scheme else token}


def backoff_delay(retry: RestRetry, attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (from 1): half of
    ``backoff_s * 2^(attempt-1)`` (capped at ``max_backoff_s``) plus a random share of the
    other half, so clients that failed together do not retry together."""
    ceiling = min(retry.max_backoff_s, retry.backoff_s * 2 ** (attempt - 1))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (seconds or an HTTP date); None when absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - now).total_seconds())


def origin(url: str) -> tuple[str, str, int]:
    """The origin of ``url``: (scheme, host, port), the port made explicit."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme, 0)


class Attempts:
    """The state of one read's requests: failed attempts of the current page (`start_page`
    resets them), the read's deadline, and the waits between attempts (through ``sleep``,
    never past the deadline)."""

    def __init__(self, source_name: str, rest: RestConfig, *, sleep: Sleep = time.sleep,
                 rng: random.Random | None = None, clock: Callable[[], float] = time.monotonic):
        self.source = source_name
        self.rest = rest
        self.sleep = sleep
        self.rng = rng
        self.clock = clock
        self.deadline = clock() + rest.deadline_s
        self.failures = 0
        self.url = rest.url

    def start_page(self, url: str) -> None:
        self.failures = 0
        self.url = url

    def remaining(self) -> float:
        """Seconds left before the deadline; `ApiError` when there are none."""
        left = self.deadline - self.clock()
        if left <= 0:
            raise self.past_deadline()
        return left

    def past_deadline(self) -> ApiError:
        return ApiError(f"source {self.source}: GET {redact(self.url)} stopped: the read took "
                        f"longer than its deadline of {self.rest.deadline_s:g} s (deadline_s)")

    def exhausted(self) -> bool:
        return self.failures >= self.rest.retry.attempts

    def wait(self, seconds: float | None, failure: str) -> None:
        """Wait before the next attempt: ``seconds`` (a ``Retry-After``, capped at
        ``retry.max_retry_after_s``), else `backoff_delay` of the failures so far."""
        retry = self.rest.retry
        delay = (min(seconds, retry.max_retry_after_s) if seconds is not None
                 else backoff_delay(retry, self.failures, self.rng))
        if delay >= self.remaining():
            raise self.past_deadline()
        _log.warning("request failed; retrying", source=self.source, url=self.url,
                     failure=failure, attempt=self.failures, delay_s=round(delay, 3))
        if delay > 0:
            self.sleep(delay)


class RestRetryPolicy(Retry):
    """urllib3's ``Retry`` with the meaning of `RestRetry`: connection errors, timeouts, 429 and
    5xx answers are retried while the page's attempts (shared with the reader's own retries of
    unreadable bodies, in `Attempts`) last; the waits are `Attempts.wait` (a capped
    ``Retry-After`` or `backoff_delay`). Redirects are left to the reader."""

    def __init__(self, *args: Any, attempts: Attempts | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.attempts = attempts

    @classmethod
    def of(cls, attempts: Attempts) -> RestRetryPolicy:
        return cls(
            total=None, connect=None, read=None, status=None, other=None, redirect=None,
            status_forcelist=[429, *range(500, 600)], allowed_methods=["GET"],
            raise_on_status=False, raise_on_redirect=False, respect_retry_after_header=True,
            backoff_factor=0, attempts=attempts,
        )

    def new(self, **kw: Any) -> RestRetryPolicy:
        retry = super().new(**kw)
        retry.attempts = self.attempts
        return retry

    def increment(self, *args: Any, **kwargs: Any) -> RestRetryPolicy:
        assert self.attempts is not None
        self.attempts.failures += 1
        return super().increment(*args, **kwargs)

    def is_exhausted(self) -> bool:
        assert self.attempts is not None
        return self.attempts.exhausted()

    def sleep(self, response: Any = None) -> None:
        assert self.attempts is not None
        last = self.history[-1] if self.history else None
        if last is not None and last.status is not None:
            failure = f"HTTP {last.status}"
        else:
            failure = describe_failure(last.error if last else None, self.attempts.rest.timeout_s)
        asked = retry_after(response.headers.get("Retry-After")) if response is not None else None
        self.attempts.wait(asked, failure)


def describe_failure(exc: BaseException | None, timeout_s: float) -> str:
    """A short description of a request that raised ``exc``: never headers, and a URL only
    with its credentials masked."""
    reason: BaseException | None = exc
    for _ in range(8):  # requests' error -> urllib3's MaxRetryError -> its reason
        inner = reason.args[0] if reason is not None and reason.args else None
        if isinstance(reason, MaxRetryError):
            inner = reason.reason
        if not isinstance(inner, BaseException):
            break
        reason = inner
    if reason is None:
        return "no answer"
    if isinstance(reason, NewConnectionError):
        text = str(reason).partition("Failed to establish a new connection: ")[2] or str(reason)
        return f"cannot connect: {redact(text)}"
    if isinstance(reason, (Urllib3Timeout, ConnectTimeoutError, requests.Timeout, TimeoutError)):
        return f"timed out after {timeout_s:g} s"
    return redact(f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__)


def _headers_for(url: str, headers: Mapping[str, str], rest: RestConfig, source_name: str,
                 how: str) -> dict[str, str]:
    """The headers of a request to ``url`` reached by ``how`` (the configured URL, a redirect,
    a next-page link): all of them at the configured origin; elsewhere none but ``Accept``
    (``cross_origin: without_credentials``), or `ApiError` (``refuse``). Only http(s)."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in _SCHEMES:
        raise ApiError(f"source {source_name}: refusing to follow {how} to {redact(url)}: only "
                       "http and https URLs are read")
    plain = {"Accept": "application/json"}
    if origin(url) == origin(rest.url):
        return {**plain, **headers}
    if rest.cross_origin == "without_credentials":
        return plain
    home = "{}://{}:{}".format(*origin(rest.url))
    raise ApiError(
        f"source {source_name}: refusing to follow {how} to {redact(url)}: another origin than "
        f"{home}, and the credentials go only there (set cross_origin: without_credentials to "
        "follow it without them)"
    )


def fetch(
    session: requests.Session,
    source_name: str,
    url: str,
    headers: Mapping[str, str],
    rest: RestConfig,
    attempts: Attempts,
    *,
    how: str = "the configured URL",
) -> tuple[str, Any, str | None, int, str]:
    """GET ``url`` with retries and the reader's own redirects; return the body, its JSON, the
    ``Link`` header, the number of attempts made and the URL that answered. Raises `ApiError`
    naming the URL and the last status or failure, or the limit that was passed."""
    attempts.start_page(url)
    current, hops, last = url, 0, ""
    while True:
        send = _headers_for(current, headers, rest, source_name, how)
        timeout = min(rest.timeout_s, attempts.remaining())
        try:
            with session.get(current, headers=send, timeout=timeout, stream=True,
                             allow_redirects=False) as response:
                status, reason = response.status_code, response.reason
                location = response.headers.get("Location")
                if status in _REDIRECTS and location:
                    hops += 1
                    if hops > MAX_REDIRECTS:
                        raise ApiError(f"source {source_name}: GET {redact(url)} failed: more "
                                       f"than {MAX_REDIRECTS} redirects")
                    current, how = urllib.parse.urljoin(current, location), "a redirect"
                    continue
                body = _read_body(response, source_name, current, rest, attempts) \
                    if status < 400 else None
                link = response.headers.get("Link")
        except requests.RequestException as exc:
            if not (exc.args and isinstance(exc.args[0], MaxRetryError)):
                attempts.failures += 1  # broke off while reading the body: not urllib3's count
            last = describe_failure(exc, rest.timeout_s)
        else:
            if status >= 400:
                last = f"HTTP {status} {reason}"
                if status < 500 and status != 429:
                    raise ApiError(f"source {source_name}: GET {redact(current)} failed: {last}")
                # urllib3 retried it as long as the attempts lasted
                break
            assert body is not None
            try:
                return body, json.loads(body), link, attempts.failures + 1, current
            except ValueError:
                attempts.failures += 1
                last = f"the answer is not JSON ({len(body)} bytes)"
        if attempts.exhausted():
            break
        attempts.wait(None, last)
    raise ApiError(f"source {source_name}: GET {redact(current)} failed after "
                   f"{attempts.failures} attempts: {last}")


def _read_body(response: requests.Response, source_name: str, url: str, rest: RestConfig,
               attempts: Attempts) -> str:
    """The body, streamed: `ApiError` as soon as it passes ``max_response_bytes`` (decoded
    size; an announced ``Content-Length`` over it fails before reading) or the deadline. A
    timer shuts the connection down at the deadline, so an answer that trickles in (each read
    within the timeout) cannot hold the read past it."""
    cap = rest.max_response_bytes
    too_large = ApiError(f"source {source_name}: GET {redact(url)} failed: the answer is larger "
                         f"than {cap} bytes (max_response_bytes)")
    announced = response.headers.get("Content-Length", "")
    if announced.isdigit() and int(announced) > cap:
        raise too_large
    expired = threading.Event()
    try:
        fd: int | None = response.raw.fileno()
    except (OSError, ValueError):
        fd = None

    def expire() -> None:
        expired.set()
        if fd is None:
            return
        # a shutdown wakes a read blocked on the socket (a close from this thread would not)
        with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as twin:
            twin.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(attempts.remaining(), expire)
    timer.daemon = True
    timer.start()
    data = bytearray()
    try:
        for chunk in response.iter_content(chunk_size=_CHUNK):
            data += chunk
            if len(data) > cap:
                raise too_large
    except (requests.RequestException, OSError):
        if expired.is_set():
            raise attempts.past_deadline() from None
        raise
    finally:
        timer.cancel()
    if expired.is_set():
        raise attempts.past_deadline()
    return data.decode("utf-8", errors="replace")


def _at(data: Any, dotted: str) -> Any:
    """The value at a dotted path of a JSON document (None when a step is missing)."""
    for part in filter(None, dotted.split(".")):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def with_params(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` added to (or replacing those of) its query string."""
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    query.update(params)
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _watermark_param(value: WatermarkValue) -> str:
    return value.isoformat() if isinstance(value, (dt.datetime, dt.date)) else str(value)


def fetch_pages(
    source_name: str,
    rest: RestConfig,
    *,
    since: WatermarkValue | None = None,
    environ: Mapping[str, str] | None = None,
    sleep: Sleep = time.sleep,
) -> Iterator[tuple[Page, int]]:
    """Yield every page of the endpoint with the attempts it took, following the pagination.

    Pages are fetched one after the other on one ``requests`` session whose adapters retry
    with `RestRetryPolicy`; a page that still fails after its retries, or passes a limit
    (size, deadline, origin), raises `ApiError` (the pages before it are not used by
    `read_rest`)."""
    headers = {**rest.headers, **auth_headers(source_name, rest.auth, environ)}
    attempts = Attempts(source_name, rest, sleep=sleep)
    paging = rest.pagination
    params = dict(rest.params)
    if rest.incremental is not None and since is not None:
        params[rest.incremental.param] = _watermark_param(since)
    if paging.style in ("page", "offset"):
        params[paging.size_param] = str(paging.page_size)
    url: str | None = with_params(rest.url, params)
    how = "the configured URL"
    number = 0
    with requests.Session() as session:
        adapter = HTTPAdapter(max_retries=RestRetryPolicy.of(attempts))
        for scheme in _SCHEMES:
            session.mount(f"{scheme}://", adapter)
        while url is not None:
            number += 1
            if number > paging.max_pages:
                raise ApiError(f"source {source_name}: more than {paging.max_pages} pages from "
                               f"{redact(rest.url)} (raise pagination.max_pages)")
            if paging.style == "page":
                url = with_params(url, {paging.page_param: str(paging.start_page + number - 1)})
            elif paging.style == "offset":
                url = with_params(url, {paging.offset_param: str((number - 1) * paging.page_size)})
            body, data, link, tries, answered = fetch(session, source_name, url, headers, rest,
                                                      attempts, how=how)
            yield Page(number=number, url=url, body=body), tries
            records = _at(data, rest.records_path)
            if not isinstance(records, list):
                raise ApiError(f"source {source_name}: GET {redact(url)}: no list of records at "
                               f"{rest.records_path or 'the top of the body'!r}")
            if paging.style in ("page", "offset"):
                url = url if len(records) >= paging.page_size else None
            elif paging.style == "cursor":
                cursor = _at(data, paging.cursor_path)
                url = with_params(url, {paging.cursor_param: str(cursor)}) if cursor else None
            elif paging.style == "link":
                match = _NEXT_LINK.search(link or "")
                url = urllib.parse.urljoin(answered, match["url"]) if match else None
                how = "the next-page link"
            else:
                url = None


# --------------------------------------------------------------------------------------------
# Staging and parsing
# --------------------------------------------------------------------------------------------


def stage_pages(
    spark: SparkSession, staging: Staging, source_name: str, ctx: RunContext,
    pages: Iterator[tuple[Page, int]], manifest: Mapping[str, Any],
) -> tuple[str, int, int]:
    """Write each page as a JSON line as it arrives (one page in memory at a time; its URL with
    any credential in it masked), then the manifest, under the run's staging folder; return the
    folder, the pages and the requests.
    When ``pages`` raises, nothing is kept: the run's folder is removed (a partial extract is
    not an extract) and the error goes on."""
    path = staging.path(source_name, ctx.started_at.date(), ctx.run_id)
    count = requests_made = 0
    try:
        with ExitStack() as stack:
            write: Callable[[str], None] | None = None
            for page, tries in pages:
                if write is None:  # opened with the first page: a failed first request stages nothing
                    write = stack.enter_context(storage.text_stream(spark, f"{path}/{PAGES_FILE}"))
                line = {"page": page.number, "url": redact(page.url), "body": page.body}
                write(json.dumps(line) + "\n")
                count += 1
                requests_made += tries
    except BaseException:
        if count:
            storage.delete(spark, path)
        raise
    content = {**manifest, "requests": requests_made, "source": source_name,
               "run_id": ctx.run_id, "pages": count}
    storage.write_text(spark, f"{path}/{MANIFEST}", json.dumps(content, default=str))
    return path, count, requests_made


def parse_pages(
    pages: DataFrame, schema: T.StructType, records_path: str, required: list[str],
    extra: str = "rescue",
) -> DataFrame:
    """From staged pages (``page``, ``url``, ``body``) to one row per record: the schema's
    columns (with ``_rescued_data`` for the fields it does not know, per ``extra``: see
    `etl.readers.json_records.json_fields`) plus ``_errors`` (why the record does not fit),
    ``_record`` (its raw JSON) and ``_source_file`` (``<url> record <index>``)."""
    body = F.col("body")
    listed = F.get_json_object(body, "$." + records_path) if records_path else body
    records = pages.select(
        "url", F.posexplode(F.from_json(listed, "array<string>")).alias("index", RAW_RECORD)
    )
    columns, reasons = json_fields(F.col(RAW_RECORD), schema, required, extra)
    return records.select(
        *columns,
        reasons.alias(ERRORS),
        F.col(RAW_RECORD),
        F.format_string("%s record %d", "url", "index").alias("_source_file"),
    )


def _check_arguments(source_name: str, rest: RestConfig) -> None:
    """What `etl.config` checks at load time, again for a `RestConfig` built in code, and the
    limits (size, deadline, origin policy) load time does not check yet."""
    key = f"sources.{source_name}.rest"

    def finite_positive(value: float) -> bool:
        return isinstance(value, (int, float)) and math.isfinite(value) and value > 0

    checks = [
        (urllib.parse.urlsplit(rest.url).scheme.lower() in _SCHEMES
         and bool(urllib.parse.urlsplit(rest.url).hostname), "url",
         f"expected an http(s) URL, got {redact(rest.url)!r}"),
        (rest.retry.attempts >= 1, "retry.attempts", f"expected at least 1, got "
                                                     f"{rest.retry.attempts}"),
        (finite_positive(rest.timeout_s), "timeout_s",
         f"expected a positive number, got {rest.timeout_s}"),
        (rest.pagination.page_size >= 1, "pagination.page_size",
         f"expected at least 1, got {rest.pagination.page_size}"),
        (not isinstance(rest.max_response_bytes, bool) and isinstance(rest.max_response_bytes, int)
         and rest.max_response_bytes >= 1, "max_response_bytes",
         f"expected a number of bytes >= 1, got {rest.max_response_bytes!r}"),
        (finite_positive(rest.deadline_s), "deadline_s",
         f"expected a positive number of seconds, got {rest.deadline_s!r}"),
        (rest.cross_origin in ("refuse", "without_credentials"), "cross_origin",
         f"expected 'refuse' or 'without_credentials', got {rest.cross_origin!r}"),
    ]
    for ok, sub, message in checks:
        if not ok:
            raise ConfigError(message, key=f"{key}.{sub}")


def read_rest(
    spark: SparkSession,
    rest: RestConfig,
    *,
    source_name: str,
    staging: Staging,
    ctx: RunContext,
    watermark: Watermark | None = None,
    environ: Mapping[str, str] | None = None,
    sleep: Sleep = time.sleep,
    extra: str = "rescue",
    prepare_pages: Callable[[str], None] | None = None,
) -> RestExtract:
    """Fetch every page of a REST source, stage the raw pages, parse them in Spark.

    The schema and the stored watermark are checked before the first request. Every page is
    fetched exactly once (retries repeat a failed request, never a page that succeeded), so
    each record the API serves appears once in ``df`` or ``rejected``; ``extra`` says what
    fields the schema does not know become (`parse_pages`). Raises `ApiError` when
    a request keeps failing or passes a limit (size, deadline, origin); nothing stays staged.
    ``prepare_pages`` is called with the staged pages file before it is parsed (it may rewrite
    it: `etl.erasure.ErasedValues.clean_pages`)."""
    _check_arguments(source_name, rest)
    references = [("required", c) for c in rest.required]
    if rest.incremental is not None:
        references.append(("incremental.field", rest.incremental.field))
    schema = parse_schema(rest.schema, f"sources.{source_name}.rest", references)
    since: WatermarkValue | None = None
    if rest.incremental is not None and watermark is not None:
        if watermark.column != rest.incremental.field:
            raise SourceError(
                f"source {source_name}: the stored watermark is on {watermark.column!r}, the "
                f"configuration names {rest.incremental.field!r} (reset it with `etl state reset`)"
            )
        since = watermark.value
    pages = fetch_pages(source_name, rest, since=since, environ=environ, sleep=sleep)
    manifest = {"url": redact(rest.url), "since": since}
    path, count, requests_made = stage_pages(spark, staging, source_name, ctx, pages, manifest)
    if prepare_pages is not None and count:
        prepare_pages(f"{path}/{PAGES_FILE}")
    staged = spark.read.text(f"{path}/{PAGES_FILE}").select(
        F.from_json("value", _PAGE_SCHEMA).alias("p")).select("p.*")
    rows = parse_pages(staged, schema, rest.records_path, rest.required, extra)
    beyond = 0
    if rest.incremental is not None and rest.incremental.kind != "integer":
        rows, beyond = _bound_watermark(rows, rest.incremental, ctx.started_at)
    valid, rejected = split_rejected(rows)
    range_ = None
    if rest.incremental is not None:
        field = rest.incremental.field
        top = valid.agg(F.max(field).cast("string")).first()
        high = top[0] if top is not None else None
        range_ = WatermarkRange(
            column=field, low=since,
            high=parse_value(high, rest.incremental.kind) if high is not None else None,
        )
    return RestExtract(
        source=source_name, df=valid.drop(RAW_RECORD, "_source_file"), rejected=rejected,
        staged_path=path, pages=count, requests=requests_made, watermark=range_, beyond=beyond,
    )


def _bound_watermark(rows: DataFrame, incremental: RestIncremental, started_at: dt.datetime
                     ) -> tuple[DataFrame, int]:
    """Records whose ``incremental.field`` is more than ``max_skew`` after ``started_at`` get a
    reason (they are quarantined and the watermark stays below them); returns the rows and how
    many such records there are."""

    field = incremental.field
    allowed = parse_lookback(incremental.max_skew)
    if not isinstance(allowed, dt.timedelta):
        raise ConfigError(f"expected a duration such as '1 day', got {incremental.max_skew!r}",
                          key="incremental.max_skew")
    limit = started_at + allowed
    bound: Any = limit if incremental.kind == "timestamp" else limit.date()
    past = F.col(field) > F.lit(bound)
    reason = F.format_string(
        f"{field}: %s is after the run's start plus the allowed skew of {incremental.max_skew} "
        f"({format_value(bound)}): not loaded, and the watermark does not move past it",
        F.col(field).cast("string"))
    counted = rows.agg(F.sum(F.when(past, 1).otherwise(0))).first()
    flagged = rows.withColumn(ERRORS, F.concat(F.col(ERRORS), values_where([(past, reason)])))
    return flagged, int(counted[0] or 0) if counted is not None else 0


__all__ = [
    "MAX_REDIRECTS",
    "PAGES_FILE",
    "Attempts",
    "Page",
    "RestExtract",
    "RestRetryPolicy",
    "auth_headers",
    "backoff_delay",
    "describe_failure",
    "fetch",
    "fetch_pages",
    "origin",
    "parse_pages",
    "read_rest",
    "retry_after",
    "stage_pages",
    "with_params",
]
