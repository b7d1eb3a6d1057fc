"""Structured logging: readable console lines locally, JSON lines on clusters.

Every line logged during a run carries the run's context (job, run_id, date_from, date_to, env;
`run_context`); the keys are stable so log queries keep working:

``event`` (what happened), ``level``, ``timestamp`` (UTC ISO-8601), ``job``, ``run_id``,
``env``, ``mode``, ``date_from``, ``date_to``, plus event-specific keys such as ``step``,
``duration_s``, ``rows_in``, ``rows_out``, ``table``, ``path``.

Secrets never reach a log line: `redact_secrets` runs on every event (after the exception is
formatted, before rendering) and rewrites every field, the message included, whatever it says
(`redact`):

* a URL's user information: ``postgresql://etl:s3cret@db/etl`` -> ``postgresql://etl:***@db/etl``;
* ``password=`` (and ``pwd=``, ``passwd=``, ``…secret=``, ``…token=``, ``api_key=``,
  ``apikey=``) in a URL's query or a connection string: ``?password=***``;
* the value of an ``Authorization``, ``Proxy-Authorization``, ``X-Api-Key``, ``Api-Key`` or
  ``X-Auth-Token`` header written as text (``Authorization: Bearer ***``), and any field or
  mapping entry named like a credential (`SECRET_KEYS`: ``authorization``, ``password``,
  ``api_key``, ``token``, ``cookie``...) whose value becomes ``***``.

Log fields that are other objects are rendered as their ``repr`` when that holds something to
redact. `get_logger` configures the console defaults when nothing configured structlog yet, so
a logger is never without the redaction.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog

MASK = "***"
#: Field and mapping keys whose whole value is a credential (compared lower-case, ``-`` as ``_``).
SECRET_KEYS = frozenset({
    "authorization", "proxy_authorization", "x_api_key", "api_key", "apikey", "x_auth_token",
    "password", "passwd", "pwd", "secret", "client_secret", "token", "access_token",
    "refresh_token", "cookie", "set_cookie", "secret_access_key", "aws_secret_access_key",
})
#: ``scheme://user:password@``: the password runs to the last ``@`` before the path (a literal
#: ``@`` in it is not percent-encoded by everyone).
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@'\"]*):[^/\s'\"]*@")
_PARAM = re.compile(
    r"(?i)(?P<head>\b[A-Za-z_]*(?:password|passwd|pwd|secret|token|api_?key)=)[^&;\s'\"]*"
)
_HEADER = re.compile(
    r"(?i)(?P<head>\b(?:proxy-authorization|authorization|x-api-key|api-key|x-auth-token)"
    r"['\"]?\s*[:=]\s*['\"]?(?:(?:bearer|basic|token|digest)\s+)?)[^\s'\",;}]+"
)


def redact(text: str) -> str:
    """``text`` with credentials in URLs, ``password=``-style parameters and auth header values
    replaced by ``***`` (see the module docstring)."""
    text = _USERINFO.sub(rf"\g<head>:{MASK}@", text)
    text = _PARAM.sub(rf"\g<head>{MASK}", text)
    return _HEADER.sub(rf"\g<head>{MASK}", text)


def is_secret_key(key: object) -> bool:
    """Whether a field or mapping key names a credential (``Authorization``, ``password``...)."""
    return isinstance(key, str) and key.strip().lower().replace("-", "_") in SECRET_KEYS


def redact_value(value: Any) -> Any:
    """A log field's value with its secrets masked: strings with `redact`, mappings (keys named
    like credentials get ``***``), lists and tuples item by item; numbers, booleans and None as
    they are; any other object as its redacted ``repr`` when that hides something."""
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, Mapping):
        return {k: MASK if is_secret_key(k) else redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v) for v in value)
    shown = repr(value)
    hidden = redact(shown)
    return hidden if hidden != shown else value


def redact_secrets(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The structlog processor of `redact_value`, applied to every field of an event."""
    for key in list(event):
        event[key] = MASK if is_secret_key(key) else redact_value(event[key])
    return event


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of writing (pytest and notebooks swap
    it), never to a stream captured once and closed since."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(format: str = "console", level: str = "INFO") -> None:
    renderer: Any
    if format == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=True)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level)),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


@contextmanager
def run_context(**context: Any) -> Iterator[None]:
    """Every line logged inside the block carries ``context`` (the run's job, run id, dates);
    the caller's own context is back after it, so a run leaves nothing bound behind."""
    with structlog.contextvars.bound_contextvars(**context):
        yield


def get_logger(name: str = "etl") -> Any:
    """A structlog logger; when nothing configured structlog yet, `configure`'s console
    defaults are applied first, so every line goes through `redact_secrets`."""
    if not structlog.is_configured():
        configure()
    return structlog.get_logger(name)
