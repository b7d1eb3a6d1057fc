"""Anomaly detection on a metric's history: plain Python over the values stored in
``<warehouse>/_etl/quality_metrics`` (oldest first), so it needs neither Deequ's metrics
repository nor a callback from the JVM.

Two strategies, after Deequ's of the same names:

* **relative rate of change**: the new value divided by the previous one must lie within
  ``[max_rate_decrease, max_rate_increase]`` (e.g. ``0.5`` and ``2.0``: the row count may halve
  or double, no more). Needs one earlier value.
* **online normal**: the new value must lie within ``mean - lower_deviations * stddev`` and
  ``mean + upper_deviations * stddev`` of the earlier values (sample standard deviation, updated
  online with Welford's method; an earlier value that was itself outside the bounds of the values
  before it is left out, as Deequ does with ``ignoreAnomalies``). Needs ``min_history`` earlier
  values (default 3).

Example::

    relative_rate_of_change([1000, 1010, 990], 400, max_rate_decrease=0.5)
    # Verdict(anomalous=True, lower=495.0, upper=inf, ...)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    """``anomalous`` is ``None`` when the history is too short to decide."""

    anomalous: bool | None
    lower: float
    upper: float
    message: str


def relative_rate_of_change(
    history: Sequence[float],
    value: float,
    *,
    max_rate_decrease: float | None = None,
    max_rate_increase: float | None = None,
    min_history: int = 1,
) -> Verdict:
    """Compare ``value`` with the last value of ``history``."""
    if len(history) < min_history or not history:
        return Verdict(None, -math.inf, math.inf,
                       f"not enough history: {len(history)} of {max(min_history, 1)} runs")
    previous = history[-1]
    lower = previous * max_rate_decrease if max_rate_decrease is not None else -math.inf
    upper = previous * max_rate_increase if max_rate_increase is not None else math.inf
    anomalous = not lower <= value <= upper
    return Verdict(anomalous, lower, upper,
                   f"{value:g} {'outside' if anomalous else 'within'} [{lower:g}, {upper:g}]"
                   f" (previous {previous:g})")


def online_normal(
    history: Sequence[float],
    value: float,
    *,
    lower_deviations: float = 3.0,
    upper_deviations: float = 3.0,
    min_history: int = 3,
) -> Verdict:
    """Compare ``value`` with the mean and standard deviation of ``history``."""
    needed = max(min_history, 2)
    count, mean, m2 = 0, 0.0, 0.0
    for point in history:
        if count >= needed:
            std = math.sqrt(m2 / (count - 1))
            if not mean - lower_deviations * std <= point <= mean + upper_deviations * std:
                continue
        count += 1
        delta = point - mean
        mean += delta / count
        m2 += delta * (point - mean)
    if count < needed:
        return Verdict(None, -math.inf, math.inf, f"not enough history: {count} of {needed} runs")
    std = math.sqrt(m2 / (count - 1))
    lower, upper = mean - lower_deviations * std, mean + upper_deviations * std
    anomalous = not lower <= value <= upper
    return Verdict(anomalous, lower, upper,
                   f"{value:g} {'outside' if anomalous else 'within'} [{lower:g}, {upper:g}]"
                   f" (mean {mean:g}, stddev {std:g} of {count} runs)")


__all__ = ["Verdict", "online_normal", "relative_rate_of_change"]
