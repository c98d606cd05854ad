"""Domain decomposition: the serial null object (and, later, the MPI bricks)."""

from ssehpc.parallel.domain import LocalAtoms, SerialDomain

__all__ = ["LocalAtoms", "SerialDomain"]
