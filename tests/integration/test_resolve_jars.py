"""Jar resolution (scripts/resolve_jars.py) refuses a download whose checksum does not match.

A Maven repository in a local folder (file://) serves one tiny artefact of a group made up for
this test; Maven's own plugins come from its cache (~/.m2, filled by `make jars`). With the
repository's SHA-1 of the jar right, resolution copies the jar; with it corrupted, resolution
fails and names the checksum, where Maven without ``--strict-checksums`` would only warn."""

from __future__ import annotations

import hashlib
import shutil
import sys
import uuid
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import resolve_jars

LOCAL_REPOSITORY = Path.home() / ".m2" / "repository"


@pytest.fixture()
def repository(tmp_path):
    """``(url, coordinate, jar)``: a file:// repository serving ``coordinate``; the test's group
    is removed from Maven's cache afterwards."""
    if shutil.which("mvn") is None:
        pytest.fail("mvn is not installed (make jars needs it too)")
    group = f"etl.test.checksums{uuid.uuid4().hex[:12]}"
    folder = tmp_path / "repo" / Path(*group.split(".")) / "tiny" / "1.0"
    folder.mkdir(parents=True)
    jar = folder / "tiny-1.0.jar"
    with zipfile.ZipFile(jar, "w") as archive:
        archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
        archive.writestr("tiny.txt", "tiny\n")
    (folder / "tiny-1.0.pom").write_text(
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        f"<groupId>{group}</groupId><artifactId>tiny</artifactId><version>1.0</version>"
        "</project>")
    for name in ("tiny-1.0.jar", "tiny-1.0.pom"):
        digest = hashlib.sha1((folder / name).read_bytes()).hexdigest()  # what Maven checks
        (folder / f"{name}.sha1").write_text(digest)
    yield (tmp_path / "repo").as_uri(), f"{group}:tiny:1.0", jar
    shutil.rmtree(LOCAL_REPOSITORY / Path(*group.split(".")), ignore_errors=True)


def test_a_matching_checksum_resolves(repository, tmp_path):
    url, coordinate, jar = repository
    out = tmp_path / "jars"
    resolve_jars.copy_dependencies([coordinate], out, repositories=[url])
    assert [(p.name, p.read_bytes()) for p in out.iterdir()] == [("tiny-1.0.jar", jar.read_bytes())]


def test_a_corrupted_checksum_fails_the_resolution(repository, tmp_path, capsys):
    url, coordinate, jar = repository
    jar.with_name("tiny-1.0.jar.sha1").write_text("0" * 40)
    out = tmp_path / "jars"
    with pytest.raises(SystemExit) as info:
        resolve_jars.copy_dependencies([coordinate], out, repositories=[url])
    message = str(info.value)
    assert message.startswith(f"maven could not resolve the coordinates in {resolve_jars.JARS_FILE}")
    assert "Checksum validation failed" in message and f"expected {'0' * 40}" in message, message
    assert not out.exists() or list(out.iterdir()) == []
