"""Build the artefacts clusters run: ``python scripts/build_dist.py [--out dist] [--env prod]
[--platform P]``.

For the platform of ``deploy.platform`` in the ``--env`` overlay (or ``--platform``; see
`etl.submit.platforms`), the output folder (emptied first) gets:

* ``etl-env-<hash>.tar.gz``  the packed Python environment: a virtual environment for Python
  ``deploy.python_version`` holding the etl wheel, the ``jobs`` package (the ``jobs/`` folder)
  and every runtime dependency, compiled ones included (wheels for ``deploy.python_platform``,
  installed with uv at the versions of the building environment), but not pyspark and py4j,
  which the cluster's Spark provides. Its ``bin/python`` links to the platform's interpreter
  (``deploy.python``); shipped as ``--archives <it>#environment``.
* ``jars-<hash>/``  the resolved jars of ``etl/jars.txt`` (``.jars/``, ``make jars``) minus what
  the platform provides (hadoop-aws and its AWS SDK on EMR; ``deploy.provided_jars``).
* ``conf-<hash>.zip``  the ``conf/`` folder (``--archives <it>#conf``).
* ``main-<hash>.py``  the generic driver, ``etl/__main__.py``: spark-submit's primary resource,
  run as ``main-<hash>.py run JOB --env ENV ...``.
* ``emr-bootstrap-<hash>.sh``  (emr-7) the bootstrap action that installs the interpreter.
* ``etl-<version>-py3-none-any.whl``  the library as built (it is inside the environment).
* ``log4j2.properties``  quiet driver logging for ``spark-submit.sh --dist``.
* ``manifest.json``  the platform, the interpreter, every artefact with its SHA-256, the packed
  packages and the jars.

``<hash>`` is the start of the artefact's SHA-256 (for the jars, of their names and hashes). The
same sources give the same bytes (sorted entries, fixed times and owners), so the same hash; an
upload under a hashed name never replaces what a running job uses.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import resolve_jars  # noqa: E402

from etl.config import DeploySettings, load_settings  # noqa: E402
from etl.errors import ConfigError  # noqa: E402
from etl.submit import platforms  # noqa: E402

#: Provided by every cluster's Spark (pyspark.zip and py4j on the PYTHONPATH it sets).
PROVIDED_BY_SPARK = {"pyspark", "py4j"}
#: Runtime requirements besides the wheel's own: the `spark` extra minus pyspark.
EXTRA_RUNTIME = ("delta-spark",)
HASH_LENGTH = 16
#: Fixed time of every archive entry (1980-01-01, the earliest a zip can hold).
EPOCH = 315532800
_ENV_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hashed(path: Path, stem: str, suffix: str) -> Path:
    """Rename ``path`` to ``<stem>-<hash><suffix>`` next to it."""
    target = path.with_name(f"{stem}-{sha256(path)[:HASH_LENGTH]}{suffix}")
    path.replace(target)
    return target


# -- settings -------------------------------------------------------------------------------------

def deploy_settings(env: str, conf: Path, overrides: list[str]) -> DeploySettings:
    """``deploy`` of ``env``. Variables that only the cluster sets (``${ETL_WAREHOUSE}`` in
    prod.yml) do not matter to the build: unset ones stand for themselves."""
    environ = dict(os.environ)
    for path in conf.glob("*.yml"):
        for match in _ENV_REF.finditer(path.read_text()):
            environ.setdefault(match["name"], match.group(0))
    return load_settings(env=env, overrides=overrides, directory=conf, environ=environ).deploy


# -- the packed environment -----------------------------------------------------------------------

def pinned_requirements(python_version: str) -> list[str]:
    """``name==version`` of every distribution the library needs at run time, at the versions
    installed here (what the tests ran with), minus what Spark provides."""
    marker_env = {"extra": "", "python_version": python_version,
                  "python_full_version": f"{python_version}.0"}
    found: dict[str, metadata.Distribution] = {}
    queue = [Requirement(text) for text in metadata.requires("etl") or []]
    queue += [Requirement(name) for name in EXTRA_RUNTIME]
    while queue:
        requirement = queue.pop()
        if requirement.marker and not requirement.marker.evaluate(marker_env):
            continue  # an extra, or a backport for another Python
        name = canonical(requirement.name)
        if name in PROVIDED_BY_SPARK or name in found:
            continue
        try:
            found[name] = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise SystemExit(f"{name} is not installed here (make setup)") from None
        queue += [Requirement(text) for text in found[name].requires or []]
    return [f"{name}=={found[name].version}" for name in sorted(found)]


def build_wheel(out: Path) -> Path:
    """The etl wheel, built from a clean copy of the sources (no stale ``build/`` files)."""
    with tempfile.TemporaryDirectory() as work:
        source = Path(work) / "src"
        source.mkdir()
        for name in ("setup.py", "setup.cfg"):
            shutil.copyfile(ROOT / name, source / name)
        shutil.copytree(ROOT / "etl", source / "etl",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                        "--no-build-isolation", "-w", str(out), str(source)], check=True)
    (wheel,) = out.glob("etl-*.whl")
    return wheel


def uv() -> str:
    beside = Path(sys.executable).with_name("uv")
    found = str(beside) if beside.exists() else shutil.which("uv")
    if not found:
        raise SystemExit("uv is needed to build the packed environment (pip install uv)")
    return found


def install_site_packages(site: Path, wheel: Path, requirements: list[str],
                          deploy: DeploySettings) -> None:
    """Install the wheel and the pinned requirements for the target Python and platform."""
    listing = site.parent / "requirements.txt"
    listing.write_text("\n".join(requirements) + "\n")
    subprocess.run([uv(), "pip", "install", "-q", "--target", str(site), "--no-deps",
                    "--python-version", deploy.python_version,
                    "--python-platform", deploy.python_platform,
                    "--only-binary", ":all:", "-r", str(listing), str(wheel)], check=True)
    # what says where and when it was built: console scripts (their shebang is the building
    # Python), where the wheel was, uv's timestamp; the same sources must give the same bytes
    shutil.rmtree(site / "bin", ignore_errors=True)
    for extra in [*site.glob("*.dist-info/direct_url.json"), *site.glob("*.dist-info/uv_cache.json")]:
        extra.unlink()
    for record in site.glob("*.dist-info/RECORD"):
        lines = record.read_text().splitlines(keepends=True)
        dist_info = record.parent.name
        record.write_text("".join(
            line for line in lines
            if not line.startswith(("bin/", "../../bin/", f"{dist_info}/direct_url.json,",
                                    f"{dist_info}/uv_cache.json,"))))
    jobs = site / "jobs"
    shutil.copytree(ROOT / "jobs", jobs, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    init = jobs / "__init__.py"
    if not init.exists():  # a regular package: nothing else on the path can add to it
        init.write_text('"""The jobs\' modules (the jobs/ folder, packed by make dist)."""\n')


