"""What `make dist` builds (scripts/build_dist.py, for platform emr-7): a packed environment
with the library, the jobs package and every runtime dependency (compiled ones too) but not
pyspark, linked to EMR's Python 3.11; the jars EMR does not provide; the conf, the driver and
the bootstrap action; every name carrying its content's hash, and the same bytes for the same
sources."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
import zipfile

import pytest

from tests.orchestration_dist import ROOT

EPOCH = 315532800


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(out, platform: str):
    env = {k: v for k, v in os.environ.items() if k not in ("ETL_PLATFORM", "ETL_WAREHOUSE")}
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_dist.py"), "--out",
                           str(out), "--platform", platform], capture_output=True, text=True,
                          env=env, check=False, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, json.loads((out / "manifest.json").read_text()), done.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build(tmp_path_factory.mktemp("dist") / "dist", "emr-7")


def test_the_environment_holds_the_library_the_jobs_and_every_dependency(built):
    out, manifest, _ = built
    assert (manifest["platform"], manifest["python"]) == ("emr-7", {
        "version": "3.11", "interpreter": "/usr/bin/python3.11",
        "platform": "x86_64-manylinux_2_28"})
    packages = {p.split("==")[0] for p in manifest["environment"]["packages"]}
    assert {"pyyaml", "structlog", "pydeequ", "delta-spark", "boto3", "pandas", "numpy",
            "openlineage-python"} <= packages
    assert not packages & {"pyspark", "py4j"}
    archive = out / manifest["environment"]["file"]
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        config = tar.extractfile("pyvenv.cfg").read().decode()
    for name in ("python", "python3", "python3.11"):
        assert members[f"bin/{name}"].issym()
        assert members[f"bin/{name}"].linkname == "/usr/bin/python3.11"
    assert config == "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11\n"
    site = "lib/python3.11/site-packages"
    tops = {name.split("/")[3] for name in members if name.startswith(f"{site}/")
            and name.count("/") > 3}
    assert {"etl", "jobs", "yaml", "structlog", "pydeequ", "delta", "boto3", "botocore",
            "numpy", "pandas", "openlineage"} <= tops
    assert not tops & {"pyspark", "py4j", "bin"}
    names = set(members)
    assert {f"{site}/etl/__main__.py", f"{site}/etl/submit/platforms.py",
            f"{site}/jobs/__init__.py", f"{site}/jobs/flights.py"} <= names
    compiled = [n for n in names if n.startswith(f"{site}/yaml/_yaml.") and n.endswith(".so")]
    assert compiled, "PyYAML's compiled parser is packed"
    assert not [n for n in names if "__pycache__" in n]
    # nothing that says where or when it was built
    assert {n.rsplit("/", 1)[1] for n in names if n.startswith(f"{site}/etl-0.1.0.dist-info/")} \
        == {"INSTALLER", "METADATA", "RECORD", "REQUESTED", "WHEEL", "entry_points.txt",
            "top_level.txt"}
    assert {(m.mtime, m.uid, m.gid) for m in members.values()} == {(EPOCH, 0, 0)}
    with tarfile.open(archive) as tar:  # nothing names the building machine's folders
        metadata = [tar.extractfile(m).read().decode() for m in tar.getmembers()
                    if m.isfile() and ".dist-info/" in m.name]
    assert not [text for text in metadata if str(ROOT) in text or sys.prefix in text]
    assert not [line for text in metadata for line in text.splitlines()
                if line.startswith(("bin/", "../../bin/"))]


def test_the_jars_are_those_emr_does_not_provide(built):
    out, manifest, stdout = built
    jars = manifest["jars"]
    assert jars["provided"] == ["org.apache.hadoop:hadoop-aws"]
    assert jars["left_out"] == ["aws-java-sdk-bundle-1.12.262.jar", "hadoop-aws-3.3.4.jar",
                                "wildfly-openssl-1.0.7.Final.jar"]
    shipped = [j["file"] for j in jars["files"]]
    assert {"delta-spark_2.12-3.3.2.jar", "delta-storage-3.3.2.jar",
            "deequ-2.0.7-spark-3.5.jar", "postgresql-42.7.8.jar"} <= set(shipped)
    assert sorted(p.name for p in (out / jars["folder"]).iterdir()) == shipped
    listing = "".join(f"{j['file']} {j['sha256']}\n" for j in jars["files"])
    assert jars["folder"] == f"jars-{hashlib.sha256(listing.encode()).hexdigest()[:16]}"
    assert "left to the platform: aws-java-sdk-bundle-1.12.262.jar" in stdout


def test_every_artefact_is_named_by_its_hash(built):
    out, manifest, _ = built
    for kind in ("environment", "conf", "main", "bootstrap"):
        path = out / manifest[kind]["file"]
        assert manifest[kind]["sha256"] == sha(path)
        assert f"-{sha(path)[:16]}." in path.name
    assert (out / manifest["main"]["file"]).read_text() == (ROOT / "etl" / "__main__.py").read_text()
    with zipfile.ZipFile(out / manifest["conf"]["file"]) as conf:
        assert {"base.yml", "prod.yml", "jobs/flights.yml", "pipelines/daily.yml"} <= set(
            conf.namelist())
        assert {i.date_time for i in conf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    bootstrap = (out / manifest["bootstrap"]["file"]).read_text()
    assert "  sudo dnf install -y python3.11\n" in bootstrap
    assert bootstrap.endswith(
        "/usr/bin/python3.11 -c 'import sys; assert sys.version_info[:2] == (3, 11)'\n")


def test_the_same_sources_build_the_same_bytes(built, tmp_path):
    """A second build, for EMR Serverless (the same interpreter, the same jars): the same
    environment, jars, conf and driver, byte for byte; no bootstrap action."""
    _, first, _ = built
    _, second, _ = build(tmp_path / "dist", "emr-serverless-7")
    for kind in ("environment", "conf", "main"):
        assert second[kind] == first[kind]
    assert second["jars"] == first["jars"]
    assert (second["platform"], second["bootstrap"]) == ("emr-serverless-7", None)


def test_the_same_tree_packs_to_the_same_bytes(tmp_path):
    import build_dist

    tree = tmp_path / "tree"
    (tree / "lib" / "pkg").mkdir(parents=True)
    (tree / "lib" / "pkg" / "a.py").write_text("A = 1\n")
    (tree / "lib" / "pkg" / "run.sh").write_text("#!/bin/sh\n")
    (tree / "lib" / "pkg" / "run.sh").chmod(0o775)
    (tree / "bin").mkdir()
    (tree / "bin" / "python").symlink_to("/usr/bin/python3.11")
    build_dist.write_archive(tree, tmp_path / "first.tar.gz")
    os.utime(tree / "lib" / "pkg" / "a.py", (1_700_000_000, 1_700_000_000))
    (tree / "lib" / "pkg" / "a.py").chmod(0o600)
    build_dist.write_archive(tree, tmp_path / "second.tar.gz")
    assert sha(tmp_path / "first.tar.gz") == sha(tmp_path / "second.tar.gz")
    with tarfile.open(tmp_path / "first.tar.gz") as tar:
        assert [(m.name, m.mode if not m.issym() else m.linkname) for m in tar.getmembers()] == [
            ("bin", 0o755), ("bin/python", "/usr/bin/python3.11"), ("lib", 0o755),
            ("lib/pkg", 0o755), ("lib/pkg/a.py", 0o644), ("lib/pkg/run.sh", 0o755)]
