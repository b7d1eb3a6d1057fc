#!/usr/bin/env bash
# Run an etl job through spark-submit, the way it runs on a cluster.
#
#   ./spark-submit.sh [options] JOB [etl run options: --env E --date D --from D --to D --set K=V]
#
# options:
#   --master URL        Spark master (default: local[2]); e.g. spark://127.0.0.1:7077, yarn
#   --deploy-mode MODE  client (default) or cluster
#   --packages          pass etl/jars.txt as --packages (the cluster resolves them from Maven)
#                       instead of shipping the jars resolved in .jars/ with --jars
#   --conf K=V          extra Spark setting (repeatable)
#   --dist DIR          submit the artefacts built by `make dist` in DIR (wheel, deps.zip,
#                       conf.zip, jobs/) instead of building from this source tree; the Python
#                       used needs only pyspark (ETL_PYTHON, default .venv/bin/python)
#   --dry-run           print the spark-submit command and exit
#
# What is shipped: the built wheel (dist/etl-*.whl, built if missing) and the jobs/ package
# (each job's transforms) on --py-files, the conf/ folder as an archive unpacked as ./conf next
# to the driver and executors, a generated entrypoint running `etl run JOB`, and the JVM jars. The exit code is the job's (0, 1, 2 or 3; see README).
# SPARK_SUBMIT names the spark-submit to use (default: next to the Python, else on PATH).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${ETL_PYTHON:-$here/.venv/bin/python}"
master="local[2]"
deploy_mode="client"
use_packages=0
dry_run=0
dist=""
extra_conf=()

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --master) master="$2"; shift 2 ;;
    --deploy-mode) deploy_mode="$2"; shift 2 ;;
    --packages) use_packages=1; shift ;;
    --conf) extra_conf+=(--conf "$2"); shift 2 ;;
    --dist) dist="$(cd "$2" && pwd)"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "spark-submit.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) break ;;
  esac
done
[[ $# -ge 1 ]] || { echo "spark-submit.sh: missing JOB" >&2; usage >&2; exit 2; }
job="$1"; shift
[[ -x "$python" ]] || { echo "spark-submit.sh: no Python at $python (run make setup)" >&2; exit 2; }

spark_submit="${SPARK_SUBMIT:-$(dirname "$python")/spark-submit}"
[[ -x "$spark_submit" ]] || spark_submit="$(command -v spark-submit || true)"
[[ -n "$spark_submit" ]] || { echo "spark-submit.sh: spark-submit not found" >&2; exit 2; }

if [[ -n "$dist" ]]; then
  entry="$dist/jobs/$job.py"
  shopt -s nullglob
  wheels=("$dist"/etl-*-py3-none-any.whl)
  shopt -u nullglob
  [[ ${#wheels[@]} -eq 1 ]] || { echo "spark-submit.sh: expected one etl wheel in $dist (run make dist)" >&2; exit 2; }
  wheel="${wheels[0]}"
  py_files="$wheel,$dist/deps.zip"
  conf_archive="$dist/conf.zip"
  log4j="$dist/log4j2.properties"
  for f in "$entry" "$dist/deps.zip" "$conf_archive"; do
    [[ -f "$f" ]] || { echo "spark-submit.sh: $f missing (run make dist)" >&2; exit 2; }
  done
else
  entry="$here/dist/entries/$job.py"
  [[ -f "$here/conf/jobs/$job.yml" ]] || { echo "spark-submit.sh: no job '$job' (conf/jobs/$job.yml)" >&2; exit 2; }
  if [[ $dry_run -eq 0 || ! -f "$entry" ]]; then
    "$python" -c 'import sys; sys.path.insert(0, sys.argv[1] + "/scripts"); import build_dist, pathlib; build_dist.write_entries(pathlib.Path(sys.argv[1]) / "dist" / "entries")' "$here" >&2
  fi
  log4j="$here/etl/log4j2.properties"
  version="$("$python" -c 'import etl; print(etl.__version__)')"
  wheel="$here/dist/etl-$version-py3-none-any.whl"
  if [[ ! -f "$wheel" || $dry_run -eq 0 ]]; then
    mkdir -p "$here/dist"
    "$python" -m pip wheel -q --no-deps --no-build-isolation -w "$here/dist" "$here" >&2
  fi
  jobs_archive="$here/dist/jobs.zip"
  if [[ $dry_run -eq 0 || ! -f "$jobs_archive" ]]; then
    (cd "$here" && rm -f "$jobs_archive" && "$python" -m zipfile -c "$jobs_archive" jobs >&2)
  fi
  py_files="$wheel,$jobs_archive"
  conf_archive="$here/dist/conf.zip"
  if [[ $dry_run -eq 0 || ! -f "$conf_archive" ]]; then
    (cd "$here/conf" && rm -f "$conf_archive" && "$python" -m zipfile -c "$conf_archive" . >&2)
  fi
fi
[[ -f "$entry" ]] || { echo "spark-submit.sh: no entrypoint $entry for job '$job'" >&2; exit 2; }

if [[ $use_packages -eq 1 && -n "$dist" ]]; then
  jars=(--packages "$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$dist/jars.txt" | paste -sd, -)")
elif [[ $use_packages -eq 1 ]]; then
  jars=(--packages "$("$python" "$here/scripts/resolve_jars.py" --packages)")
else
  shopt -s nullglob
  local_jars=("$here"/.jars/*.jar)
  [[ ${#local_jars[@]} -gt 0 ]] || { echo "spark-submit.sh: no jars in .jars/ (run make jars)" >&2; exit 2; }
  jars=(--jars "$(IFS=,; echo "${local_jars[*]}")")
fi

cmd=("$spark_submit" --master "$master" --deploy-mode "$deploy_mode" --name "etl-$job"
     "${jars[@]}" --py-files "$py_files" --archives "$conf_archive#conf"
     --conf "spark.driver.extraJavaOptions=-Dlog4j2.configurationFile=file:$log4j"
     --conf "spark.executorEnv.SPARK_VERSION=3.5"
     --conf "spark.yarn.appMasterEnv.SPARK_VERSION=3.5"
     "${extra_conf[@]}" "$entry" "$@")

if [[ $dry_run -eq 1 ]]; then
  printf '%q ' "${cmd[@]}"; echo
  exit 0
fi
if [[ "$master" == local* || "$master" == *://127.0.0.1:* ]]; then export SPARK_LOCAL_IP=127.0.0.1; fi
export SPARK_VERSION=3.5 PYSPARK_PYTHON="${PYSPARK_PYTHON:-$python}"
export PYSPARK_DRIVER_PYTHON="${PYSPARK_DRIVER_PYTHON:-$python}"
# client mode: the driver runs here, where the archive is not unpacked; point it at conf/
if [[ -n "$dist" && -z "${ETL_CONF_DIR:-}" ]]; then
  driver_conf="$(mktemp -d)"
  trap 'rm -rf "$driver_conf"' EXIT
  "$python" -m zipfile -e "$conf_archive" "$driver_conf"
  export ETL_CONF_DIR="$driver_conf"
  "${cmd[@]}"  # not exec: the trap removes the unpacked conf afterwards
else
  export ETL_CONF_DIR="${ETL_CONF_DIR:-$here/conf}"
  exec "${cmd[@]}"
fi
