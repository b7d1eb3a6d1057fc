#!/usr/bin/env bash
# A Spark standalone cluster on 127.0.0.1 (one master, N workers) from a Spark installation.
#
# Usage: scripts/cluster.sh {start|stop|status|url}
#
#   start   start the master and the workers in the background, wait until every worker has
#           registered; idempotent
#   stop    stop them (no-op when not running)
#   status  exit 0 if the master and the workers are running
#   url     print the master URL (spark://127.0.0.1:PORT)
#
# Environment:
#   SPARK_HOME               the Spark installation (default: the pyspark install of ETL_PYTHON)
#   ETL_PYTHON               Python with pyspark, used only to find it (default: .venv/bin/python)
#   ETL_SERVICES_DIR         state dir (default: $PWD/.services); pid files and logs in <it>/spark/
#   ETL_SPARK_MASTER_PORT    master port (default 7077); ETL_SPARK_MASTER_UI_PORT (default 8080)
#   ETL_SPARK_WORKERS        number of workers (default 1): worker-1, worker-2...
#   ETL_SPARK_WORKER_UI_PORT UI port of worker-1, the next ones follow (default 8081; 0: any)
#   ETL_SPARK_WORKER_CORES   cores offered by each worker (default 1)
#   ETL_SPARK_WORKER_MEMORY  memory offered by each worker (default 1g)
#   ETL_SPARK_START_TIMEOUT  seconds to wait for start-up (default 60)
#
# The daemons run with this script's environment (PATH, HOME, credentials), as a cluster's
# nodes would with theirs. The pip pyspark has no sbin/start-master.sh, so they run as
# `spark-class` processes with pid files. Everything binds to 127.0.0.1.
set -euo pipefail

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

python=${ETL_PYTHON:-.venv/bin/python}
services=${ETL_SERVICES_DIR:-$PWD/.services}
state="$services/spark"
master_port=${ETL_SPARK_MASTER_PORT:-7077}
master_ui=${ETL_SPARK_MASTER_UI_PORT:-8080}
worker_ui=${ETL_SPARK_WORKER_UI_PORT:-8081}
workers=${ETL_SPARK_WORKERS:-1}
cores=${ETL_SPARK_WORKER_CORES:-1}
memory=${ETL_SPARK_WORKER_MEMORY:-1g}
timeout=${ETL_SPARK_START_TIMEOUT:-60}
url="spark://127.0.0.1:$master_port"

spark_home() {
  if [[ -n ${SPARK_HOME:-} ]]; then
    [[ -x $SPARK_HOME/bin/spark-class ]] || die "no bin/spark-class in SPARK_HOME=$SPARK_HOME"
    echo "$SPARK_HOME"
  else
    [[ -x $python ]] || die "no Python at $python (set ETL_PYTHON or SPARK_HOME)"
    "$python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))'
  fi
}

pid_of() {  # pid_of NAME: pid of a running daemon (master, worker-N) from its pid file
  local file="$state/$1.pid" pid
  [[ -s $file ]] || return 1
  pid=$(<"$file")
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "org.apache.spark.deploy.${1%%-*}" || return 1
  echo "$pid"
}

launch() {  # launch NAME CLASS ARGS... : spark-class in its own session, pid written first
  local name=$1; shift
  # shellcheck disable=SC2016
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$state/$name.pid" \
    "$SPARK_HOME/bin/spark-class" "$@" </dev/null >>"$state/$name.log" 2>&1 &
}

wait_for() {  # wait_for FILE PATTERN WHAT
  local deadline=$((SECONDS + timeout))
  until grep -q "$2" "$1" 2>/dev/null; do
    ((SECONDS < deadline)) || { tail -n 20 "$1" >&2 || true; die "$3 not ready within ${timeout}s"; }
    sleep 0.5
  done
}

start() {
  SPARK_HOME=$(spark_home); export SPARK_HOME SPARK_LOCAL_IP=127.0.0.1 SPARK_NO_DAEMONIZE=1
  mkdir -p "$state"
  if pid_of master >/dev/null; then
    log "master already running"
  else
    : >"$state/master.log"
    launch master org.apache.spark.deploy.master.Master --host 127.0.0.1 --port "$master_port" \
      --webui-port "$master_ui"
    wait_for "$state/master.log" "I have been elected leader" "master"
  fi
  local i name
  for ((i = 1; i <= workers; i++)); do
    name="worker-$i"
    if pid_of "$name" >/dev/null; then
      log "$name already running"
      continue
    fi
    mkdir -p "$state/$name"
    : >"$state/$name.log"
    launch "$name" org.apache.spark.deploy.worker.Worker --host 127.0.0.1 --cores "$cores" \
      --memory "$memory" --webui-port "$((worker_ui > 0 ? worker_ui + i - 1 : 0))" \
      --work-dir "$state/$name" "$url"
  done
  for ((i = 1; i <= workers; i++)); do
    wait_for "$state/worker-$i.log" "Successfully registered with master" "worker-$i"
  done
  log "ready: $url with $workers worker(s) (logs in $state)"
}

stop_one() {
  local pid i
  pid=$(pid_of "$1") || { rm -f "$state/$1.pid"; return 0; }
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    [[ -e /proc/$pid ]] || break
    sleep 0.1
  done
  [[ -e /proc/$pid ]] && kill -KILL -- "-$pid" 2>/dev/null
  rm -f "$state/$1.pid"
  log "stopped $1 (pid $pid)"
}

stop_all() {
  local file
  shopt -s nullglob
  for file in "$state"/worker-*.pid; do
    stop_one "$(basename "$file" .pid)"
  done
  shopt -u nullglob
  stop_one master
}

running() {
  local i
  pid_of master >/dev/null || return 1
  for ((i = 1; i <= workers; i++)); do
    pid_of "worker-$i" >/dev/null || return 1
  done
}

case ${1:-} in
  start) start ;;
  stop) stop_all ;;
  status) running && echo "running: $url" ;;
  url) echo "$url" ;;
  *) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
