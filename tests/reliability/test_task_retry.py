"""Scenario 3: Spark tasks fail on their first attempt (injected in the merge's source, in a
separate ``local[2,2]`` process: the test session's plain ``local[2]`` never retries a task).
The table written through the retries equals the fault-free one row for row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.harness import ROOT

pytestmark = pytest.mark.e2e


def test_retried_tasks_give_the_fault_free_result(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SPARK_VERSION": "3.5"}
    env.pop("PYSPARK_GATEWAY_PORT", None)
    env.pop("PYSPARK_GATEWAY_SECRET", None)
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("task_retry_worker.py")), str(tmp_path),
         str(ROOT / ".jars")],
        check=False, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    tables = json.loads(result.stdout.strip().splitlines()[-1])
    assert tables["failures"] >= 2  # at least one per batch
    expected = sorted(
        [[i, f"v{i}", 1, 2013 + i % 2] for i in range(20)]
        + [[i, f"w{i}", 2, 2013 + i % 2] for i in range(20, 60)]
    )
    assert tables["clean"] == expected
    assert tables["faulty"] == expected