def standalone_interpreter(version: str) -> str:
    """The building Python's interpreter (a virtual environment's base), for standalone."""
    base = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if running != version:
        raise ConfigError(f"is {version}, but the building Python is {running}; set "
                          "deploy.python to the workers' interpreter", key="deploy.python_version")
    return str(base)


def environment_entries(root: Path) -> Iterator[tuple[Path, str]]:
    """Every path under ``root``, parents first, in the order of their names' parts, with its
    name in the archive."""
    paths = []
    for folder, dirs, files in os.walk(root):
        paths += [Path(folder) / name for name in dirs + files]
    for path in sorted(paths, key=lambda p: p.relative_to(root).parts):
        yield path, str(path.relative_to(root))


#: gzip's fastest level for the packed environment: its 286 MB of files packed in 3.1 s into
#: 114 MB, against 9.9 s into 102 MB at level 6 (zlib's default), which took two thirds of a
#: build. The nodes download and unpack it once per application, where 12 MB weigh little.
COMPRESS_LEVEL = 1


def write_archive(root: Path, target: Path) -> None:
    """A reproducible ``.tar.gz`` of ``root``: sorted, fixed time, owner root, no gzip name."""
    with target.open("wb") as raw, \
            gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=COMPRESS_LEVEL,
                          mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, name in environment_entries(root):
            info = tar.gettarinfo(str(path), arcname=name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = EPOCH, 0, 0, "root", "root"
            if info.isdir():
                info.mode = 0o755
            elif info.isfile():
                info.mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            if info.isfile():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)


