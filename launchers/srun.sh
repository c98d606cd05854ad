#!/usr/bin/env bash
# Run ssehpc on N ranks inside a Slurm allocation:  launchers/srun.sh N ssehpc-args...
# Uses --mpi=${SSEHPC_SRUN_MPI:-pmi2} (works with the pip `mpich` wheel and most site MPICH/Open MPI
# builds; use pmix for Open MPI 5). ssehpc checks SSEHPC_NRANKS against MPI.COMM_WORLD, so a wrong
# plugin that starts N independent single-rank processes fails at once instead of running N copies.
# --kill-on-bad-exit: a rank that dies (MPI_Abort, a crash) ends the step; the others do not spin on.
# MPI_Init can fail transiently (a UCX address exchange); ssehpc creates $SSEHPC_MPI_READY once MPI
# is up, so a step that failed without it computed nothing and is started once more.
# GPUs: one per rank; SLURM_LOCALID picks the device (set --gpus-per-task=1 or --gpu-bind=none).
set -euo pipefail
if [[ $# -lt 2 || ! $1 =~ ^[0-9]+$ ]]; then
    echo "usage: $0 NRANKS ssehpc-subcommand [args...]" >&2
    exit 2
fi
n=$1; shift
export SSEHPC_NRANKS=$n
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
ready_dir=${SSEHPC_READY_DIR:-$PWD}  # shared with rank 0's node (the submit directory)
export SSEHPC_MPI_READY=$ready_dir/.ssehpc-mpi-ready.${SLURM_JOB_ID:-0}.$$
trap 'rm -f "$SSEHPC_MPI_READY"' EXIT
rc=0
for attempt in 1 2; do
    rm -f "$SSEHPC_MPI_READY"
    rc=0
    # shellcheck disable=SC2086 # SRUN_ARGS is a list of options
    srun -n "$n" --mpi="${SSEHPC_SRUN_MPI:-pmi2}" --kill-on-bad-exit=1 ${SRUN_ARGS:-} \
        "${PYTHON:-python}" -m ssehpc "$@" || rc=$?
    if [[ $rc -eq 0 || -e $SSEHPC_MPI_READY || $attempt -eq 2 ]]; then
        break
    fi
    echo "launchers/srun.sh: MPI did not start (srun exit $rc before MPI_Init completed); starting the step once more" >&2
done
exit "$rc"
