"""Run monitoring helpers that need no Spark: the progress line and the build information."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import etl
from etl.runlog import ProgressPrinter, build_info, progress_line

ROOT = Path(__file__).resolve().parents[2]


def test_progress_line_lists_active_stages_in_order():
    assert progress_line([]) == "spark: idle"
    assert progress_line([(12, "save at NativeMethodAccessorImpl.java:0", 3, 8),
                          (7, "count at x.py:1", 2, 2)]) == (
        "spark: stage 7 2/2 (count); stage 12 3/8 (save)")


def test_progress_printer_stays_quiet_off_a_terminal():
    stream = io.StringIO()
    with ProgressPrinter(spark=None, stream=stream, interval_s=0.01) as printer:  # type: ignore[arg-type]
        assert printer._thread is None
    assert stream.getvalue() == ""


def test_build_info_names_version_and_commit(monkeypatch):
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    build_info.cache_clear()
    monkeypatch.delenv("ETL_GIT_COMMIT", raising=False)
    assert build_info() == {"etl_version": etl.__version__, "git_commit": head}
    build_info.cache_clear()
    monkeypatch.setenv("ETL_GIT_COMMIT", "abc123")
    assert build_info() == {"etl_version": etl.__version__, "git_commit": "abc123"}
    build_info.cache_clear()
