#!/usr/bin/env bash
# Stop the local Slurm that schedulers/local-slurm/start.sh started: only the daemons whose PIDs
# start.sh recorded in the run directory (slurmd, slurmctld, and munged if it started it).
# Idempotent.  Jobs still running are cancelled first (SIGTERM, then SIGKILL after 10 s).
#   SSEHPC_SLURM_RUN   run directory (default /tmp/ssehpc-slurm)
#   --purge            also delete the run directory (state, logs)
set -uo pipefail
run=${SSEHPC_SLURM_RUN:-/tmp/ssehpc-slurm}
say() { echo "local-slurm: $*"; }

stop_pid() {  # name pidfile
    local name=$1 file=$2 pid
    [[ -s $file ]] || return 0
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null; fi
        say "stopped $name (pid $pid)"
    fi
    rm -f "$file"
}

[[ -d $run ]] || { say "nothing to stop (no $run)"; exit 0; }
if [[ -s $run/slurm.conf ]] && command -v scancel >/dev/null; then
    # End the jobs while slurmd is still there to deliver the signals (a rank stuck in C code, e.g.
    # a failed MPI_Init, ignores SIGTERM: SIGKILL the rest), then stop the daemons.
    export SLURM_CONF=$run/slurm.conf
    jobs_left() { [[ -n $(timeout 5 squeue -h -u "$(id -un)" -o %i 2>/dev/null) ]]; }
    wait_jobs() { for _ in $(seq 20); do jobs_left || return 0; sleep 0.5; done; }  # up to 10 s
    timeout 5 scancel --state=RUNNING,PENDING -u "$(id -un)" 2>/dev/null || true
    wait_jobs
    if jobs_left; then
        timeout 5 scancel --full --signal=KILL -u "$(id -un)" 2>/dev/null || true
        wait_jobs
        say "killed the jobs that did not end on SIGTERM"
    fi
fi
stop_pid slurmd "$run/slurmd.pid"
stop_pid slurmctld "$run/slurmctld.pid"
stop_pid munged "$run/munged.pid"
if [[ -s $run/etc-link ]]; then
    link=$(cat "$run/etc-link")
    if [[ -L $link && $(readlink "$link") == "$run/slurm.conf" ]]; then rm -f "$link"; fi
    rm -f "$run/etc-link"
fi
if [[ ${1:-} == --purge ]]; then rm -rf "$run"; say "removed $run"; fi
exit 0
