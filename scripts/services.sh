#!/usr/bin/env bash
# Start/stop/inspect the local test services (PostgreSQL, fake S3 via moto, a Kafka broker).
#
# Usage: scripts/services.sh {start|stop|status|install|env} [postgres] [s3] [kafka]
#
#   With no service names, acts on all of them. `start` installs first
#   (install steps are no-ops when already installed). `env` prints the
#   `export` lines of the named services, e.g.:
#
#       scripts/services.sh start
#       eval "$(scripts/services.sh env)"
#
# See scripts/services/<name>.sh for the settings each service reads
# (ETL_SERVICES_DIR, ETL_PG_PORT, ETL_S3_PORT, ETL_KAFKA_PORT, ETL_PYTHON, ...).
#
# The default ports lie below Linux's ephemeral range (32768-60999): a readiness probe to a port
# in that range can be given the same port as its own source, connect to itself, and keep the
# server from binding it.
set -euo pipefail

readonly ALL_SERVICES=(postgres s3 kafka)
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPT_DIR

log() { printf 'services.sh: %s\n' "$*" >&2; }

usage() {
    printf 'usage: %s {start|stop|status|install|env} [%s]...\n' "$0" "$(
        IFS='|'
        echo "${ALL_SERVICES[*]}"
    )" >&2
    exit 2
}

(($# >= 1)) || usage
cmd=$1
shift
case $cmd in
    start | stop | status | install | env) ;;
    *) usage ;;
esac

services=()
if (($# == 0)); then
    services=("${ALL_SERVICES[@]}")
else
    for name in "$@"; do
        case " ${ALL_SERVICES[*]} " in
            *" $name "*) ;;
            *)
                log "unknown service '$name' (known: ${ALL_SERVICES[*]})"
                usage
                ;;
        esac
        case " ${services[*]} " in
            *" $name "*) ;; # duplicate
            *) services+=("$name") ;;
        esac
    done
fi

run() { bash "$SCRIPT_DIR/services/$1.sh" "$2"; }

case $cmd in
    start)
        t0=$EPOCHREALTIME
        for svc in "${services[@]}"; do
            run "$svc" install
            run "$svc" start
        done
        log "started: ${services[*]} ($(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}')s)"
        ;;
    stop)
        # Reverse order; keep going so one failure does not leave others up.
        rc=0
        for ((i = ${#services[@]} - 1; i >= 0; i--)); do
            run "${services[i]}" stop || rc=1
        done
        exit "$rc"
        ;;
    status)
        rc=0
        for svc in "${services[@]}"; do
            run "$svc" status || rc=1
        done
        exit "$rc"
        ;;
    install | env)
        for svc in "${services[@]}"; do
            run "$svc" "$cmd"
        done
        ;;
esac
