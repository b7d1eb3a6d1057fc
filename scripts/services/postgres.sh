#!/usr/bin/env bash
# Install and run a private, throwaway PostgreSQL server for local tests and CI.
#
# Usage: scripts/services/postgres.sh {install|start|stop|status|env}
#
#   install  apt-get install postgresql (+ postgresql-<major>-wal2json when apt
#            has it). Runs `apt-get update` only when something is missing.
#   start    initdb (first time) + start a cluster listening on 127.0.0.1 only,
#            with wal_level=logical; ensure role/database "etl". Idempotent.
#   stop     pg_ctl stop -m fast (no-op when not running).
#   status   exit 0 if the server is up and accepting connections.
#   env      print `export` lines for ETL_PG_HOST/PORT/DB/USER (not the password).
#
# Environment:
#   ETL_SERVICES_DIR      state dir (default: $PWD/.services); data dir is <it>/postgres
#   ETL_PG_PORT           TCP port on 127.0.0.1 (default: 25432)
#   ETL_PG_PASSWORD       password for role "etl" (default: etl; test-only, never printed)
#   ETL_PG_START_TIMEOUT  seconds to wait for the server (default: 30)
#
# Run as root (CI): the cluster is owned by, and runs as, the "postgres" OS user.
# Run as a normal user: the cluster is owned by, and runs as, that user (install
# then needs sudo).
set -euo pipefail
umask 022

readonly PROG=postgres.sh

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    printf 'usage: %s {install|start|stop|status|env}\n' "$0" >&2
    exit 2
}

# Client settings from the caller's environment must not leak into our own
# admin connections (PGHOST, PGUSER, ...).
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGPASSWORD PGPASSFILE \
    PGSERVICE PGSERVICEFILE PGOPTIONS PGSSLMODE PGDATA PGCONNECT_TIMEOUT

