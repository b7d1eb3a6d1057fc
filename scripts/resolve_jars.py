"""Resolve the project's JVM dependencies (etl/jars.txt) with Maven into a local folder.

Usage: python scripts/resolve_jars.py [--dest .jars]

Every coordinate in etl/jars.txt is resolved with its transitive dependencies from Maven Central
(Maven's own cache in ~/.m2 makes a second run offline). Checksums are strict (``mvn -C``): a
downloaded file whose SHA-1/MD5 does not match the repository's checksum fails the resolution
instead of being kept with a warning. Spark and Scala artefacts are excluded
because the pyspark install provides them, and any resolved jar whose artifact pyspark already
ships (breeze, commons-math3, antlr4-runtime...) is dropped so the classpath holds one copy of
each library. The folder is then what `etl.session` puts on `spark.jars` for local runs.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
JARS_FILE = ROOT / "etl" / "jars.txt"
STAMP = ".resolved"
PROVIDED_GROUPS = ("org.apache.spark", "org.scala-lang")
_VERSIONED_JAR = re.compile(r"^(?P<artifact>.+?)-\d[\w.\-]*\.jar$")


def read_coordinates(path: Path = JARS_FILE) -> list[str]:
    coords = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.count(":") != 2:
            raise SystemExit(f"{path}:{number}: expected group:artifact:version, got {line!r}")
        coords.append(line)
    return coords


def pom_for(coords: list[str], repositories: Sequence[str] = ()) -> str:
    """A POM depending on ``coords`` (without Spark and Scala artefacts); ``repositories`` are
    URLs searched before Maven Central."""
    exclusions = "".join(
        f"<exclusion><groupId>{g}</groupId><artifactId>*</artifactId></exclusion>"
        for g in PROVIDED_GROUPS
    )
    deps = []
    for coord in coords:
        group, artifact, version = (escape(part) for part in coord.split(":"))
        deps.append(
            f"<dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
            f"<version>{version}</version><exclusions>{exclusions}</exclusions></dependency>"
        )
    repos = "".join(
        f"<repository><id>extra-{number}</id><url>{escape(url)}</url></repository>"
        for number, url in enumerate(repositories, start=1)
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>etl</groupId><artifactId>etl-jars</artifactId><version>0</version>"
        + (f"<repositories>{repos}</repositories>" if repos else "")
        + f"<dependencies>{''.join(deps)}</dependencies></project>"
    )


def copy_dependencies(coords: list[str], out: Path, repositories: Sequence[str] = ()) -> None:
    """Resolve ``coords`` and their dependencies with Maven into ``out``, checksums strict
    (``--strict-checksums``: a corrupted download fails); raise `SystemExit` naming Maven's
    errors on failure."""
    with tempfile.TemporaryDirectory() as work:
        pom = Path(work) / "pom.xml"
        pom.write_text(pom_for(coords, repositories))
        cmd = [
            "mvn", "-B", "-q", "--strict-checksums", "-f", str(pom),
            "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={out}",
        ]
        result = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        errors = [line for line in (result.stdout + result.stderr).splitlines() if "[ERROR]" in line]
        raise SystemExit(f"maven could not resolve the coordinates in {JARS_FILE}:\n"
                         + "\n".join(errors)[:4000])


def artifact_name(jar: str) -> str:
    match = _VERSIONED_JAR.match(jar)
    return match.group("artifact") if match else jar


def pyspark_artifacts() -> set[str]:
    import pyspark

    jars_dir = Path(pyspark.__file__).parent / "jars"
    return {artifact_name(p.name) for p in jars_dir.glob("*.jar")}


def resolve(dest: Path) -> list[Path]:
    coords = read_coordinates()
    digest = hashlib.sha256("\n".join(coords).encode()).hexdigest()
    stamp = dest / STAMP
    if stamp.exists() and stamp.read_text() == digest:
        return sorted(dest.glob("*.jar"))
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "jars"
        copy_dependencies(coords, out)
        shipped = pyspark_artifacts()
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for jar in sorted(out.glob("*.jar")):
            if artifact_name(jar.name) not in shipped:
                shutil.copy2(jar, dest / jar.name)
    stamp.write_text(digest)
    return sorted(dest.glob("*.jar"))


_LISTED = re.compile(r"^\s*(?P<group>[^:\s]+):(?P<artifact>[^:]+):(?P<type>[^:]+):"
                    r"(?:(?P<classifier>[^:]+):)?(?P<version>[^:]+):(?P<scope>[a-z]+)")


def jar_names(coords: list[str]) -> set[str]:
    """The file names of the jars ``coords`` resolve to (transitively, Spark and Scala excluded),
    from Maven's cache (`make jars` filled it): what a subset of etl/jars.txt needs."""
    with tempfile.TemporaryDirectory() as work:
        pom = Path(work) / "pom.xml"
        pom.write_text(pom_for(coords))
        listing = Path(work) / "list.txt"
        cmd = ["mvn", "-B", "-q", "-f", str(pom), "dependency:list", "-DincludeScope=runtime",
               f"-DoutputFile={listing}"]
        result = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if result.returncode != 0:
            sys.stderr.write(result.stdout + result.stderr)
            raise SystemExit(f"maven could not list the dependencies of {', '.join(coords)}")
        names = set()
        for line in listing.read_text().splitlines():
            match = _LISTED.match(line)
            if match and match["type"] == "jar":
                classifier = f"-{match['classifier']}" if match["classifier"] else ""
                names.add(f"{match['artifact']}-{match['version']}{classifier}.jar")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", default=str(ROOT / ".jars"), help="folder for the jars")
    parser.add_argument(
        "--packages", action="store_true",
        help="print the coordinates comma-separated (for spark-submit --packages) and exit",
    )
    args = parser.parse_args(argv)
    if args.packages:
        print(",".join(read_coordinates()))
        return 0
    jars = resolve(Path(args.dest))
    print(f"{len(jars)} jars in {args.dest}: " + ", ".join(j.name for j in jars))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
