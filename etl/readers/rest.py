"""JSON REST APIs, page by page, with bounded retries (`read_rest`).

What a read does, in order:

1. **fetch** (driver): every page of the endpoint, following the configured pagination (page
   number, offset/limit, cursor token, ``Link: <...>; rel="next"``). Every request has the
   configured timeout. Connection errors, timeouts, 5xx answers and 2xx bodies that are not JSON
   are retried up to ``retry.attempts`` times with exponential backoff and jitter; a 429 waits
   for its ``Retry-After`` (capped at ``retry.max_retry_after_s``). Other 4xx answers fail at
   once. When a request still fails, `ApiError` names the source, the request URL and the last
   status or failure; nothing has been written, so the stored watermark stays where it was.
2. **stage**: the raw bodies land in the staging area as JSON lines (``pages.jsonl``, one line
   per page: ``page``, ``url``, ``body``) with a ``_manifest.json``, before any parsing.
3. **parse** (Spark, from the staged file): the records at ``records_path`` of each body are
   parsed with the configured schema. A record that is not an object of that schema, or has a
   null in a ``required`` column, becomes a rejected row (``_errors`` reasons, ``_record`` the
   raw JSON, ``_source_file`` the page URL and record index) for `etl.writers.quarantine`.

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

import datetime as dt
import email.utils
import http.client
import json
import os
import random
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from etl import storage
from etl.config import RestAuth, RestConfig, RestRetry
from etl.context import RunContext
from etl.errors import ApiError, ConfigError, SourceError
from etl.readers.jdbc import WatermarkRange, read_secret
from etl.readers.json_records import json_fields, parse_schema
from etl.staging import MANIFEST, Staging
from etl.transforms.cleaning import ERRORS, RAW_RECORD, split_rejected
from etl.watermarks import Watermark, WatermarkValue, parse_value

PAGES_FILE = "pages.jsonl"
_PAGE_SCHEMA = "page int, url string, body string"
_NEXT_LINK = re.compile(r'<(?P<url>[^>]*)>\s*;[^,]*\brel="?next"?', re.IGNORECASE)
Sleep = Callable[[float], None]


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
    pages and HTTP requests, and the watermark range (None for a full read)."""

    source: str
    df: DataFrame
    rejected: DataFrame
    staged_path: str
    pages: int
    requests: int
    watermark: WatermarkRange | None


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


def _failure(exc: BaseException, timeout_s: float) -> str:
    """A short description of a request that raised ``exc`` (never includes headers)."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError):
        return f"timed out after {timeout_s:g} s"
    return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__


def fetch(
    source_name: str,
    url: str,
    headers: Mapping[str, str],
    rest: RestConfig,
    *,
    sleep: Sleep = time.sleep,
    rng: random.Random | None = None,
) -> tuple[str, Any, str | None, int]:
    """GET ``url`` with retries; return the body, its JSON, the ``Link`` header and the number
    of attempts made. Raises `ApiError` naming the URL and the last status or failure."""
    retry = rest.retry
    last = ""
    for attempt in range(1, retry.attempts + 1):
        wait = backoff_delay(retry, attempt, rng)
        request = urllib.request.Request(url, headers={"Accept": "application/json", **headers})
        try:
            with urllib.request.urlopen(request, timeout=rest.timeout_s) as response:
                body = response.read().decode("utf-8", errors="replace")
                link = response.headers.get("Link")
            try:
                return body, json.loads(body), link, attempt
            except ValueError:
                last = f"the answer is not JSON ({len(body)} bytes)"
        except urllib.error.HTTPError as exc:
            status, reason, asked = exc.code, exc.reason, exc.headers.get("Retry-After")
            exc.close()
            last = f"HTTP {status} {reason}"
            if status == 429:
                seconds = retry_after(asked)
                if seconds is not None:
                    wait = min(seconds, retry.max_retry_after_s)
            elif status < 500:
                raise ApiError(f"source {source_name}: GET {url} failed: {last}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError,
                http.client.HTTPException) as exc:
            last = _failure(exc, rest.timeout_s)
        if attempt < retry.attempts:
            sleep(wait)
    raise ApiError(
        f"source {source_name}: GET {url} failed after {retry.attempts} attempts: {last}"
    )


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

    Pages are fetched one after the other; a page that still fails after its retries raises
    `ApiError` (the pages before it are not used by `read_rest`)."""
    headers = {**rest.headers, **auth_headers(source_name, rest.auth, environ)}
    paging = rest.pagination
    params = dict(rest.params)
    if rest.incremental is not None and since is not None:
        params[rest.incremental.param] = _watermark_param(since)
    if paging.style in ("page", "offset"):
        params[paging.size_param] = str(paging.page_size)
    url: str | None = with_params(rest.url, params)
    number = 0
    while url is not None:
        number += 1
        if number > paging.max_pages:
            raise ApiError(f"source {source_name}: more than {paging.max_pages} pages from "
                           f"{rest.url} (raise pagination.max_pages)")
        if paging.style == "page":
            url = with_params(url, {paging.page_param: str(paging.start_page + number - 1)})
        elif paging.style == "offset":
            url = with_params(url, {paging.offset_param: str((number - 1) * paging.page_size)})
        body, data, link, attempts = fetch(source_name, url, headers, rest, sleep=sleep)
        yield Page(number=number, url=url, body=body), attempts
        records = _at(data, rest.records_path)
        if not isinstance(records, list):
            raise ApiError(f"source {source_name}: GET {url}: no list of records at "
                           f"{rest.records_path or 'the top of the body'!r}")
        if paging.style in ("page", "offset"):
            url = url if len(records) >= paging.page_size else None
        elif paging.style == "cursor":
            cursor = _at(data, paging.cursor_path)
            url = with_params(url, {paging.cursor_param: str(cursor)}) if cursor else None
        elif paging.style == "link":
            match = _NEXT_LINK.search(link or "")
            url = urllib.parse.urljoin(url, match["url"]) if match else None
        else:
            url = None


