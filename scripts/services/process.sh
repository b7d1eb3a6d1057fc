# shellcheck shell=bash
# Process helpers shared by the services that run as a background process group (s3.sh, kafka.sh).
# Sourced, not run. The caller defines PID_FILE, log and die.

# alive PID: the process exists and is not a zombie. (`read`, not `$(<file)`: bash 5.2 under
# `set -e` ends the whole script when the file of `$(<file)` is gone, `||` or not.)
alive() {
    local stat
    IFS= read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != [ZX] ]]
}

# pid_matching TEXT: print the PID in $PID_FILE when that process is alive and its command line
# contains TEXT (so a recycled PID is never taken for the service).
pid_matching() {
    [[ -s $PID_FILE ]] || return 1
    local pid cmdline
    pid=$(<"$PID_FILE")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/cmdline ]] || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmdline == *"$1"* ]] || return 1
    printf '%s\n' "$pid"
}

# stop_group NAME PID SECONDS: SIGTERM the process group PID leads (setsid made it a leader),
# SIGKILL it after SECONDS, remove $PID_FILE.
stop_group() {
    local name=$1 pid=$2 seconds=$3 i
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < seconds * 10; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        log "$name (pid $pid) ignored SIGTERM for ${seconds}s; sending SIGKILL"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PID_FILE"
    log "stopped (pid $pid)"
}
