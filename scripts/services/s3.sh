#!/usr/bin/env bash
# Install and run moto's standalone server as a local, fake S3 for tests and CI.
#
# Usage: scripts/services/s3.sh {install|start|stop|status|env}
#
#   install  pip install 'moto[server]' into $ETL_PYTHON's environment, unless
#            moto's server is already importable there.
#   start    start moto in the background on 127.0.0.1 and wait until it
#            answers HTTP. Idempotent; a running moto answering 5xx (its
#            virtualenv removed under it) is restarted.
#   stop     stop it (no-op when not running).
#   status   exit 0 if it is up and answering.
#   env      print `export` lines for ETL_S3_ENDPOINT and moto's fake AWS
#            credentials/region.
#
# Environment:
#   ETL_PYTHON             Python to use (default: .venv/bin/python)
#   ETL_SERVICES_DIR       state dir (default: $PWD/.services); PID file and log
#                          go to <it>/s3/
#   ETL_S3_PORT            TCP port on 127.0.0.1 (default: 5055)
#   ETL_S3_START_TIMEOUT   seconds to wait for the server (default: 30)
#   ETL_MOTO_SPEC          pip requirement to install (default: moto[server])
#
# moto keeps everything in memory: buckets are gone after a restart.
set -euo pipefail
umask 022

readonly PROG=s3.sh

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=scripts/services/process.sh
source "$(dirname "${BASH_SOURCE[0]}")/process.sh"

usage() {
    printf 'usage: %s {install|start|stop|status|env}\n' "$0" >&2
    exit 2
}