# --------------------------------------------------------------------------------------------
# Staging and parsing
# --------------------------------------------------------------------------------------------


def stage_pages(
    spark: SparkSession, staging: Staging, source_name: str, ctx: RunContext,
    pages: list[Page], manifest: Mapping[str, Any],
) -> str:
    """Write the raw pages as JSON lines and the manifest under the run's staging folder;
    return the folder."""
    path = staging.path(source_name, ctx.started_at.date(), ctx.run_id)
    lines = "".join(
        json.dumps({"page": p.number, "url": p.url, "body": p.body}) + "\n" for p in pages
    )
    storage.write_text(spark, f"{path}/{PAGES_FILE}", lines)
    content = {**manifest, "source": source_name, "run_id": ctx.run_id, "pages": len(pages)}
    storage.write_text(spark, f"{path}/{MANIFEST}", json.dumps(content, default=str))
    return path


def parse_pages(
    pages: DataFrame, schema: T.StructType, records_path: str, required: list[str]
) -> DataFrame:
    """From staged pages (``page``, ``url``, ``body``) to one row per record: the schema's
    columns plus ``_errors`` (why the record does not fit), ``_record`` (its raw JSON) and
    ``_source_file`` (``<url> record <index>``)."""
    body = F.col("body")
    listed = F.get_json_object(body, "$." + records_path) if records_path else body
    records = pages.select(
        "url", F.posexplode(F.from_json(listed, "array<string>")).alias("index", RAW_RECORD)
    )
    columns, reasons = json_fields(F.col(RAW_RECORD), schema, required)
    return records.select(
        *columns,
        reasons.alias(ERRORS),
        F.col(RAW_RECORD),
        F.format_string("%s record %d", "url", "index").alias("_source_file"),
    )


def _check_arguments(source_name: str, rest: RestConfig) -> None:
    """What `etl.config` checks at load time, again for a `RestConfig` built in code."""
    key = f"sources.{source_name}.rest"
    checks = [
        (rest.url.startswith(("http://", "https://")), "url", f"expected an http(s) URL, got "
                                                             f"{rest.url!r}"),
        (rest.retry.attempts >= 1, "retry.attempts", f"expected at least 1, got "
                                                     f"{rest.retry.attempts}"),
        (rest.timeout_s > 0, "timeout_s", f"expected a positive number, got {rest.timeout_s}"),
        (rest.pagination.page_size >= 1, "pagination.page_size",
         f"expected at least 1, got {rest.pagination.page_size}"),
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
) -> RestExtract:
    """Fetch every page of a REST source, stage the raw pages, parse them in Spark.

    The schema and the stored watermark are checked before the first request. Every page is
    fetched exactly once (retries repeat a failed request, never a page that succeeded), so
    each record the API serves appears once in ``df`` or ``rejected``. Raises `ApiError` when
    a request keeps failing, before anything is staged."""
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
    pages, requests = [], 0
    for page, attempts in fetch_pages(source_name, rest, since=since, environ=environ,
                                      sleep=sleep):
        pages.append(page)
        requests += attempts
    manifest = {"url": rest.url, "requests": requests, "since": since}
    path = stage_pages(spark, staging, source_name, ctx, pages, manifest)
    staged = spark.read.text(f"{path}/{PAGES_FILE}").select(
        F.from_json("value", _PAGE_SCHEMA).alias("p")).select("p.*")
    rows = parse_pages(staged, schema, rest.records_path, rest.required)
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
        staged_path=path, pages=len(pages), requests=requests, watermark=range_,
    )


__all__ = [
    "PAGES_FILE",
    "Page",
    "RestExtract",
    "auth_headers",
    "backoff_delay",
    "fetch",
    "fetch_pages",
    "parse_pages",
    "read_rest",
    "retry_after",
    "stage_pages",
    "with_params",
]
