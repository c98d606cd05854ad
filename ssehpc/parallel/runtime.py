"""Choosing the domain for a run, checking the launch, and failing fast on any rank.

``srun`` with the wrong ``--mpi`` plugin silently starts N independent single-rank processes,
each of which would happily run the whole simulation.  Launchers in ``launchers/`` export
``SSEHPC_NRANKS``; :func:`make_domain` compares it (or ``SLURM_NTASKS`` under Slurm) with the
size of ``MPI.COMM_WORLD`` and refuses to run on a mismatch.

An exception on one rank would leave the others blocked in the next collective forever.
:func:`abort_on_error` prints the error with the rank that raised it and calls ``MPI_Abort``, which
ends every rank of the job (MPICH's Hydra and Slurm both tear the job down within seconds).

``MPI_Init`` itself sometimes fails transiently (a UCX address exchange that goes wrong, seen with
the pip ``mpich`` wheel under ``srun --mpi=pmi2``).  A launcher that exports ``SSEHPC_MPI_READY``
(a file path) learns from :func:`make_domain` whether MPI started: the file exists once
``MPI.COMM_WORLD`` is up, before any work.  A step that failed without it never computed anything,
so ``launchers/srun.sh`` and campaign MPI members start it once more.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

from ssehpc.parallel.domain import SerialDomain


class LaunchError(RuntimeError):
    """The MPI launch does not match what was requested."""


def expected_ranks() -> int | None:
    """Rank count requested by the launcher (``SSEHPC_NRANKS``, else ``SLURM_NTASKS``), if any."""
    for var in ("SSEHPC_NRANKS", "SLURM_NTASKS"):
        value = os.environ.get(var)
        if value:
            try:
                return int(value)
            except ValueError as err:
                raise LaunchError(f"{var}={value!r} is not an integer rank count") from err
    return None


def mpi_size() -> int:
    """Size of ``MPI.COMM_WORLD`` (1 if mpi4py is not installed or MPI is not launched)."""
    try:
        from mpi4py import MPI
    except ImportError:
        return 1
    return MPI.COMM_WORLD.Get_size()


def mark_mpi_ready() -> None:
    """Create the file named by ``SSEHPC_MPI_READY`` (if set): MPI started on this rank."""
    path = os.environ.get("SSEHPC_MPI_READY")
    if path:
        try:
            with open(path, "a"):
                pass
        except OSError:
            pass  # a launcher hint, never a reason to stop the run


def make_domain(grid: tuple[int, int, int] | None = None, *, require_mpi: bool = False):
    """The domain for this process: :class:`SerialDomain` on one rank, else an MPI domain.

    Raises:
        LaunchError: if the communicator size differs from the requested rank count.
    """
    want = expected_ranks()
    size = mpi_size()
    mark_mpi_ready()
    if want is not None and want != size:
        hint = (
            " Under Slurm, srun needs an MPI plugin that matches the MPI library: try"
            " `srun --mpi=pmi2` (or `--mpi=pmix`)."
            if "SLURM_JOB_ID" in os.environ
            else " Start ssehpc through launchers/mpiexec.sh or `mpiexec -n N`."
        )
        raise LaunchError(
            f"{want} MPI ranks were requested but MPI.COMM_WORLD has {size}: the processes were started"
            f" as independent runs and would each simulate the whole system.{hint}"
        )
    if size == 1 and not require_mpi:
        return SerialDomain()
    from ssehpc.parallel.mpi import MPIDomain

    return MPIDomain(grid=grid)


@contextmanager
def abort_on_error(domain: object) -> Iterator[None]:
    """Turn an exception on one rank into the end of the whole job, with the message shown."""
    try:
        yield
    except BaseException as err:
        size = getattr(domain, "size", 1)
        from ssehpc.simulation import RunStop  # lazy: the runtime is imported before the engine

        # A RunStop (e.g. an extrapolation stop) is decided collectively: every rank raises it
        # at the same step, so it is not a reason to abort the job.
        clean_exit = (isinstance(err, SystemExit) and err.code in (0, None)) or isinstance(err, RunStop)
        if size > 1 and not clean_exit:
            rank = getattr(domain, "rank", 0)
            sys.stderr.write(
                f"ssehpc: rank {rank} of {size} failed, aborting all ranks: {type(err).__name__}: {err}\n"
            )
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            sys.stdout.flush()
            domain.abort(1)
        raise


def local_rank(domain: object) -> int:
    """Rank of this process among the ranks on the same node."""
    for var in ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID"):
        if var in os.environ:
            return int(os.environ[var])
    comm = getattr(domain, "comm", None)
    if comm is None:
        return 0
    from mpi4py import MPI

    return comm.Split_type(MPI.COMM_TYPE_SHARED).Get_rank()


def rank_device(requested: str, domain: object):
    """Torch device for this rank: ``cuda:<local rank mod GPUs per node>`` for ``cuda`` (one GPU
    per rank), else the CPU.

    Raises:
        RuntimeError: if CUDA is requested but not available.
    """
    import torch

    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was requested but torch sees no CUDA device on this node")
        if ":" in requested:
            return torch.device(requested)
        return torch.device("cuda", local_rank(domain) % torch.cuda.device_count())
    return torch.device(requested)
