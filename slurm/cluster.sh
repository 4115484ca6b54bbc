#!/usr/bin/env bash
# Single-node SLURM test cluster on localhost: munged, MariaDB, slurmdbd, slurmctld, slurmd.
#
#   slurm/cluster.sh install   apt packages (quick no-op when already installed)
#   slurm/cluster.sh start     write /etc/slurm configs, start every daemon, wait for the node
#   slurm/cluster.sh stop      shut everything down (no-op when nothing runs)
#   slurm/cluster.sh status    daemons, partitions, queue; exit 0 only when the node is usable
#
# Needs root. Made for machines with no systemd and no cgroups (Debian 12, Slurm 22.05).
# Environment: SLURM_START_TIMEOUT (s, default 90) bounds each wait in `start`.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CLUSTER_NAME=localcluster
NODE_NAME=localhost
DB_NAME=slurm_acct_db
ETC_SLURM=/etc/slurm
LOG_DIR=/var/log/slurm
STATE_DIR=/var/lib/slurm
MYSQL_RUN=/run/mysqld
MYSQL_SOCKET=$MYSQL_RUN/mysqld.sock
MYSQL_PID=$MYSQL_RUN/mysqld.pid
MYSQL_DATADIR=/var/lib/mysql
MYSQL_LOG=$LOG_DIR/mariadb.log
MUNGE_PID=/run/munge/munged.pid
SLURMDBD_PID=/run/slurmdbd.pid
SLURMCTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
START_TIMEOUT=${SLURM_START_TIMEOUT:-90}
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)

log() { printf '[cluster] %s\n' "$*"; }
die() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }

need_root() {
    [[ $(id -u) -eq 0 ]] || die "'$1' needs root (it installs packages and starts system daemons)"
}

# --- process helpers ------------------------------------------------------------------------

pid_from() {  # pid_from FILE -> prints the pid if FILE names a live process
    local pid
    [[ -r $1 ]] || return 1
    pid=$(tr -dc '0-9' <"$1")
    [[ -n $pid ]] && ! exited "$pid" || return 1
    printf '%s\n' "$pid"
}

alive() { pid_from "$1" >/dev/null; }

exited() {  # exited PID -> 0 when the process is gone or a zombie (init may reap it late)
    local stat
    kill -0 "$1" 2>/dev/null || return 0
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    [[ ${stat:0:1} == Z ]]
}

wait_gone() {  # wait_gone PID SECONDS -> 0 when the process has exited
    local pid=$1 i
    for ((i = 0; i < $2 * 10; i++)); do
        exited "$pid" && return 0
        sleep 0.1
    done
    return 1
}

stop_pidfile() {  # stop_pidfile NAME PIDFILE: SIGTERM, wait, then SIGKILL
    local name=$1 file=$2 pid
    if pid=$(pid_from "$file"); then
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_gone "$pid" 20; then
            log "$name did not exit after SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            wait_gone "$pid" 5 || die "could not stop $name (pid $pid)"
        fi
    fi
    rm -f "$file"
}

ctld_responds() { timeout 10 scontrol ping 2>/dev/null | grep -q 'is UP'; }

node_state() { timeout 10 sinfo -h -N -n "$NODE_NAME" -o '%t' 2>/dev/null | head -n 1; }

show_logs() {
    local f
    for f in "$LOG_DIR"/slurmctld.log "$LOG_DIR"/slurmd.log "$LOG_DIR"/slurmdbd.log \
        "$MYSQL_LOG" /var/log/munge/munged.log; do
        if [[ -s $f ]]; then
            printf '\n----- last lines of %s -----\n' "$f" >&2
            tail -n 25 "$f" >&2
        fi
    done
}

fail_start() {
    printf '[cluster] ERROR: %s\n' "$*" >&2
    show_logs
    exit 1
}

# --- install --------------------------------------------------------------------------------

all_installed() {
    local p status
    for p in "${PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) || return 1
        [[ $status == "install ok installed" ]] || return 1
    done
}

