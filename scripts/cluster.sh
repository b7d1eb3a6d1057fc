#!/usr/bin/env bash
# A Spark standalone cluster on 127.0.0.1 (one master, one worker) from the pip pyspark install.
#
# Usage: scripts/cluster.sh {start|stop|status|url}
#
#   start   start the master and the worker in the background, wait until the worker has
#           registered; idempotent
#   stop    stop both (no-op when not running)
#   status  exit 0 if both are running
#   url     print the master URL (spark://127.0.0.1:PORT)
#
# Environment:
#   ETL_PYTHON               Python with pyspark (default: .venv/bin/python)
#   ETL_SERVICES_DIR         state dir (default: $PWD/.services); pid files and logs in <it>/spark/
#   ETL_SPARK_MASTER_PORT    master port (default 7077); ETL_SPARK_MASTER_UI_PORT (default 8080)
#   ETL_SPARK_WORKER_UI_PORT worker UI port (default 8081)
#   ETL_SPARK_WORKER_CORES   cores offered by the worker (default 1)
#   ETL_SPARK_WORKER_MEMORY  memory offered by the worker (default 1g)
#   ETL_SPARK_START_TIMEOUT  seconds to wait for start-up (default 60)
#
# The pip pyspark has no sbin/start-master.sh, so the daemons run as `spark-class` processes
# with pid files. Everything binds to 127.0.0.1.
set -euo pipefail

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

python=${ETL_PYTHON:-.venv/bin/python}
services=${ETL_SERVICES_DIR:-$PWD/.services}
state="$services/spark"
master_port=${ETL_SPARK_MASTER_PORT:-7077}
master_ui=${ETL_SPARK_MASTER_UI_PORT:-8080}
worker_ui=${ETL_SPARK_WORKER_UI_PORT:-8081}
cores=${ETL_SPARK_WORKER_CORES:-1}
memory=${ETL_SPARK_WORKER_MEMORY:-1g}
timeout=${ETL_SPARK_START_TIMEOUT:-60}
url="spark://127.0.0.1:$master_port"

spark_home() { "$python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))'; }

pid_of() {  # pid of a running daemon from its pid file
  local file="$state/$1.pid" pid
  [[ -s $file ]] || return 1
  pid=$(<"$file")
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "org.apache.spark.deploy.$1" || return 1
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
  [[ -x $python ]] || die "no Python at $python (set ETL_PYTHON)"
  SPARK_HOME=$(spark_home); export SPARK_HOME SPARK_LOCAL_IP=127.0.0.1 SPARK_NO_DAEMONIZE=1
  mkdir -p "$state/work"
  if pid_of master >/dev/null; then
    log "master already running"
  else
    : >"$state/master.log"
    launch master org.apache.spark.deploy.master.Master --host 127.0.0.1 --port "$master_port" \
      --webui-port "$master_ui"
    wait_for "$state/master.log" "I have been elected leader" "master"
  fi
  if pid_of worker >/dev/null; then
    log "worker already running"
  else
    : >"$state/worker.log"
    launch worker org.apache.spark.deploy.worker.Worker --host 127.0.0.1 --cores "$cores" \
      --memory "$memory" --webui-port "$worker_ui" --work-dir "$state/work" "$url"
    wait_for "$state/worker.log" "Successfully registered with master" "worker"
  fi
  log "ready: $url (logs in $state)"
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

case ${1:-} in
  start) start ;;
  stop) stop_one worker; stop_one master ;;
  status) pid_of master >/dev/null && pid_of worker >/dev/null && echo "running: $url" ;;
  url) echo "$url" ;;
  *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
