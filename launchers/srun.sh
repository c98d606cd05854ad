#!/usr/bin/env bash
# Run ssehpc on N ranks inside a Slurm allocation:  launchers/srun.sh N ssehpc-args...
# Uses --mpi=${SSEHPC_SRUN_MPI:-pmi2} (works with the pip `mpich` wheel and most site MPICH/Open MPI
# builds; use pmix for Open MPI 5). ssehpc checks SSEHPC_NRANKS against MPI.COMM_WORLD, so a wrong
# plugin that starts N independent single-rank processes fails at once instead of running N copies.
# GPUs: one per rank; SLURM_LOCALID picks the device (set --gpus-per-task=1 or --gpu-bind=none).
set -euo pipefail
if [[ $# -lt 2 || ! $1 =~ ^[0-9]+$ ]]; then
    echo "usage: $0 NRANKS ssehpc-subcommand [args...]" >&2
    exit 2
fi
n=$1; shift
export SSEHPC_NRANKS=$n
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec srun -n "$n" --mpi="${SSEHPC_SRUN_MPI:-pmi2}" ${SRUN_ARGS:-} "${PYTHON:-python}" -m ssehpc "$@"