def build_environment(out: Path, wheel: Path, deploy: DeploySettings,
                      interpreter: str) -> tuple[Path, list[str]]:
    """The packed environment: a virtual environment whose ``bin/python`` is ``interpreter``."""
    version = deploy.python_version
    requirements = pinned_requirements(version)
    with tempfile.TemporaryDirectory() as work:
        root = Path(work) / "environment"
        site = root / "lib" / f"python{version}" / "site-packages"
        site.parent.mkdir(parents=True)
        install_site_packages(site, wheel, requirements, deploy)
        (root / "bin").mkdir()
        for name in ("python", "python3", f"python{version}"):
            (root / "bin" / name).symlink_to(interpreter)
        (root / "lib64").symlink_to("lib")
        (root / "pyvenv.cfg").write_text(
            f"home = {Path(interpreter).parent}\ninclude-system-site-packages = false\n"
            f"version = {version}\n")
        archive = out / "etl-env.tar.gz"
        write_archive(root, archive)
    return hashed(archive, "etl-env", ".tar.gz"), requirements


# -- jars, conf, driver ---------------------------------------------------------------------------

def shipped_jars(jars_dir: Path, provided: tuple[str, ...]) -> tuple[list[Path], list[str]]:
    """The resolved jars minus those only the ``provided`` coordinates need."""
    coordinates = resolve_jars.read_coordinates()
    known = {c.rsplit(":", 1)[0] for c in coordinates}
    for number, coordinate in enumerate(provided):
        if coordinate not in known:
            raise ConfigError(f"{coordinate} is not in etl/jars.txt (known: {', '.join(sorted(known))})",
                              key=f"deploy.provided_jars[{number}]")
    resolved = sorted(jars_dir.glob("*.jar"))
    if not resolved:
        raise SystemExit(f"no jars in {jars_dir} (make jars)")
    if not provided:
        return resolved, []
    needed = resolve_jars.jar_names([c for c in coordinates if c.rsplit(":", 1)[0] not in provided])
    return ([jar for jar in resolved if jar.name in needed],
            [jar.name for jar in resolved if jar.name not in needed])


def copy_jars(out: Path, jars: list[Path]) -> tuple[Path, list[dict[str, str]]]:
    listed = [{"file": jar.name, "sha256": sha256(jar)} for jar in jars]
    digest = hashlib.sha256("".join(f"{j['file']} {j['sha256']}\n" for j in listed).encode())
    folder = out / f"jars-{digest.hexdigest()[:HASH_LENGTH]}"
    folder.mkdir()
    for jar in jars:  # copies: .jars/ may be shared, and dist/ is handed on
        shutil.copyfile(jar, folder / jar.name)
    return folder, listed


