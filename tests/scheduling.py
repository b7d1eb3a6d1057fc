"""The longest test modules first, so the suite's workers end together.

``make test`` hands whole modules to its pytest-xdist workers (``--dist loadfile``), each to the
first worker that is free, in collection order (``--no-loadscope-reorder``). Started in an
arbitrary order, a long module picked up last kept one worker busy for minutes after the other
had finished. Here the modules are collected from the longest to the shortest by the seconds
each took in a recorded run (`DURATIONS`); a module not recorded yet goes among those of the
median. The tests inside a module keep their order.

``make test-durations`` runs the suite and records each module's seconds (set-up, call and
tear-down of its tests) with ``--record-durations``; ``pytest MODULE --record-durations``
records that module's alone. Record again when modules are added or their cost changes a lot.
Only the order depends on the record, never what runs.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

import pytest

DURATIONS = Path(__file__).resolve().parent / "durations.json"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--record-durations", action="store_true",
                     help=f"write each test module's seconds to {DURATIONS.name} at the end")


def recorded() -> dict[str, float]:
    if not DURATIONS.exists():
        return {}
    return {str(k): float(v) for k, v in json.loads(DURATIONS.read_text()).items()}


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def longest_first(nodeids: list[str], seconds: dict[str, float]) -> list[str]:
    """``nodeids`` grouped by module, the modules from the longest to the shortest (an unknown
    one weighs the median), the order inside a module and between equals kept."""
    default = statistics.median(seconds.values()) if seconds else 0.0
    first_seen: dict[str, int] = {}
    for nodeid in nodeids:
        first_seen.setdefault(module_of(nodeid), len(first_seen))
    return sorted(nodeids, key=lambda n: (-seconds.get(module_of(n), default),
                                          first_seen[module_of(n)]))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    seconds = recorded()
    if seconds:
        rank = {nodeid: i for i, nodeid in enumerate(
            longest_first([item.nodeid for item in items], seconds))}
        items.sort(key=lambda item: rank[item.nodeid])


class DurationRecorder:
    """Sums the seconds of every report per module; at the end of the session (on the
    controller when xdist runs the suite: the workers' reports reach it) they replace those
    recorded for the same modules, and the others' stay."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[module_of(report.nodeid)] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(session.config, "workerinput"):  # an xdist worker: the controller writes
            return
        merged = {**recorded(), **{m: round(s, 1) for m, s in self.seconds.items()}}
        DURATIONS.write_text(json.dumps(dict(sorted(merged.items())), indent=1) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--record-durations"):
        config.pluginmanager.register(DurationRecorder(), "etl-duration-recorder")
