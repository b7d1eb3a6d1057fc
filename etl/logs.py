"""Structured logging: readable console lines locally, JSON lines on clusters.

Every line carries the run's context (job, run_id, date_from, date_to, env) once `bind_run` has
been called; the keys are stable so log queries keep working:

``event`` (what happened), ``level``, ``timestamp`` (UTC ISO-8601), ``job``, ``run_id``,
``env``, ``mode``, ``date_from``, ``date_to``, plus event-specific keys such as ``step``,
``duration_s``, ``rows_in``, ``rows_out``, ``table``, ``path``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


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
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level)),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def bind_run(**context: Any) -> None:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(**context)


def get_logger(name: str = "etl") -> Any:
    return structlog.get_logger(name)
