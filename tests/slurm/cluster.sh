#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, from Debian's packages (slurm-wlm 22.05, munge), for the SLURM
# multirun test (tests/test_slurm.py). Needs root (slurmd starts jobs as their user; munged runs as munge).
#
#   bash tests/slurm/cluster.sh install      apt-get install slurm-wlm munge (once per machine; .ci/run does it)
#   bash tests/slurm/cluster.sh start DIR    writes DIR/slurm.conf, starts munged, slurmctld and slurmd, and waits
#                                            until the node is idle; prints the SLURM_CONF to export
#   bash tests/slurm/cluster.sh stop DIR     stops the daemons it started (munged only if it was not running)
#
# The node is this machine at 127.0.0.1 with its cores and memory; one partition "debug". Accounting is off
# (no slurmdbd): submitit then polls job states with squeue instead of sacct (tests/test_slurm.py quiets its
# one warning about it).
set -euo pipefail

cmd="${1:-}"
dir="${2:-}"

case "$cmd" in
install)
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
    ;;
start)
    [[ -n "$dir" ]] || { echo "usage: $0 start DIR" >&2; exit 2; }
    for exe in munged slurmctld slurmd sinfo; do
        command -v "$exe" >/dev/null || {
            echo "error: $exe not found; install Debian's slurm-wlm and munge: bash $0 install" >&2
            exit 1
        }
    done
    mkdir -p "$dir/state" "$dir/spool" "$dir/log"
    # munge: a key readable by munge only, its socket folder owned by munge, the daemon run as munge
    install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
    install -d -o munge -g munge -m 0755 /run/munge
    [[ -s /etc/munge/munge.key ]] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none; }
    chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
    if ! munge -n >/dev/null 2>&1; then
        runuser -u munge -- /usr/sbin/munged
        touch "$dir/munged.started"  # stop stops it again
    fi
    node="$(hostname -s)"
    memory="$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"
    cat >"$dir/slurm.conf" <<EOF
ClusterName=madloop
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
SchedulerType=sched/backfill
NodeName=$node NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF="$dir/slurm.conf"
    trap 'bash "$0" stop "$dir"' ERR  # a failed start leaves nothing running
    slurmctld
    slurmd
    for _ in $(seq 60); do
        state="$(sinfo -h -o %T 2>/dev/null || true)"
        [[ "$state" == idle* ]] && { echo "SLURM_CONF=$SLURM_CONF"; exit 0; }
        sleep 0.5
    done
    echo "error: the node did not become idle (state: ${state:-none}); logs in $dir/log" >&2
    tail -5 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
    bash "$0" stop "$dir"
    exit 1
    ;;
stop)
    [[ -n "$dir" ]] || { echo "usage: $0 stop DIR" >&2; exit 2; }
    # cancel what is left (a timed-out test's jobs), then stop the daemons: TERM, up to 10 s, then KILL
    [[ -s "$dir/slurm.conf" ]] && SLURM_CONF="$dir/slurm.conf" scancel --full -p debug 2>/dev/null || true
    pids=()
    for pid in "$dir/slurmd.pid" "$dir/slurmctld.pid"; do
        [[ -s "$pid" ]] && pids+=("$(cat "$pid")")
    done
    if [[ -e "$dir/munged.started" && -s /run/munge/munged.pid ]]; then
        pids+=("$(cat /run/munge/munged.pid)")
        rm -f "$dir/munged.started"
    fi
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for _ in $(seq 20); do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [[ $alive == 0 ]] && break
        sleep 0.5
    done
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    pkill -9 -f slurmstepd 2>/dev/null || true
    # job scripts still running from this cluster's spool, with their process groups (srun and the job's python)
    for pid in $(pgrep -f "$dir/spool/job" || true); do
        pgid="$(ps -o pgid= -p "$pid" | tr -d ' ')"
        [[ -n "$pgid" ]] && kill -9 -- "-$pgid" 2>/dev/null || true
        kill -9 "$pid" 2>/dev/null || true
    done
    ;;
*)
    echo "usage: $0 install | start DIR | stop DIR" >&2
    exit 2
    ;;
esac
