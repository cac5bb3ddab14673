#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for testing cocomem's Slurm
# sweeps (issue 13, section 3): Debian's munge and slurm-wlm (slurmctld and
# slurmd) started directly as daemons (no systemd), with every file they use
# (munge key, slurm.conf, state, spool, logs, pid files, sockets) under one
# private directory. Nothing under /etc is changed and no system munged or
# Slurm is touched: the cluster has its own munge socket and its own ports.
#
#   scripts/slurm/cluster.sh start    # install if missing, write config, start daemons, wait until idle
#   scripts/slurm/cluster.sh status   # wait (up to $COCOMEM_SLURM_TIMEOUT s) until sinfo shows the node idle
#   scripts/slurm/cluster.sh stop     # cancel this cluster's jobs, stop the daemons this script started
#   scripts/slurm/cluster.sh env      # prints `export SLURM_CONF=...` for `eval`
#
# Client commands (sbatch, squeue, sinfo, scontrol) find this cluster through
# SLURM_CONF=$COCOMEM_SLURM_DIR/etc/slurm.conf; `start` and `status` print it.
#
# Environment: COCOMEM_SLURM_DIR (default /tmp/cocomem-slurm), COCOMEM_SLURM_PORT
# (slurmctld's port, default 16817; slurmd uses the next one),
# COCOMEM_SLURM_TIMEOUT (seconds to wait for the node, default 60).
#
# `start` is idempotent: daemons already running from this directory are left
# running. `stop` kills only the processes named in this directory's pid files
# (after checking each is the program it should be), and the job steps of this
# cluster's jobs through scancel.
set -euo pipefail

BASE=${COCOMEM_SLURM_DIR:-/tmp/cocomem-slurm}
PORT=${COCOMEM_SLURM_PORT:-16817}
TIMEOUT=${COCOMEM_SLURM_TIMEOUT:-60}
CONF=$BASE/etc/slurm.conf
MUNGE_SOCKET=$BASE/munge/munge.socket.2
export SLURM_CONF=$CONF

log() { echo "slurm-cluster: $*" >&2; }
die() { echo "error: slurm-cluster: $*" >&2; exit 1; }

# Installs munge and slurm-wlm from Debian if a binary is missing.
install_if_missing() {
    local need=0
    for b in munged mungekey slurmctld slurmd sbatch sinfo; do
        command -v "$b" >/dev/null 2>&1 || need=1
    done
    [ $need -eq 0 ] && return 0
    log "installing munge and slurm-wlm"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq munge slurm-wlm >/dev/null
}

# The pid in FILE if that process is alive and runs PROGRAM, else nothing.
live_pid() {
    local file=$1 program=$2 pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file" 2>/dev/null || true)
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    [ -r "/proc/$pid/cmdline" ] || return 0
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$program" || return 0
    echo "$pid"
}

write_config() {
    mkdir -p "$BASE"/{etc,munge,state,spool,log,run}
    chmod 700 "$BASE" "$BASE/munge"
    if [ ! -s "$BASE/munge/munge.key" ]; then
        mungekey --create --keyfile="$BASE/munge/munge.key" >/dev/null
        chmod 600 "$BASE/munge/munge.key"
    fi
    # The node as slurmd sees it (`slurmd -C`: CPUs, sockets, cores, threads,
    # RealMemory), so the configured node matches the real one.
    local node host
    node=$(slurmd -C | head -1)
    host=$(hostname -s)
    node=${node/NodeName=* CPUs=/NodeName=$host NodeAddr=127.0.0.1 CPUs=}
    cat >"$CONF.tmp" <<EOF
# Written by scripts/slurm/cluster.sh: a single-node cluster for cocomem's tests.
ClusterName=cocomem
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
SlurmUser=$(id -un)
SlurmdUser=root
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool/slurmd
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
SwitchType=switch/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

start_munged() {
    if [ -n "$(live_pid "$BASE/run/munged.pid" munged)" ]; then return 0; fi
    # --force: the private directory lives under /tmp (world-writable, sticky),
    # which munged's strict path checks would otherwise refuse.
    munged --force \
        --socket="$MUNGE_SOCKET" \
        --key-file="$BASE/munge/munge.key" \
        --pid-file="$BASE/run/munged.pid" \
        --log-file="$BASE/log/munged.log" \
        --seed-file="$BASE/munge/munged.seed" \
        || die "munged did not start (see $BASE/log/munged.log)"
    local i
    for i in $(seq 1 50); do
        [ -S "$MUNGE_SOCKET" ] && return 0
        sleep 0.1
    done
    die "munged socket $MUNGE_SOCKET did not appear"
}

start_slurm() {
    if [ -z "$(live_pid "$BASE/run/slurmctld.pid" slurmctld)" ]; then
        slurmctld -f "$CONF" || die "slurmctld did not start (see $BASE/log/slurmctld.log)"
    fi
    if [ -z "$(live_pid "$BASE/run/slurmd.pid" slurmd)" ]; then
        slurmd -f "$CONF" || die "slurmd did not start (see $BASE/log/slurmd.log)"
    fi
}

# Waits until sinfo shows the node idle (or mixed/allocated: up and usable).
wait_idle() {
    local deadline=$((SECONDS + TIMEOUT)) state=""
    while [ $SECONDS -lt $deadline ]; do
        state=$(timeout 10 sinfo -h -N -o '%T' 2>/dev/null | head -1 || true)
        case "$state" in
            idle|mixed|allocated|completing)
                log "node $(hostname -s) is $state; export SLURM_CONF=$CONF"
                return 0 ;;
            down*|drain*)
                timeout 10 scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 1
    done
    die "node not idle after ${TIMEOUT}s (state '${state:-no answer}'); logs in $BASE/log"
}

stop_all() {
    # Job steps run under slurmstepd, children of no daemon we could kill by
    # pid file: cancel this cluster's jobs first while slurmctld still answers.
    if [ -n "$(live_pid "$BASE/run/slurmctld.pid" slurmctld)" ]; then
        timeout 10 scancel --full --quiet "--user=$(id -un)" 2>/dev/null || true
        local i
        for i in $(seq 1 20); do
            [ -z "$(timeout 5 squeue -h -t running,completing 2>/dev/null || true)" ] && break
            sleep 0.5
        done
    fi
    local name pid
    for name in slurmd slurmctld munged; do
        pid=$(live_pid "$BASE/run/$name.pid" "$name")
        [ -n "$pid" ] || continue
        kill "$pid"
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        log "stopped $name ($pid)"
    done
    rm -f "$BASE/run/"*.pid
}

case "${1:-}" in
    start)
        install_if_missing
        write_config
        start_munged
        start_slurm
        wait_idle ;;
    status)
        wait_idle ;;
    stop)
        stop_all ;;
    env)
        echo "export SLURM_CONF=$CONF" ;;
    *)
        echo "usage: $0 start|stop|status|env" >&2
        exit 2 ;;
esac
