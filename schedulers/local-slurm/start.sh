#!/usr/bin/env bash
# Start a single-node Slurm on this machine for tests:  schedulers/local-slurm/start.sh
#
# Starts munged (as user munge; only if no munged is running), slurmctld and `slurmd -N localhost`
# with a slurm.conf generated from slurm.conf.in into the run directory, then waits until `sinfo`
# shows the node idle (about 10 s).  Idempotent: a second call with the daemons up does nothing.
# stop.sh stops exactly the daemons this script started (their PIDs are in the run directory).
#
# Needs root (munged runs as user munge, slurmd as root) and the Debian/Ubuntu packages
#   apt-get install -y slurm-wlm munge        # optional: libpmix-dev for srun --mpi=pmix
# This script never installs anything; it says what is missing.
#
# Environment:
#   SSEHPC_SLURM_RUN        run directory (default /tmp/ssehpc-slurm): slurm.conf, state, logs, PIDs
#   SSEHPC_SLURM_PARTITION  partition name (default debug)
#   SSEHPC_SLURM_CPUS       CPUs of the node (default: what `slurmd -C` reports)
#   SSEHPC_SLURM_TIMEOUT    seconds to wait for the node to be idle (default 60)
#
# Clients (sinfo, srun, sbatch, dask-jobqueue) find the cluster through SLURM_CONF=$RUN/slurm.conf;
# if /etc/slurm/slurm.conf does not exist, a link to it is made there too (removed by stop.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
run=${SSEHPC_SLURM_RUN:-/tmp/ssehpc-slurm}
partition=${SSEHPC_SLURM_PARTITION:-debug}
timeout=${SSEHPC_SLURM_TIMEOUT:-60}
conf=$run/slurm.conf
export SLURM_CONF=$conf
PATH=$PATH:/usr/sbin:/sbin

say() { echo "local-slurm: $*"; }
die() { echo "local-slurm: error: $*" >&2; exit 1; }

missing=()
for b in munged slurmctld slurmd sinfo srun sbatch scontrol; do
    command -v "$b" >/dev/null || missing+=("$b")
done
if ((${#missing[@]})); then
    die "missing ${missing[*]}; install them with:  apt-get install -y slurm-wlm munge   (as root)"
fi
[[ $(id -u) -eq 0 ]] || die "must run as root (munged runs as user munge, slurmd as root); try sudo $0"
id munge >/dev/null 2>&1 || die "no user 'munge' (the munge package creates it): apt-get install -y munge"

alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

node_idle() { sinfo -h -N -n localhost -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'; }

if alive "$run/slurmctld.pid" && alive "$run/slurmd.pid" && node_idle; then
    say "already running (run directory $run)"
    echo "export SLURM_CONF=$conf"
    exit 0
fi

mkdir -p "$run/state" "$run/spool"
chmod 755 "$run"

# --- slurm.conf from the template: the node's real CPUs, RealMemory below what slurmd reports.
hw=$(slurmd -C | head -1)
cpus=${SSEHPC_SLURM_CPUS:-$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$hw")}
mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
[[ -n $cpus && -n $mem ]] || die "cannot read CPUs/RealMemory from 'slurmd -C': $hw"
mem=$((mem * 95 / 100))
sed -e "s|@RUN@|$run|g" -e "s|@CPUS@|$cpus|g" -e "s|@MEMORY@|$mem|g" -e "s|@PARTITION@|$partition|g" \
    -e "s|@CTLD_PORT@|${SSEHPC_SLURMCTLD_PORT:-6817}|g" -e "s|@SLURMD_PORT@|${SSEHPC_SLURMD_PORT:-6818}|g" \
    "$here/slurm.conf.in" >"$conf"
if [[ ! -e /etc/slurm/slurm.conf ]]; then
    mkdir -p /etc/slurm
    ln -s "$conf" /etc/slurm/slurm.conf
    echo /etc/slurm/slurm.conf >"$run/etc-link"
fi

# --- munge: a key if there is none; munged as user munge unless one is already running.
if [[ ! -s /etc/munge/munge.key ]]; then
    say "creating /etc/munge/munge.key"
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key
    else dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; fi
    chown munge:munge /etc/munge /etc/munge/munge.key
    chmod 700 /etc/munge
    chmod 400 /etc/munge/munge.key
fi
if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "munged already running (not started here, will not be stopped)"
else
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 755 /run/munge
    rm -f /run/munge/munged.pid
    runuser -u munge -- munged --pid-file=/run/munge/munged.pid
    for _ in $(seq 50); do [[ -s /run/munge/munged.pid ]] && break; sleep 0.1; done
    cp /run/munge/munged.pid "$run/munged.pid"
    say "munged started (pid $(cat "$run/munged.pid"))"
fi

# --- slurmctld, then slurmd (each only if the one we started before is not alive).
if ! alive "$run/slurmctld.pid"; then
    slurmctld -f "$conf"
    for _ in $(seq 100); do alive "$run/slurmctld.pid" && scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.1; done
    alive "$run/slurmctld.pid" || die "slurmctld did not start; see $run/slurmctld.log"
    say "slurmctld started (pid $(cat "$run/slurmctld.pid"))"
fi
if ! alive "$run/slurmd.pid"; then
    slurmd -f "$conf" -N localhost
    for _ in $(seq 100); do alive "$run/slurmd.pid" && break; sleep 0.1; done
    alive "$run/slurmd.pid" || die "slurmd did not start; see $run/slurmd.log"
    say "slurmd started (pid $(cat "$run/slurmd.pid"))"
fi

# --- wait for the node.
t0=$SECONDS
until node_idle; do
    if ((SECONDS - t0 > timeout)); then
        sinfo -N -l >&2 || true
        die "node not idle after ${timeout}s; see $run/slurmctld.log and $run/slurmd.log"
    fi
    # A node left DOWN by an earlier run comes back with an explicit resume.
    if sinfo -h -N -n localhost -o '%T' 2>/dev/null | grep -Eq '^(down|drain)'; then
        scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true
    fi
    sleep 0.5
done
sinfo
say "ready in $((SECONDS - t0)) s after the daemons started (run directory $run)"
echo "export SLURM_CONF=$conf"
