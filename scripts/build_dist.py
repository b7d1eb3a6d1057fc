"""Build the artefacts that clusters run: ``python scripts/build_dist.py [--out dist]``.

Writes into the output folder:

* ``etl-<version>-py3-none-any.whl``  the library (``--py-files``),
* ``deps.zip``   the library's pure-Python runtime dependencies, taken from the installed
  environment (no download), and the project's ``jobs`` package (each job's transforms); what
  clusters already provide is left out: pyspark, py4j, delta-spark, numpy, pandas, boto3 and
  their dependencies (``--py-files``),
* ``conf.zip``   the ``conf/`` folder (``--archives conf.zip#conf``),
* ``jobs/``      one spark-submit entrypoint per job (``etl run <job>`` with the arguments
  given), ``log4j2.properties`` and ``jars.txt`` (Maven coordinates for ``--packages``),
* ``manifest.json`` the version and the list of files.

Compiled extension modules are not put in ``deps.zip`` (Python cannot import them from a zip);
PyYAML then uses its pure-Python parser.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
#: Provided by Spark clusters (EMR, Dataproc, standalone) or needed only to submit.
PROVIDED = {"pyspark", "py4j", "delta-spark", "numpy", "pandas", "boto3", "botocore",
            "s3transfer", "jmespath", "python-dateutil", "urllib3", "six", "pytz", "tzdata",
            "typing-extensions", "importlib-metadata", "zipp"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_dependencies(root: str = "etl") -> list[metadata.Distribution]:
    """Installed distributions the library needs at run time, minus what clusters provide."""
    found: dict[str, metadata.Distribution] = {}
    queue = [root]
    while queue:
        dist = metadata.distribution(queue.pop())
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue  # an extra, or a backport for another Python
            name = canonical(requirement.name)
            if name in PROVIDED or name in found:
                continue
            found[name] = metadata.distribution(name)
            queue.append(name)
    return [found[n] for n in sorted(found)]


def write_deps_zip(target: Path) -> list[str]:
    names = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for dist in runtime_dependencies():
            names.append(f"{dist.metadata['Name']}=={dist.version}")
            for file in dist.files or []:
                parts = Path(file).parts
                if (file.suffix in (".so", ".pyd", ".pyc") or "__pycache__" in parts
                        or parts[0].endswith(".dist-info") or parts[0] == ".."):
                    continue
                archive.write(dist.locate_file(file), str(file))
        for path in sorted((ROOT / "jobs").glob("*.py")):
            archive.write(path, f"jobs/{path.name}")
    return names


ENTRY = '''"""spark-submit entrypoint of job {job}: ``etl run {job}`` with the arguments given."""

import sys

from etl.cli import main

raise SystemExit(main(["run", "{job}", *sys.argv[1:]]))
'''


def write_entries(folder: Path) -> list[str]:
    """One entrypoint per job of ``conf/jobs/``; returns the job names."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    jobs = sorted(p.stem for p in (ROOT / "conf" / "jobs").glob("*.yml"))
    for job in jobs:
        (folder / f"{job}.py").write_text(ENTRY.format(job=job))
    return jobs


def make_zip_importable(wheel: Path) -> list[str]:
    """Add an empty ``__init__.py`` to every package folder of the wheel that lacks one:
    ``--py-files`` imports from the zip, and zipimport does not find namespace packages."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        contents = {n: archive.read(n) for n in names}
    folders = {str(Path(n).parent) for n in names if n.endswith(".py")}
    missing = sorted(f"{f}/__init__.py" for f in folders
                     if f.startswith("etl") and f"{f}/__init__.py" not in contents)
    if not missing:
        return []
    record = next(n for n in names if n.endswith(".dist-info/RECORD"))
    empty_hash = base64.urlsafe_b64encode(hashlib.sha256(b"").digest()).rstrip(b"=").decode()
    contents[record] += "".join(f"{m},sha256={empty_hash},0\n" for m in missing).encode()
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in [*missing, *names]:
            archive.writestr(name, contents.get(name, b""))
    return missing


def build(out: Path) -> dict[str, object]:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("etl-*.whl"):
        old.unlink()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(ROOT)], check=True)
    (wheel,) = out.glob("etl-*.whl")
    make_zip_importable(wheel)
    deps = write_deps_zip(out / "deps.zip")
    with zipfile.ZipFile(out / "conf.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted((ROOT / "conf").rglob("*.yml")):
            archive.write(path, str(path.relative_to(ROOT / "conf")))
    write_entries(out / "jobs")
    shutil.copyfile(ROOT / "etl" / "log4j2.properties", out / "log4j2.properties")
    shutil.copyfile(ROOT / "etl" / "jars.txt", out / "jars.txt")
    import etl

    manifest = {
        "version": etl.__version__,
        "wheel": wheel.name,
        "dependencies": deps,
        "files": sorted(str(p.relative_to(out)) for p in out.rglob("*")
                        if p.is_file() and p.name != "manifest.json"),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "dist"), help="output folder (default: dist/)")
    args = parser.parse_args(argv)
    manifest = build(Path(args.out))
    print(json.dumps(manifest, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