cmd_install() {
    if all_installed; then
        log "packages already installed: ${PACKAGES[*]}"
        return 0
    fi
    need_root install
    # Keep the packages' init scripts from starting daemons during installation: this
    # script starts them itself, with its own configuration.
    local added_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        added_policy=1
        # shellcheck disable=SC2064  # expand now: remove exactly the file created here
        trap "rm -f /usr/sbin/policy-rc.d" EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    log "apt-get update"
    apt-get update -qq
    log "apt-get install ${PACKAGES[*]}"
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
    if ((added_policy)); then
        rm -f /usr/sbin/policy-rc.d
        trap - EXIT
    fi
    all_installed || die "packages missing after apt-get install"
    log "installed: $(dpkg-query -W -f='${Package} ${Version}\n' slurmctld munge mariadb-server | tr '\n' ' ')"
}

# --- start ----------------------------------------------------------------------------------

render() {  # render TEMPLATE KEY=VALUE... ; substitutes @KEY@ in bash (no value in any argv)
    local text kv template=$1
    text=$(<"$template")
    shift
    for kv in "$@"; do
        text=${text//@${kv%%=*}@/${kv#*=}}
    done
    [[ $text != *@[A-Z_]*@* ]] || die "unfilled placeholder in $template"
    printf '%s\n' "$text"
}

machine_cpus() {  # the CPUs this machine gives us; GNU nproc also obeys OMP_NUM_THREADS (which
    # the suite's workers set to 1), and a node configured with fewer CPUs than slurmd finds
    # cannot take a multi-rank job
    env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc
}

real_memory_mb() {  # MemTotal in MiB, less 5% (slurmd drains a node reporting less than RealMemory)
    local kb
    kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
    echo $((kb * 95 / 100 / 1024))
}

prepare_dirs() {
    id slurm >/dev/null 2>&1 || die "user slurm missing: run '$0 install' first"
    install -d -m 755 -o slurm -g slurm "$STATE_DIR" "$STATE_DIR/slurmctld" "$LOG_DIR"
    install -d -m 755 -o root -g root "$STATE_DIR/slurmd" "$ETC_SLURM"
    install -d -m 755 -o munge -g munge /run/munge
    install -d -m 700 -o munge -g munge /var/lib/munge /var/log/munge
    install -d -m 755 -o mysql -g mysql "$MYSQL_RUN"
    touch "$MYSQL_LOG" && chown mysql:mysql "$MYSQL_LOG"
}

start_munge() {
    alive "$MUNGE_PID" && return 0
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating /etc/munge/munge.key"
        install -d -m 700 -o munge -g munge /etc/munge
        mungekey --create --keyfile=/etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key
        chmod 400 /etc/munge/munge.key
    fi
    log "starting munged"
    rm -f /run/munge/munge.socket.2.lock
    runuser -u munge -- /usr/sbin/munged </dev/null >/dev/null 2>&1 ||
        fail_start "munged failed to start"
    local i
    for ((i = 0; i < START_TIMEOUT * 5; i++)); do
        munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    fail_start "munge does not answer after ${START_TIMEOUT}s"
}

mysql_root() { mariadb --no-defaults --protocol=socket --socket="$MYSQL_SOCKET" -u root "$@"; }

start_mariadb() {
    if ! alive "$MYSQL_PID"; then
        if [[ ! -d $MYSQL_DATADIR/mysql ]]; then
            log "initialising MariaDB data directory"
            mariadb-install-db --user=mysql --datadir="$MYSQL_DATADIR" \
                --auth-root-authentication-method=socket >>"$MYSQL_LOG" 2>&1 ||
                fail_start "mariadb-install-db failed"
        fi
        log "starting mariadbd"
        # No TCP listener: slurmdbd reaches it through the socket (StorageHost=localhost).
        setsid /usr/sbin/mariadbd --user=mysql --datadir="$MYSQL_DATADIR" \
            --socket="$MYSQL_SOCKET" --pid-file="$MYSQL_PID" --skip-networking \
            --log-error="$MYSQL_LOG" </dev/null >>"$MYSQL_LOG" 2>&1 &
        disown
    fi
    local i
    for ((i = 0; i < START_TIMEOUT * 5; i++)); do
        mysql_root -e 'SELECT 1' >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    fail_start "MariaDB does not answer on $MYSQL_SOCKET after ${START_TIMEOUT}s"
}

configure_db() {  # configure_db PASSWORD: database + user slurm; SQL goes through stdin only
    mysql_root <<SQL || fail_start "could not create the accounting database"
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$1';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$1';
GRANT ALL PRIVILEGES ON $DB_NAME.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL
}

write_configs() {  # write_configs PASSWORD
    local tmp
    render "$HERE/slurm.conf.in" CLUSTER_NAME="$CLUSTER_NAME" CPUS="$(machine_cpus)" \
        REAL_MEMORY_MB="$(real_memory_mb)" >"$ETC_SLURM/slurm.conf.tmp"
    chmod 644 "$ETC_SLURM/slurm.conf.tmp"
    mv -f "$ETC_SLURM/slurm.conf.tmp" "$ETC_SLURM/slurm.conf"
    tmp=$(umask 077 && mktemp "$ETC_SLURM/slurmdbd.conf.XXXXXX")
    render "$HERE/slurmdbd.conf.in" STORAGE_PASS="$1" STORAGE_LOC="$DB_NAME" >"$tmp"
    chown slurm:slurm "$tmp"
    chmod 600 "$tmp"
    mv -f "$tmp" "$ETC_SLURM/slurmdbd.conf"
}

start_slurmdbd() {
    log "starting slurmdbd"
    /usr/sbin/slurmdbd </dev/null >/dev/null 2>&1 || fail_start "slurmdbd failed to start"
    local i err=""
    for ((i = 0; i < START_TIMEOUT * 2; i++)); do
        alive "$SLURMDBD_PID" || { [[ $i -lt 10 ]] || fail_start "slurmdbd exited"; }
        if err=$(timeout 10 sacctmgr -n -P list cluster format=cluster 2>&1 >/dev/null); then
            return 0
        fi
        # A slurm.conf the client tools reject will not get better by waiting.
        [[ $err != *"Unable to process configuration file"* ]] || break
        sleep 0.5
    done
    fail_start "slurmdbd does not answer (sacctmgr: ${err:-no output})"
}

register_cluster() {
    if ! timeout 10 sacctmgr -n -P list cluster format=cluster 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
        log "registering cluster $CLUSTER_NAME in slurmdbd"
        timeout 30 sacctmgr -i add cluster "$CLUSTER_NAME" >/dev/null ||
            fail_start "sacctmgr add cluster failed"
    fi
}

wait_node_idle() {
    local i state="" resumed=0
    for ((i = 0; i < START_TIMEOUT * 2; i++)); do
        state=$(node_state || true)
        case $state in
        idle | mix | alloc) return 0 ;;
        down* | drain* | drng*)
            # A node left down by an earlier unclean stop: put it back in service once.
            if ((!resumed && i > 4)); then
                log "node is '$state'; resuming it"
                scontrol update nodename="$NODE_NAME" state=resume >/dev/null 2>&1 || true
                resumed=1
            fi
            ;;
        esac
        sleep 0.5
    done
    fail_start "node $NODE_NAME is not idle after ${START_TIMEOUT}s (state: '${state:-none}')"
}