SERVICES_DIR=${ETL_SERVICES_DIR:-$PWD/.services}
[[ $SERVICES_DIR == /* ]] || SERVICES_DIR=$PWD/$SERVICES_DIR
PORT=${ETL_PG_PORT:-25432}
START_TIMEOUT=${ETL_PG_START_TIMEOUT:-30}
readonly HOST=127.0.0.1 DB=etl ROLE=etl

if ! [[ $PORT =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65535)); then
    die "ETL_PG_PORT must be a TCP port number, got '$PORT'"
fi
[[ $START_TIMEOUT =~ ^[0-9]+$ ]] || die "ETL_PG_START_TIMEOUT must be a number of seconds, got '$START_TIMEOUT'"

if ((EUID == 0)); then
    PG_OS_USER=postgres
else
    PG_OS_USER=$(id -un)
fi

# Run a command as the OS user that owns the cluster. `cd /` so that tools
# started as postgres do not complain about an unreadable cwd (e.g. /root).
as_pg() {
    if ((EUID != 0)); then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        (cd / && runuser -u "$PG_OS_USER" -- "$@")
    else
        local cmd
        printf -v cmd '%q ' "$@"
        (cd / && su -s /bin/sh "$PG_OS_USER" -c "$cmd")
    fi
}

# SQL string literal (standard_conforming_strings is on by default).
sql_literal() { printf "'%s'" "${1//\'/\'\'}"; }

short_hash() { printf '%s' "$1" | cksum | cut -d' ' -f1; }

# ---------------------------------------------------------------------------
# Layout: data dir, socket dir, binaries.
# ---------------------------------------------------------------------------

# The data dir is $SERVICES_DIR/postgres, unless the postgres OS user cannot
# traverse to $SERVICES_DIR (e.g. checkout under /root, mode 700): then fall
# back to a per-checkout dir under /tmp. The choice is deterministic, so
# start/stop/status agree without any state file.
DATA_FALLBACK=0
resolve_datadir() {
    PGDATA_DIR=$SERVICES_DIR/postgres
    ((EUID == 0)) || return 0
    id -u "$PG_OS_USER" >/dev/null 2>&1 || return 0 # not installed yet
    local probe=$SERVICES_DIR
    while [[ ! -e $probe ]]; do probe=$(dirname "$probe"); done
    # access(2) needs search permission on every path component, so this
    # checks the whole chain of parents. Dirs we create later get 0755.
    if ! as_pg test -x "$probe"; then
        DATA_FALLBACK=1
        PGDATA_DIR=/tmp/etl-services-$(short_hash "$SERVICES_DIR")/postgres
    fi
}

# Unix socket lives in the data dir, unless that path is too long for
# sun_path (107 bytes): then use a short dir under /tmp.
resolve_socketdir() {
    SOCKET_DIR=$PGDATA_DIR
    local sock="$SOCKET_DIR/.s.PGSQL.$PORT"
    if ((${#sock} > 107)); then
        SOCKET_DIR=/tmp/etl-pgsock-$(short_hash "$PGDATA_DIR")
    fi
}

# Binaries: the version the cluster was created with, else the newest installed.
resolve_bindir() {
    PG_BINDIR=
    if [[ -s $PGDATA_DIR/PG_VERSION ]]; then
        local v
        v=$(<"$PGDATA_DIR/PG_VERSION")
        PG_BINDIR=/usr/lib/postgresql/$v/bin
        [[ -x $PG_BINDIR/pg_ctl ]] ||
            die "cluster in $PGDATA_DIR was created by PostgreSQL $v, but $PG_BINDIR is missing (install postgresql-$v, or delete the data dir)"
        return 0
    fi
    local d
    d=$(find_installed_bindir) || return 1
    PG_BINDIR=$d
}

find_installed_bindir() {
    local candidates=() d
    shopt -s nullglob
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]] && candidates+=("$d")
    done
    shopt -u nullglob
    ((${#candidates[@]})) || return 1
    printf '%s\n' "${candidates[@]}" | sort -V | tail -n 1
}

require_bindir() {
    resolve_bindir || die "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin; run '$0 install' first"
}

cluster_exists() { [[ -s $PGDATA_DIR/PG_VERSION ]]; }

cluster_running() {
    cluster_exists && as_pg "$PG_BINDIR/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1
}

tcp_ready() {
    "$PG_BINDIR/pg_isready" -q -h "$HOST" -p "$PORT" -d postgres -t 2 >/dev/null 2>&1
}

port_in_use() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

# ---------------------------------------------------------------------------
# Commands.
# ---------------------------------------------------------------------------

pkg_installed() {
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true) == installed ]]
}

apt_candidate() {
    apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}'
}

apt_lists_empty() {
    local f
    for f in /var/lib/apt/lists/*_Packages*; do
        [[ -e $f ]] && return 1
    done
    return 0
}

cmd_install() {
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || die "install needs root (or sudo)"
        sudo=(sudo)
    fi
    apt_get() {
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" >&2
    }
    local updated=0

    if pkg_installed postgresql && find_installed_bindir >/dev/null; then
        log "postgresql already installed ($(find_installed_bindir))"
    else
        log "installing postgresql via apt-get (this takes a minute)"
        apt_get update
        updated=1
        apt_get install postgresql
    fi

    local bindir major pkg cand
    bindir=$(find_installed_bindir) || die "postgresql installed, but no server binaries under /usr/lib/postgresql/*/bin"
    major=$(basename "$(dirname "$bindir")")
    pkg=postgresql-$major-wal2json
    if pkg_installed "$pkg"; then
        log "$pkg already installed"
        return 0
    fi
    cand=$(apt_candidate "$pkg")
    if [[ -z $cand || $cand == '(none)' ]] && ((!updated)) && apt_lists_empty; then
        apt_get update
        cand=$(apt_candidate "$pkg")
    fi
    if [[ -z $cand || $cand == '(none)' ]]; then
        log "$pkg is not available from apt; skipping (wal2json-based tests will not work)"
        return 0
    fi
    log "installing $pkg $cand"
    apt_get install "$pkg"
}

write_config() {
    local conf=$PGDATA_DIR/etl.conf tmp
    tmp=$(mktemp)
    cat >"$tmp" <<EOF
# Managed by scripts/services/postgres.sh -- rewritten each time it starts the server.
listen_addresses = '$HOST'
port = $PORT
unix_socket_directories = $(sql_literal "$SOCKET_DIR")
wal_level = logical
max_replication_slots = 4
max_wal_senders = 4
EOF
    chmod 0644 "$tmp"
    if ! cmp -s "$tmp" "$conf"; then
        # Written by the cluster owner so ownership/permissions stay sane.
        as_pg tee "$conf" <"$tmp" >/dev/null
    fi
    rm -f "$tmp"
    if ! grep -qxF "include = 'etl.conf'" "$PGDATA_DIR/postgresql.conf"; then
        printf "\n# Added by scripts/services/postgres.sh\ninclude = 'etl.conf'\n" |
            as_pg tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
    fi
}

prepare_dirs() {
    if ((DATA_FALLBACK)); then
        log "warning: user '$PG_OS_USER' cannot traverse to $SERVICES_DIR; using $PGDATA_DIR instead"
        local parent
        parent=$(dirname "$PGDATA_DIR")
        if [[ -e $parent ]]; then
            [[ -d $parent && ! -L $parent && $(stat -c %u "$parent") == "$EUID" ]] ||
                die "$parent exists but is not a directory owned by us; remove it"
            chmod 0755 "$parent"
        else
            mkdir -m 0755 "$parent"
        fi
    fi
    mkdir -p "$PGDATA_DIR"
    if ((EUID == 0)); then
        chown "$PG_OS_USER:" "$PGDATA_DIR"
    fi
    chmod 0700 "$PGDATA_DIR"
    as_pg test -w "$PGDATA_DIR" || die "user '$PG_OS_USER' cannot write to $PGDATA_DIR"

    if [[ $SOCKET_DIR != "$PGDATA_DIR" ]]; then
        log "note: socket path under $PGDATA_DIR would be too long; using $SOCKET_DIR"
        if [[ -e $SOCKET_DIR ]]; then
            [[ -d $SOCKET_DIR && ! -L $SOCKET_DIR ]] || die "$SOCKET_DIR exists but is not a directory"
        else
            mkdir -m 0700 "$SOCKET_DIR"
        fi
        ((EUID != 0)) || chown "$PG_OS_USER:" "$SOCKET_DIR"
        chmod 0700 "$SOCKET_DIR"
    fi
}

init_cluster() {
    if [[ -n $(ls -A "$PGDATA_DIR") ]]; then
        die "$PGDATA_DIR is not empty but holds no cluster (no PG_VERSION); remove it and retry"
    fi
    log "initializing cluster in $PGDATA_DIR ($PG_BINDIR)"
    local out
    if ! out=$(as_pg "$PG_BINDIR/initdb" -D "$PGDATA_DIR" -U "$PG_OS_USER" \
        --auth-local=peer --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 --no-instructions 2>&1); then
        printf '%s\n' "$out" >&2
        die "initdb failed"
    fi
}

provision_role_and_db() {
    # Via the unix socket as the cluster superuser (peer auth). The password
    # goes through stdin, so it never shows up in argv or in our output.
    local sql
    sql=$(
        cat <<EOF
SELECT 'CREATE ROLE $ROLE' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') \gexec
ALTER ROLE $ROLE WITH LOGIN REPLICATION PASSWORD $(sql_literal "${ETL_PG_PASSWORD:-etl}");
SELECT 'CREATE DATABASE $DB OWNER $ROLE' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB') \gexec
EOF
    )
    printf '%s\n' "$sql" | as_pg "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=terse \
        -h "$SOCKET_DIR" -p "$PORT" -U "$PG_OS_USER" -d postgres >/dev/null ||
        die "could not create role/database '$ROLE'"
}

wait_ready() {
    local deadline=$((SECONDS + START_TIMEOUT))
    until tcp_ready; do
        if ((SECONDS >= deadline)); then
            log "server log (last 20 lines of $PGDATA_DIR/server.log):"
            tail -n 20 "$PGDATA_DIR/server.log" >&2 2>/dev/null || true
            die "server did not accept connections on $HOST:$PORT within ${START_TIMEOUT}s"
        fi
        sleep 0.2
    done
}

cmd_start() {
    local t0=$EPOCHREALTIME running=0
    require_bindir
    if cluster_running; then
        running=1
    elif port_in_use; then
        die "something else is already listening on $HOST:$PORT (stop it, or set ETL_PG_PORT)"
    fi
    prepare_dirs
    cluster_exists || init_cluster
    # (re)resolve now that PG_VERSION exists
    resolve_bindir

    if ((running)); then
        tcp_ready || die "a server for $PGDATA_DIR is running but not answering on $HOST:$PORT (port changed?); run '$0 stop' first"
        log "already running on $HOST:$PORT"
    else
        write_config
        log "starting PostgreSQL $(basename "$(dirname "$PG_BINDIR")") on $HOST:$PORT (data: $PGDATA_DIR)"
        if ! as_pg "$PG_BINDIR/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" \
            -w -t "$START_TIMEOUT" -s start >&2; then
            log "server log (last 20 lines of $PGDATA_DIR/server.log):"
            tail -n 20 "$PGDATA_DIR/server.log" >&2 2>/dev/null || true
            die "pg_ctl start failed"
        fi
    fi
    wait_ready
    provision_role_and_db
    local t1=$EPOCHREALTIME
    log "ready: postgresql://$ROLE@$HOST:$PORT/$DB ($(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')s)"
}

cmd_stop() {
    if ! resolve_bindir; then
        log "postgresql is not installed; nothing to stop"
        return 0
    fi
    if ! cluster_exists; then
        log "no cluster in $PGDATA_DIR; nothing to stop"
        return 0
    fi
    if ! cluster_running; then
        log "not running"
        return 0
    fi
    as_pg "$PG_BINDIR/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t "$START_TIMEOUT" -s stop >&2 ||
        die "pg_ctl stop failed"
    log "stopped"
}

cmd_status() {
    if ! resolve_bindir; then
        echo "postgres: not installed"
        return 1
    fi
    if ! cluster_exists; then
        echo "postgres: no cluster in $PGDATA_DIR"
        return 1
    fi
    if ! cluster_running; then
        echo "postgres: stopped (data: $PGDATA_DIR)"
        return 1
    fi
    if ! tcp_ready; then
        echo "postgres: running but not accepting connections on $HOST:$PORT (data: $PGDATA_DIR)"
        return 1
    fi
    echo "postgres: running on $HOST:$PORT (data: $PGDATA_DIR)"
}

cmd_env() {
    printf 'export ETL_PG_HOST=%s\n' "$HOST"
    printf 'export ETL_PG_PORT=%s\n' "$PORT"
    printf 'export ETL_PG_DB=%s\n' "$DB"
    printf 'export ETL_PG_USER=%s\n' "$ROLE"
}

(($# == 1)) || usage
case $1 in
    install) cmd_install ;;
    start | stop | status)
        resolve_datadir
        resolve_socketdir
        "cmd_$1"
        ;;
    env) cmd_env ;;
    -h | --help | help) usage ;;
    *) usage ;;
esac
