#!/usr/bin/env bash
# Run ssehpc on N MPI ranks with mpiexec:  launchers/mpiexec.sh N ssehpc-args...
#   e.g. launchers/mpiexec.sh 4 md examples/lj_argon.yaml
# Exports SSEHPC_NRANKS so every rank checks that MPI.COMM_WORLD really has N ranks.
# MPIEXEC (default: mpiexec on PATH, e.g. the pip `mpich` wheel's) and PYTHON can be overridden.
set -euo pipefail
if [[ $# -lt 2 || ! $1 =~ ^[0-9]+$ ]]; then
    echo "usage: $0 NRANKS ssehpc-subcommand [args...]" >&2
    exit 2
fi
n=$1; shift
export SSEHPC_NRANKS=$n
# One thread per rank unless the user says otherwise (ranks already use every core).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec "${MPIEXEC:-mpiexec}" -n "$n" ${MPIEXEC_ARGS:-} "${PYTHON:-python}" -m ssehpc "$@"
