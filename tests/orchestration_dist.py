"""The artefacts of `make dist`, built once per test session (scripts/build_dist.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_dist.py"), "--out", str(out)],
                   check=True, capture_output=True, cwd=ROOT)
    return out