all_running() {
    alive "$MUNGE_PID" && alive "$MYSQL_PID" && alive "$SLURMDBD_PID" &&
        alive "$SLURMCTLD_PID" && alive "$SLURMD_PID" && ctld_responds
}

cmd_start() {
    need_root start
    all_installed || die "packages missing: run '$0 install' first"
    if all_running; then
        wait_node_idle  # resumes a node left down or drained
        log "already running ($(node_state || echo '?'))"
        return 0
    fi
    local t0=$SECONDS pass
    # A partial cluster (some daemon died) is restarted from scratch.
    if any_running; then
        log "some daemons are running but not all: restarting the cluster"
        cmd_stop
    fi
    prepare_dirs
    pass=$(od -An -tx1 -N18 /dev/urandom | tr -d ' \n')
    write_configs "$pass"
    start_munge
    start_mariadb
    configure_db "$pass"
    unset pass
    start_slurmdbd
    register_cluster
    log "starting slurmctld"
    /usr/sbin/slurmctld </dev/null >/dev/null 2>&1 || fail_start "slurmctld failed to start"
    log "starting slurmd"
    /usr/sbin/slurmd -N "$NODE_NAME" </dev/null >/dev/null 2>&1 || fail_start "slurmd failed to start"
    wait_node_idle
    log "cluster up in $((SECONDS - t0))s"
    timeout 10 sinfo
}

