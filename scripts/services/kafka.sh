#!/usr/bin/env bash
# Install and run a single-node Apache Kafka broker (KRaft mode, no ZooKeeper) for tests and CI,
# straight from its Maven jars.
#
# Usage: scripts/services/kafka.sh {install|start|stop|status|env}
#
#   install  resolve org.apache.kafka:kafka_2.13 with Maven into <services dir>/kafka/lib
#            (skipped when that version is already there).
#   start    format the storage (first time), start the broker on 127.0.0.1 (combined broker
#            and controller) and wait until it accepts connections. Idempotent.
#   stop     stop it (no-op when not running).
#   status   exit 0 if it is up and accepting connections.
#   env      print the `export` line for ETL_KAFKA_BOOTSTRAP.
#
# Environment:
#   ETL_SERVICES_DIR          state dir (default: $PWD/.services); jars, config, data, PID file
#                             and log go to <it>/kafka/
#   ETL_KAFKA_PORT            client port on 127.0.0.1 (default: 29092); the controller listens
#                             on the next port
#   ETL_KAFKA_VERSION         broker version from Maven Central (default: 3.9.1)
#   ETL_KAFKA_HEAP            JVM heap of the broker (default: 384m)
#   ETL_KAFKA_START_TIMEOUT   seconds to wait for the broker (default: 60)
#
# Needs java (17+) and mvn on PATH. Topics are created on first use (auto.create.topics.enable)
# with two partitions unless a client creates them otherwise; data survives a restart.
set -euo pipefail
umask 022

readonly PROG=kafka.sh

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
readonly STATE_DIR=$SERVICES_DIR/kafka
readonly LIB_DIR=$STATE_DIR/lib DATA_DIR=$STATE_DIR/data CONFIG=$STATE_DIR/server.properties
readonly PID_FILE=$STATE_DIR/kafka.pid LOG_FILE=$STATE_DIR/kafka.log
PORT=${ETL_KAFKA_PORT:-29092}
VERSION=${ETL_KAFKA_VERSION:-3.9.1}
HEAP=${ETL_KAFKA_HEAP:-384m}
START_TIMEOUT=${ETL_KAFKA_START_TIMEOUT:-60}
readonly HOST=127.0.0.1 MAIN_CLASS=kafka.Kafka

if ! [[ $PORT =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65534)); then
    die "ETL_KAFKA_PORT must be a TCP port number below 65535, got '$PORT'"
