"""Every test has a time limit (pytest-timeout, ``timeout`` in pytest.ini): a hanging test fails
under its own name and the run goes on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_this_run_has_the_default_time_limit(request):
    assert request.config.pluginmanager.hasplugin("timeout")
    assert float(request.config.getini("timeout")) == 900


def test_a_hanging_test_fails_by_name_and_the_run_goes_on(tmp_path):
    (tmp_path / "test_hang.py").write_text(
        "import time\n\n"
        "def test_hangs():\n    time.sleep(120)\n\n"
        "def test_after_the_hang():\n    pass\n")
    # the repository's pytest.ini, with a limit of 2 s instead of its default
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pytest.ini"), "--rootdir", str(tmp_path),
         "-p", "no:cacheprovider", "-o", "timeout=2", str(tmp_path / "test_hang.py")],
        check=False, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 1, done.stdout[-3000:]
    assert "FAILED test_hang.py::test_hangs - Failed: Timeout" in done.stdout, done.stdout[-3000:]
    assert done.stdout.splitlines()[-1].startswith("=") and "1 failed, 1 passed" in \
        done.stdout.splitlines()[-1], done.stdout[-3000:]