# --- stop -----------------------------------------------------------------------------------

any_running() {
    local f
    for f in "$SLURMD_PID" "$SLURMCTLD_PID" "$SLURMDBD_PID" "$MYSQL_PID" "$MUNGE_PID"; do
        alive "$f" && return 0
    done
    return 1
}

cmd_stop() {
    need_root stop
    if ! any_running; then
        log "not running"
        return 0
    fi
    local jobs pid i f
    if alive "$SLURMCTLD_PID" && ctld_responds; then
        jobs=$(timeout 10 squeue -h -o '%A' 2>/dev/null | tr '\n' ' ' || true)
        if [[ -n ${jobs// /} ]]; then
            log "cancelling jobs: $jobs"
            # shellcheck disable=SC2086  # one argument per job id
            timeout 10 scancel $jobs 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do
                [[ -z $(timeout 10 squeue -h -o '%A' 2>/dev/null || true) ]] && break
                sleep 0.2
            done
        fi
        log "scontrol shutdown"
        timeout 15 scontrol shutdown >/dev/null 2>&1 || true
        for f in "$SLURMD_PID" "$SLURMCTLD_PID"; do
            if pid=$(pid_from "$f"); then wait_gone "$pid" 15 || true; fi
        done
    fi
    stop_pidfile slurmd "$SLURMD_PID"
    stop_pidfile slurmctld "$SLURMCTLD_PID"
    # Job steps of this cluster's slurmd that outlived it.
    for pid in $(pgrep -x slurmstepd || true); do
        log "killing leftover slurmstepd (pid $pid)"
        kill -KILL "$pid" 2>/dev/null || true
    done
    stop_pidfile slurmdbd "$SLURMDBD_PID"
    stop_pidfile mariadbd "$MYSQL_PID"
    stop_pidfile munged "$MUNGE_PID"
    log "stopped"
}

# --- status ---------------------------------------------------------------------------------

cmd_status() {
    local name file pid ok=0
    for name in munged:"$MUNGE_PID" mariadbd:"$MYSQL_PID" slurmdbd:"$SLURMDBD_PID" \
        slurmctld:"$SLURMCTLD_PID" slurmd:"$SLURMD_PID"; do
        file=${name#*:}
        if pid=$(pid_from "$file"); then
            printf '%-10s running (pid %s)\n' "${name%%:*}" "$pid"
        else
            printf '%-10s stopped\n' "${name%%:*}"
            ok=1
        fi
    done
    if ((ok == 0)) && ctld_responds; then
        echo
        timeout 10 sinfo
        echo
        timeout 10 squeue
        case $(node_state || true) in idle | mix | alloc) ;; *) ok=1 ;; esac
    else
        ok=1
    fi
    return "$ok"
}

usage() { sed -n '2,10s/^# \{0,1\}//p' "$0"; }

case ${1:-} in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
-h | --help | help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac
