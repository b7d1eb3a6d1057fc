#!/usr/bin/env bash
# Run an etl job through spark-submit, the way it runs on a cluster.
#
#   ./spark-submit.sh [options] JOB [etl run options: --env E --date D --from D --to D --set K=V]
#
# options:
#   --master URL        Spark master (default: local[2]); e.g. spark://127.0.0.1:7077, yarn
#   --deploy-mode MODE  client (default) or cluster (source tree only)
#   --dist DIR          run from the artefacts of `make dist PLATFORM=standalone` in DIR alone:
#                       the packed Python environment is the driver's and the executors' Python,
#                       the jar bundle goes on --jars, the conf and the driver come from DIR; it
#                       needs Java and a Spark installation (SPARK_HOME), nothing else
#   --packages          (source tree) pass etl/jars.txt as --packages (the cluster resolves them
#                       from Maven) instead of shipping the jars resolved in .jars/ with --jars
#   --conf K=V          extra Spark setting (repeatable)
#   --dry-run           print the spark-submit command and exit
#
# Without --dist it ships this source tree: the wheel built from it and the jobs/ folder (as a
# zip) on --py-files, conf/ as an archive unpacked as ./conf, the jars, and the generic driver
# (etl/__main__.py) run as `run JOB ...`; the Python is ETL_PYTHON (default .venv/bin/python).
# With --dist the packed environment is unpacked once into ETL_DIST_CACHE (default
# $XDG_CACHE_HOME/etl or ~/.cache/etl) for the driver; executors unpack their own copy.
# SPARK_SUBMIT names the spark-submit to use (default: $SPARK_HOME/bin/spark-submit; without
# --dist, next to the Python, else on PATH). The exit code is the job's (0, 1, 2 or 3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
master="local[2]"
deploy_mode="client"
use_packages=0
dry_run=0
dist=""
extra_conf=()

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "spark-submit.sh: $*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --master) master="$2"; shift 2 ;;
    --deploy-mode) deploy_mode="$2"; shift 2 ;;
    --packages) use_packages=1; shift ;;
    --conf) extra_conf+=(--conf "$2"); shift 2 ;;
    --dist) [[ -d "$2" ]] || die "--dist $2: no such folder (run make dist)"
            dist="$(cd "$2" && pwd)"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "spark-submit.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) break ;;
  esac
done
[[ $# -ge 1 ]] || { echo "spark-submit.sh: missing JOB" >&2; usage >&2; exit 2; }
job="$1"; shift
[[ "$job" =~ ^[a-z][a-z0-9_]*$ ]] || die "job name '$job' must match ^[a-z][a-z0-9_]*\$"

one() {  # one PATTERN WHAT: the single file or folder of the dist matching PATTERN
  local found=()
  shopt -s nullglob
  found=($1)
  shopt -u nullglob
  [[ ${#found[@]} -eq 1 ]] || die "expected one $2 in $dist, found ${#found[@]} (run make dist)"
  echo "${found[0]}"
}

if [[ -n "$dist" ]]; then
  [[ $use_packages -eq 0 ]] || die "--packages: artefacts of make dist never resolve from Maven"
  [[ "$deploy_mode" == client ]] || die "--dist runs the driver here (--deploy-mode client)"
  grep -q '"platform": "standalone"' "$dist/manifest.json" 2>/dev/null \
    || die "$dist was not built for platform standalone (make dist PLATFORM=standalone)"
  environment="$(one "$dist/etl-env-*.tar.gz" "packed environment etl-env-*.tar.gz")"
  jar_folder="$(one "$dist/jars-*" "jar bundle jars-*/")"
  conf_archive="$(one "$dist/conf-*.zip" "configuration conf-*.zip")"
  main="$(one "$dist/main-*.py" "driver main-*.py")"
  spark_submit="${SPARK_SUBMIT:-${SPARK_HOME:+$SPARK_HOME/bin/spark-submit}}"
  [[ -n "$spark_submit" && -x "$spark_submit" ]] \
    || die "set SPARK_HOME to a Spark installation (or SPARK_SUBMIT to its spark-submit)"
  cache="${ETL_DIST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/etl}"
  unpacked="$cache/$(basename "$environment" .tar.gz)"
  driver_conf="$cache/$(basename "$conf_archive" .zip)"
  if [[ $dry_run -eq 0 && ! -x "$unpacked/bin/python" ]]; then
    mkdir -p "$cache"
    work="$(mktemp -d "$cache/.unpack.XXXXXX")"
    tar -xzf "$environment" -C "$work"
    [[ -x "$work/bin/python" ]] || die "$environment does not run here: its bin/python links to $(readlink "$work/bin/python")"
    mv -T "$work" "$unpacked" 2>/dev/null || rm -rf "$work"  # another run unpacked it first
  fi
  if [[ $dry_run -eq 0 && ! -f "$driver_conf/base.yml" ]]; then
    work="$(mktemp -d "$cache/.unpack.XXXXXX")"
    "$unpacked/bin/python" -m zipfile -e "$conf_archive" "$work"
    mv -T "$work" "$driver_conf" 2>/dev/null || rm -rf "$work"
  fi
  jar_files=("$jar_folder"/*.jar)
  if [[ "$master" == local* ]]; then  # the executors are the driver: its Python
    python_conf=(--conf "spark.pyspark.python=$unpacked/bin/python")
  else  # each executor unpacks the environment in its working directory
    python_conf=(--archives "$environment#environment,$conf_archive#conf"
                 --conf "spark.pyspark.python=./environment/bin/python")
  fi
  cmd=("$spark_submit" --master "$master" --deploy-mode client --name "etl-$job"
       --jars "$(IFS=,; echo "${jar_files[*]}")" "${python_conf[@]}"
       --conf "spark.pyspark.driver.python=$unpacked/bin/python"
       --conf "spark.executorEnv.SPARK_VERSION=3.5"
       --conf "spark.driver.extraJavaOptions=-Dlog4j2.configurationFile=file:$dist/log4j2.properties"
       "${extra_conf[@]}" "$main" --conf-dir "$driver_conf" run "$job" "$@")
else
  python="${ETL_PYTHON:-$here/.venv/bin/python}"
  [[ -x "$python" ]] || die "no Python at $python (run make setup)"
  spark_submit="${SPARK_SUBMIT:-$(dirname "$python")/spark-submit}"
  [[ -x "$spark_submit" ]] || spark_submit="$(command -v spark-submit || true)"
  [[ -n "$spark_submit" ]] || die "spark-submit not found"
  build="$here/build/spark-submit"
  version="$("$python" -c 'import etl; print(etl.__version__)')"
  wheel="$build/etl-$version-py3-none-any.whl"
  if [[ $dry_run -eq 0 || ! -f "$wheel" ]]; then
    mkdir -p "$build"
    rm -f "$build"/etl-*.whl
    "$python" -m pip wheel -q --no-deps --no-build-isolation -w "$build" "$here" >&2
    # the jobs package (jobs/, an __init__.py added if it has none: zipimport needs one)
    "$python" - "$here/jobs" "$build/jobs.zip" <<'EOF'
import sys, zipfile
from pathlib import Path
source, target = Path(sys.argv[1]), sys.argv[2]
with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
    names = set()
    for path in sorted(source.rglob("*.py")):
        if "__pycache__" not in path.parts:
            names.add(name := f"jobs/{path.relative_to(source)}")
            archive.write(path, name)
    if "jobs/__init__.py" not in names:
        archive.writestr("jobs/__init__.py", "")
EOF
    (cd "$here/conf" && rm -f "$build/conf.zip" && "$python" -m zipfile -c "$build/conf.zip" . >&2)
    cp "$here/etl/__main__.py" "$build/main.py"
  fi
  if [[ $use_packages -eq 1 ]]; then
    jars=(--packages "$("$python" "$here/scripts/resolve_jars.py" --packages)")
  else
    shopt -s nullglob
    local_jars=("$here"/.jars/*.jar)
    shopt -u nullglob
    [[ ${#local_jars[@]} -gt 0 ]] || die "no jars in .jars/ (run make jars)"
    jars=(--jars "$(IFS=,; echo "${local_jars[*]}")")
  fi
  export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$python}"
  export PYSPARK_DRIVER_PYTHON="${PYSPARK_DRIVER_PYTHON:-$python}"
  export ETL_CONF_DIR="${ETL_CONF_DIR:-$here/conf}"
  cmd=("$spark_submit" --master "$master" --deploy-mode "$deploy_mode" --name "etl-$job"
       "${jars[@]}" --py-files "$wheel,$build/jobs.zip" --archives "$build/conf.zip#conf"
       --conf "spark.driver.extraJavaOptions=-Dlog4j2.configurationFile=file:$here/etl/log4j2.properties"
       --conf "spark.executorEnv.SPARK_VERSION=3.5"
       --conf "spark.yarn.appMasterEnv.SPARK_VERSION=3.5"
       "${extra_conf[@]}" "$build/main.py" run "$job" "$@")
fi

if [[ $dry_run -eq 1 ]]; then
  printf '%q ' "${cmd[@]}"; echo
  exit 0
fi
if [[ "$master" == local* || "$master" == *://127.0.0.1:* ]]; then export SPARK_LOCAL_IP=127.0.0.1; fi
export SPARK_VERSION=3.5
exec "${cmd[@]}"