SERVICES_DIR=${ETL_SERVICES_DIR:-$PWD/.services}
[[ $SERVICES_DIR == /* ]] || SERVICES_DIR=$PWD/$SERVICES_DIR
readonly STATE_DIR=$SERVICES_DIR/s3
readonly PID_FILE=$STATE_DIR/moto.pid LOG_FILE=$STATE_DIR/moto.log
PORT=${ETL_S3_PORT:-5055}
START_TIMEOUT=${ETL_S3_START_TIMEOUT:-30}
MOTO_SPEC=${ETL_MOTO_SPEC:-moto[server]}
readonly HOST=127.0.0.1

if ! [[ $PORT =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65535)); then
    die "ETL_S3_PORT must be a TCP port number, got '$PORT'"
fi
[[ $START_TIMEOUT =~ ^[0-9]+$ ]] || die "ETL_S3_START_TIMEOUT must be a number of seconds, got '$START_TIMEOUT'"

resolve_python() {
    PYTHON=${ETL_PYTHON:-.venv/bin/python}
    if [[ $PYTHON == */* ]]; then
        [[ $PYTHON == /* ]] || PYTHON=$PWD/$PYTHON
        [[ -x $PYTHON ]] ||
            die "Python not found at $PYTHON (create the project virtualenv, or set ETL_PYTHON)"
    else
        PYTHON=$(command -v "$PYTHON") || die "Python '$ETL_PYTHON' not found on PATH (set ETL_PYTHON)"
    fi
}

moto_importable() { "$PYTHON" -c 'import moto.server' >/dev/null 2>&1; }

# The PID in the PID file, if that process is alive and is our moto server.
running_pid() { pid_matching moto.server; }

# The HTTP status of `GET /` on HOST:PORT (moto answers 200, its bucket list), or nothing when
# nothing answers. Plain bash, so no curl needed and no HTTP proxy settings get in the way.
http_status() {
    local line
    {
        exec 3<>"/dev/tcp/$HOST/$PORT" &&
            printf 'GET / HTTP/1.0\r\nHost: %s:%s\r\n\r\n' "$HOST" "$PORT" >&3 &&
            IFS= read -r -t 2 line <&3
    } 2>/dev/null || { exec 3>&- 3<&-; return 1; }
    exec 3>&- 3<&-
    [[ $line =~ ^HTTP/1\.[01]\ ([0-9]{3}) ]] || return 1
    printf '%s\n' "${BASH_REMATCH[1]}"
}

# True if moto answers and is well: a server whose Python environment was removed under it
# still answers, with 500 to every request.
http_ok() {
    local status
    status=$(http_status) && ((status < 500))
}

port_in_use() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

cmd_install() {
    resolve_python
    if moto_importable; then
        log "moto already installed for $PYTHON ($("$PYTHON" -c 'import moto; print(moto.__version__)'))"
        return 0
    fi
    "$PYTHON" -m pip --version >/dev/null 2>&1 || die "$PYTHON has no pip; cannot install $MOTO_SPEC"
    log "installing $MOTO_SPEC with $PYTHON -m pip"
    "$PYTHON" -m pip install --disable-pip-version-check --quiet "$MOTO_SPEC" >&2 ||
        die "pip install $MOTO_SPEC failed"
    moto_importable || die "installed $MOTO_SPEC, but 'import moto.server' still fails"
}

cmd_start() {
    local t0=$EPOCHREALTIME pid status
    resolve_python
    mkdir -p "$STATE_DIR"

    if pid=$(running_pid) && status=$(http_status) && ((status >= 500)); then
        log "already running (pid $pid) but answering $status to GET /: restarting it"
        stop_group moto "$pid" 10
    fi
    if pid=$(running_pid); then
        log "already running (pid $pid)"
    else
        rm -f "$PID_FILE"
        moto_importable || die "moto is not installed for $PYTHON; run '$0 install' first"
        port_in_use && die "something else is already listening on $HOST:$PORT (stop it, or set ETL_S3_PORT)"
        log "starting moto server on $HOST:$PORT (log: $LOG_FILE)"
        printf '\n--- %s starting moto on %s:%s\n' "$(date -Is)" "$HOST" "$PORT" >>"$LOG_FILE"
        # setsid: own session, so it outlives this script and its terminal/job.
        # The child writes its own PID (after setsid), then execs moto.
        # shellcheck disable=SC2016 # $$ and $1 are for the child shell
        setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$PID_FILE" \
            "$PYTHON" -m moto.server -H "$HOST" -p "$PORT" \
            </dev/null >>"$LOG_FILE" 2>&1 &
    fi

    local deadline=$((SECONDS + START_TIMEOUT))
    until http_ok; do
        if ((SECONDS >= deadline)); then
            log "moto log (last 20 lines of $LOG_FILE):"
            tail -n 20 "$LOG_FILE" >&2 || true
            die "moto did not answer HTTP on $HOST:$PORT within ${START_TIMEOUT}s"
        fi
        # Give the child a moment to write its PID file before judging it dead.
        if [[ -s $PID_FILE ]] && ! running_pid >/dev/null; then
            log "moto log (last 20 lines of $LOG_FILE):"
            tail -n 20 "$LOG_FILE" >&2 || true
            rm -f "$PID_FILE"
            die "moto server exited during startup"
        fi
        sleep 0.2
    done
    pid=$(running_pid) || die "$HOST:$PORT answers, but it is not the moto server from $PID_FILE"
    local t1=$EPOCHREALTIME
    log "ready: http://$HOST:$PORT (pid $pid, $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')s)"
}

cmd_stop() {
    local pid
    if ! pid=$(running_pid); then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    stop_group moto "$pid" 10
}

cmd_status() {
    local pid
    if ! pid=$(running_pid); then
        echo "s3 (moto): stopped"
        return 1
    fi
    if ! http_ok; then
        echo "s3 (moto): process $pid running but not answering well on $HOST:$PORT ($(http_status || echo 'no answer'))"
        return 1
    fi
    echo "s3 (moto): running on http://$HOST:$PORT (pid $pid)"
}

cmd_env() {
    printf 'export ETL_S3_ENDPOINT=http://%s:%s\n' "$HOST" "$PORT"
    printf 'export AWS_ACCESS_KEY_ID=testing\n'
    printf 'export AWS_SECRET_ACCESS_KEY=testing\n'
    printf 'export AWS_DEFAULT_REGION=us-east-1\n'
}

(($# == 1)) || usage
case $1 in
    install | start | stop | status | env) "cmd_$1" ;;
    *) usage ;;
esac