fi
readonly CONTROLLER_PORT=$((PORT + 1))
[[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "ETL_KAFKA_VERSION must look like 3.9.1, got '$VERSION'"
[[ $HEAP =~ ^[0-9]+[mg]$ ]] || die "ETL_KAFKA_HEAP must look like 384m or 1g, got '$HEAP'"
[[ $START_TIMEOUT =~ ^[0-9]+$ ]] || die "ETL_KAFKA_START_TIMEOUT must be a number of seconds, got '$START_TIMEOUT'"

installed() { [[ -f $LIB_DIR/kafka_2.13-$VERSION.jar ]]; }

# The PID in the PID file, if that process is alive and is our broker.
running_pid() { pid_matching " $MAIN_CLASS $CONFIG"; }

# Alive and not a zombie (kill -0 alone would report a zombie as alive).

port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# Ready once its client port accepts connections and, for a broker this script just started,
# once it has logged (after byte LOG_FROM of the log) that it started.
LOG_FROM=
ready() {
    port_in_use "$PORT" || return 1
    [[ -z $LOG_FROM ]] || tail -c "+$LOG_FROM" "$LOG_FILE" 2>/dev/null | grep -q "Kafka Server started"
}

kafka_java() { java -Xms64m "-Xmx$HEAP" -cp "$LIB_DIR/*" "$@"; }

cmd_install() {
    command -v java >/dev/null || die "java not found on PATH (Kafka needs Java 17+)"
    if installed; then
        log "Kafka $VERSION already installed in $LIB_DIR"
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found on PATH (needed to resolve the Kafka jars)"
    local work
    work=$(mktemp -d)
    # shellcheck disable=SC2064 # expand $work now
    trap "rm -rf '$work'" RETURN
    cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
<groupId>etl</groupId><artifactId>kafka-broker</artifactId><version>0</version>
<dependencies>
<dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$VERSION</version></dependency>
<dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>
</dependencies></project>
EOF
    log "resolving org.apache.kafka:kafka_2.13:$VERSION with Maven"
    mvn -B -q -f "$work/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
        "-DoutputDirectory=$work/lib" >&2 || die "maven could not resolve org.apache.kafka:kafka_2.13:$VERSION"
    rm -rf "$LIB_DIR"
    mkdir -p "$STATE_DIR"
    mv "$work/lib" "$LIB_DIR"
    log "installed Kafka $VERSION ($(find "$LIB_DIR" -name '*.jar' | wc -l) jars in $LIB_DIR)"
}

write_config() {
    cat >"$CONFIG" <<EOF
# Written by scripts/services/kafka.sh: a single-node KRaft broker for tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DATA_DIR
num.partitions=2
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
log.retention.hours=24
EOF
    cat >"$STATE_DIR/log4j.properties" <<EOF
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=WARN
log4j.logger.state.change.logger=WARN
EOF
}

format_storage() {
    [[ -f $DATA_DIR/meta.properties ]] && return 0
    local cluster_id
    cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null) || die "could not generate a cluster id"
    log "formatting storage in $DATA_DIR (cluster $cluster_id)"
    kafka_java "-Dlog4j.configuration=file:$STATE_DIR/log4j.properties" kafka.tools.StorageTool \
        format -t "$cluster_id" -c "$CONFIG" >>"$LOG_FILE" 2>&1 || die "formatting $DATA_DIR failed (see $LOG_FILE)"
}

cmd_start() {
    local t0=$EPOCHREALTIME pid
    installed || die "Kafka $VERSION is not installed; run '$0 install' first"
    mkdir -p "$STATE_DIR"

    if pid=$(running_pid); then
        log "already running (pid $pid)"
    else
        rm -f "$PID_FILE"
        local p
        for p in "$PORT" "$CONTROLLER_PORT"; do
            port_in_use "$p" && die "something else is already listening on $HOST:$p (stop it, or set ETL_KAFKA_PORT)"
        done
        write_config
        format_storage
        log "starting Kafka $VERSION on $HOST:$PORT (log: $LOG_FILE)"
        LOG_FROM=$(($(stat -c %s "$LOG_FILE" 2>/dev/null || echo 0) + 1))
        printf '\n--- %s starting Kafka on %s:%s\n' "$(date -Is)" "$HOST" "$PORT" >>"$LOG_FILE"
        # setsid: own session, so it outlives this script. The child writes its own PID, then
        # execs the JVM (so the PID is the broker's).
        # shellcheck disable=SC2016 # $$ and $1 are for the child shell
        setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$PID_FILE" \
            java -Xms64m "-Xmx$HEAP" -XX:+UseSerialGC "-Dlog4j.configuration=file:$STATE_DIR/log4j.properties" \
            -cp "$LIB_DIR/*" "$MAIN_CLASS" "$CONFIG" \
            </dev/null >>"$LOG_FILE" 2>&1 &
    fi

    local deadline=$((SECONDS + START_TIMEOUT))
    until ready; do
        if ((SECONDS >= deadline)); then
            log "Kafka log (last 20 lines of $LOG_FILE):"
            tail -n 20 "$LOG_FILE" >&2 || true
            die "Kafka did not accept connections on $HOST:$PORT within ${START_TIMEOUT}s"
        fi
        if [[ -s $PID_FILE ]] && ! running_pid >/dev/null; then
            log "Kafka log (last 20 lines of $LOG_FILE):"
            tail -n 20 "$LOG_FILE" >&2 || true
            rm -f "$PID_FILE"
            die "Kafka exited during startup"
        fi
        sleep 0.5
    done
    pid=$(running_pid) || die "$HOST:$PORT answers, but it is not the broker from $PID_FILE"
    log "ready: $HOST:$PORT (pid $pid, $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}')s)"
}

cmd_stop() {
    local pid
    if ! pid=$(running_pid); then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    stop_group Kafka "$pid" 30
}

cmd_status() {
    local pid
    if ! pid=$(running_pid); then
        echo "kafka: stopped"
        return 1
    fi
    if ! port_in_use "$PORT"; then
        echo "kafka: process $pid running but not accepting connections on $HOST:$PORT"
        return 1
    fi
    echo "kafka: running on $HOST:$PORT (pid $pid)"
}

cmd_env() { printf 'export ETL_KAFKA_BOOTSTRAP=%s:%s\n' "$HOST" "$PORT"; }

(($# == 1)) || usage
case $1 in
    install | start | stop | status | env) "cmd_$1" ;;
    *) usage ;;
esac