def write_conf(out: Path) -> Path:
    target = out / "conf.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted((ROOT / "conf").rglob("*.yml")):
            info = zipfile.ZipInfo(str(path.relative_to(ROOT / "conf")), (1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return hashed(target, "conf", ".zip")


def write_main(out: Path) -> Path:
    target = out / "main.py"
    shutil.copyfile(ROOT / "etl" / "__main__.py", target)
    return hashed(target, "main", ".py")


def write_bootstrap(out: Path, interpreter: str, version: str) -> Path:
    """The EMR bootstrap action: installs ``interpreter`` (dnf's python3.X when it is
    /usr/bin/python3.X) on every node and checks its version. It changes only with them."""
    check = f"{interpreter} -c 'import sys; assert sys.version_info[:2] == ({version.replace('.', ', ')})'"
    install = (f"  sudo dnf install -y python{version}\n"
               if interpreter == f"/usr/bin/python{version}" else
               f"  echo 'no {interpreter}: use a custom AMI that has it' >&2\n  exit 1\n")
    target = out / "emr-bootstrap.sh"
    target.write_text(
        "#!/bin/bash\n"
        "# EMR bootstrap action written by `make dist`: the packed environment (etl-env-*.tar.gz)\n"
        f"# runs on {interpreter} (Python {version}), which EMR 7 does not have.\n"
        "set -euo pipefail\n"
        f"if ! {check} 2>/dev/null; then\n{install}fi\n{check}\n")
    return hashed(target, "emr-bootstrap", ".sh")


def git_commit() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else ""


def manifest(platform: str, deploy: DeploySettings, interpreter: str, environment: Path,
             packages: list[str], jar_folder: Path, jars: list[dict[str, str]],
             provided: tuple[str, ...], left_out: list[str], conf: Path, main: Path,
             bootstrap: Path | None, wheel: str) -> dict[str, object]:
    """What ``manifest.json`` says (`etl.submit.Artefacts` reads it)."""
    import etl

    return {
        "etl_version": etl.__version__,
        "commit": git_commit(),
        "platform": platform,
        "python": {"version": deploy.python_version, "interpreter": interpreter,
                   "platform": deploy.python_platform},
        "environment": {"file": environment.name, "sha256": sha256(environment),
                        "bytes": environment.stat().st_size, "packages": packages},
        "jars": {"folder": jar_folder.name, "files": jars, "provided": list(provided),
                 "left_out": left_out},
        "conf": {"file": conf.name, "sha256": sha256(conf)},
        "main": {"file": main.name, "sha256": sha256(main)},
        "bootstrap": {"file": bootstrap.name, "sha256": sha256(bootstrap)} if bootstrap else None,
        "wheel": wheel,
    }


def build(out: Path, deploy: DeploySettings, jars_dir: Path) -> dict[str, object]:
    profile = platforms.platform(deploy.platform)
    interpreter = (profile.interpreter_for(deploy)
                   or standalone_interpreter(deploy.python_version))
    provided = profile.provided_coordinates(deploy)
    jars, left_out = shipped_jars(jars_dir, provided)  # checks before the slow part
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    wheel = build_wheel(out)
    environment, packages = build_environment(out, wheel, deploy, interpreter)
    jar_folder, jar_list = copy_jars(out, jars)
    conf, main = write_conf(out), write_main(out)
    bootstrap = (write_bootstrap(out, interpreter, deploy.python_version)
                 if profile.name == "emr-7" else None)
    shutil.copyfile(ROOT / "etl" / "log4j2.properties", out / "log4j2.properties")
    written = manifest(profile.name, deploy, interpreter, environment, packages, jar_folder,
                       jar_list, provided, left_out, conf, main, bootstrap, wheel.name)
    (out / "manifest.json").write_text(json.dumps(written, indent=2) + "\n")
    return written


def summary(manifest: Mapping[str, object], seconds: float) -> str:
    env = manifest["environment"]
    jars = manifest["jars"]
    assert isinstance(env, dict) and isinstance(jars, dict)
    return (f"{manifest['platform']}: {env['file']} ({env['bytes'] / 1e6:.1f} MB, "
            f"{len(env['packages'])} packages), {jars['folder']} ({len(jars['files'])} jars"
            + (f"; left to the platform: {', '.join(jars['left_out'])}" if jars["left_out"] else "")
            + f"), {manifest['conf']['file']}, {manifest['main']['file']}"  # type: ignore[index]
            + f" in {seconds:.0f}s")


def main(argv: list[str] | None = None) -> int:
    import time

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "dist"), help="output folder (default: dist/)")
    parser.add_argument("--env", default="prod", help="the overlay whose deploy.* is used "
                        "(default: prod)")
    parser.add_argument("--conf-dir", default=str(ROOT / "conf"))
    parser.add_argument("--platform", help="build for this platform (default: deploy.platform)")
    parser.add_argument("--jars-dir", default=str(ROOT / ".jars"),
                        help="the resolved jars (default: .jars/, make jars)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a deploy.* setting (repeatable)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    overrides = [*args.overrides, *([f"deploy.platform={args.platform}"] if args.platform else [])]
    try:
        deploy = deploy_settings(args.env, Path(args.conf_dir), overrides)
        manifest = build(Path(args.out), deploy, Path(args.jars_dir))
    except ConfigError as exc:
        print(f"build_dist: error: {exc}", file=sys.stderr)
        return 2
    print(summary(manifest, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
