"""Artefacts of `make dist` for the submission tests: small stand-ins in the real layout (a tiny
environment archive, two small jars, the real conf archive, driver and manifest), written with
scripts/build_dist.py's own functions, per platform and once per test session. What a real build
holds is tested in tests/unit/test_build_dist.py."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

JARS = ("delta-spark_2.12-3.3.2.jar", "deequ-2.0.7-spark-3.5.jar")


def fake_dist(out: Path, platform: str) -> Path:
    import build_dist

    from etl.config import DeploySettings
    from etl.submit import platforms

    deploy = DeploySettings(platform=platform)  # type: ignore[arg-type]
    profile = platforms.platform(platform)
    interpreter = profile.interpreter_for(deploy) or "/usr/bin/python3.11"
    out.mkdir(parents=True)
    tree = out.parent / f"{out.name}-tree"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin" / "python").symlink_to(interpreter)
    build_dist.write_archive(tree, out / "etl-env.tar.gz")
    environment = build_dist.hashed(out / "etl-env.tar.gz", "etl-env", ".tar.gz")
    for jar in JARS:
        (tree / jar).write_bytes(f"not really {jar}".encode())
    jar_folder, jars = build_dist.copy_jars(out, [tree / jar for jar in JARS])
    shutil.rmtree(tree)
    conf, main = build_dist.write_conf(out), build_dist.write_main(out)
    bootstrap = (build_dist.write_bootstrap(out, interpreter, "3.11")
                 if platform == "emr-7" else None)
    manifest = build_dist.manifest(platform, deploy, interpreter, environment, ["PyYAML==6.0"],
                                   jar_folder, jars, (), [], conf, main, bootstrap,
                                   "etl-0.1.0-py3-none-any.whl")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out


@pytest.fixture(scope="session")
def dist_for(tmp_path_factory) -> Callable[[str], Path]:
    """``dist_for(platform)``: the stand-in artefacts for that platform."""
    built: dict[str, Path] = {}

    def get(platform: str) -> Path:
        if platform not in built:
            built[platform] = fake_dist(tmp_path_factory.mktemp("dist") / platform, platform)
        return built[platform]

    return get


def names(dist: Path) -> dict:
    """The manifest of ``dist`` (the hashed file names the requests use)."""
    return json.loads((dist / "manifest.json").read_text())
