"""Conformance checks that every :class:`~ssehpc.potentials.base.Potential` must pass.

Each ``check_*`` function evaluates the potential through :class:`~ssehpc.forces.ForceCompute` (so
ghosts, neighbour lists and the reverse sum are part of what is checked), in float64, and raises
``AssertionError`` with the size of the violation.  :func:`check_all` runs them all.  Reuse from any
test directory (pytest runs with ``pythonpath = ["."]``, so ``tests`` is a namespace package)::

    from tests.potentials import conformance

    conformance.check_all(my_potential, small_state, other_state)

What is checked:

* forces are ``−∂E/∂x`` (5-point central finite differences on a few atoms);
* the virial is ``W = −∂E/∂ε`` for the homogeneous deformation ``x → x(I+ε)``, ``cell → cell(I+ε)``
  (all nine components, so a non-symmetric ``W`` is checked too);
* translation and rotation invariance (energy, rotated forces, ``W → RᵀWR``);
* per-atom energies (after the ghost reverse sum) add up to the system energy;
* batching: two different systems evaluated together give their separate results;
* small cells: a cell thinner than ``2·cutoff`` (an atom sees several images of one neighbour) has
  the same per-atom energies and forces as its supercell, and ``n_rep`` times smaller ``E``, ``W``;
* half list vs full list: a half-list potential gives the same result on the half list cut out of
  a full list (through :class:`~ssehpc.potentials.SumPotential`) as on the native half list.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ssehpc import space
from ssehpc.forces import ForceCompute
from ssehpc.neighbors import NeighborList
from ssehpc.parallel.domain import LocalAtoms
from ssehpc.potentials import SumPotential
from ssehpc.potentials.base import Potential, PotentialOutput
from ssehpc.state import State, concatenate

#: Relative tolerance of comparisons that should hold to round-off (float64).
EXACT_RTOL = 1e-10
#: Relative tolerance of finite-difference comparisons (5-point stencil, float64).
FD_RTOL = 1e-6


@dataclass
class Result:
    """One evaluation: ``energy [S]`` eV, ``energies [N]`` eV, ``forces [N,3]`` eV/Å, ``virial [S,3,3]`` eV."""

    energy: torch.Tensor
    energies: torch.Tensor
    forces: torch.Tensor
    virial: torch.Tensor


def evaluate(potential: Potential, state: State, *, skin: float = 1.0) -> Result:
    """Evaluate ``potential`` on a float64 copy of ``state`` with a fresh :class:`ForceCompute`."""
    st = state.to(dtype=torch.float64).clone()
    fc = ForceCompute(potential, skin=skin)
    fc.check(st)
    fc.compute(st)
    out = potential(fc.local, fc.nl)
    energies = fc.domain.reverse_sum(fc.local, out.energies)
    return Result(energy=st.energy, energies=energies, forces=st.forces, virial=st.virial)


def energy(potential: Potential, state: State) -> torch.Tensor:
    """``[S]`` eV."""
    return evaluate(potential, state).energy


def assert_close(
    actual: torch.Tensor, expected: torch.Tensor, rtol: float, what: str, atol: float = 0.0
) -> None:
    """``max|actual − expected| ≤ rtol · max|expected| + atol`` (a scale-aware relative test)."""
    actual, expected = actual.detach().double(), expected.detach().double()
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    err = float((actual - expected).abs().max()) if expected.numel() else 0.0
    assert err <= rtol * scale + atol, (
        f"{what}: max deviation {err:.3e} > {rtol:.1e} x scale {scale:.3e} (+ {atol:.1e}); "
        f"relative {err / max(scale, 1e-300):.3e}"
    )


def _fd5(f: Callable[[float], float], h: float) -> float:
    """5-point central derivative ``f'(0)``, error O(h⁴)."""
    return (-f(2 * h) + 8 * f(h) - 8 * f(-h) + f(-2 * h)) / (12 * h)


# ---------------------------------------------------------------------------------------- checks
def check_forces_fd(
    potential: Potential,
    state: State,
    *,
    n_atoms: int = 3,
    h: float = 1e-5,
    rtol: float = FD_RTOL,
    seed: int = 0,
) -> None:
    """Forces of ``n_atoms`` random atoms (all 3 components) equal ``−∂E/∂x`` (single system).

    ``h`` (Å) is small so that a truncated potential (force jump at the cutoff) rarely has a pair
    crossing its cutoff inside the stencil; float64 round-off is then ~1e-10 eV/Å.
    """
    assert state.n_systems == 1, "check_forces_fd wants a single system"
    ref = evaluate(potential, state)
    g = torch.Generator().manual_seed(seed)
    atoms = torch.randperm(state.n_atoms, generator=g)[: min(n_atoms, state.n_atoms)].tolist()
    fd = torch.zeros(len(atoms), 3, dtype=torch.float64)
    for k, a in enumerate(atoms):
        for c in range(3):

            def e_of(d: float, a: int = a, c: int = c) -> float:
                st = state.to(dtype=torch.float64).clone()
                st.positions[a, c] += d
                return float(energy(potential, st)[0])

            fd[k, c] = -_fd5(e_of, h)
    assert_close(ref.forces[atoms], fd, rtol, f"forces vs -dE/dx (atoms {atoms})", atol=1e-9)


def strained(state: State, eps: torch.Tensor) -> State:
    """``x → x(I+ε)``, ``cell → cell(I+ε)`` (rows are vectors)."""
    st = state.to(dtype=torch.float64).clone()
    m = torch.eye(3, dtype=torch.float64) + eps
    st.positions = st.positions @ m
    st.cell = st.cell @ m
    return st


def check_virial_fd(potential: Potential, state: State, *, h: float = 1e-6, rtol: float = FD_RTOL) -> None:
    """``W_ab = −∂E/∂ε_ab`` for all nine components (single system; ``h`` small as in
    :func:`check_forces_fd`)."""
    assert state.n_systems == 1, "check_virial_fd wants a single system"
    ref = evaluate(potential, state)
    fd = torch.zeros(3, 3, dtype=torch.float64)
    for a, b in itertools.product(range(3), range(3)):

        def e_of(d: float, a: int = a, b: int = b) -> float:
            eps = torch.zeros(3, 3, dtype=torch.float64)
            eps[a, b] = d
            return float(energy(potential, strained(state, eps))[0])

        fd[a, b] = -_fd5(e_of, h)
    assert_close(ref.virial[0], fd, rtol, "virial vs -dE/dstrain", atol=1e-9)


def random_rotation(seed: int = 0) -> torch.Tensor:
    """A proper rotation matrix ``[3, 3]`` (float64)."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def check_invariances(potential: Potential, state: State, *, rtol: float = EXACT_RTOL) -> None:
    """Translation (by a non-lattice vector) and rotation invariance."""
    ref = evaluate(potential, state)
    moved = state.to(dtype=torch.float64).clone()
    moved.positions = moved.positions + torch.tensor([0.731, -1.377, 2.913], dtype=torch.float64)
    out = evaluate(potential, moved)
    assert_close(out.energy, ref.energy, rtol, "energy after translation")
    assert_close(out.forces, ref.forces, rtol, "forces after translation")
    assert_close(out.virial, ref.virial, rtol, "virial after translation")
    rot = random_rotation(1)  # x → x R (row vectors)
    turned = state.to(dtype=torch.float64).clone()
    turned.positions = turned.positions @ rot
    turned.cell = turned.cell @ rot
    out = evaluate(potential, turned)
    assert_close(out.energy, ref.energy, rtol, "energy after rotation")
    assert_close(out.forces, ref.forces @ rot, rtol, "forces after rotation")
    assert_close(out.virial, rot.T @ ref.virial @ rot, rtol, "virial after rotation")


def check_energy_sum(potential: Potential, state: State, *, rtol: float = EXACT_RTOL) -> None:
    """Per-atom energies (ghost rows summed onto owners) add up to each system's energy."""
    ref = evaluate(potential, state)
    per_system = torch.zeros_like(ref.energy).index_add_(0, state.system_idx, ref.energies)
    assert_close(per_system, ref.energy, rtol, "sum of per-atom energies vs system energy")
    assert bool(torch.isfinite(ref.energies).all()), "non-finite per-atom energies"


def check_batch(potential: Potential, first: State, second: State, *, rtol: float = EXACT_RTOL) -> None:
    """Two different systems evaluated as one batch give their separate results."""
    a, b = evaluate(potential, first), evaluate(potential, second)
    both = evaluate(potential, concatenate([first.to(dtype=torch.float64), second.to(dtype=torch.float64)]))
    n = first.n_atoms
    assert_close(both.energy, torch.cat([a.energy, b.energy]), rtol, "batched energies")
    assert_close(both.forces[:n], a.forces, rtol, "batched forces, system 0")
    assert_close(both.forces[n:], b.forces, rtol, "batched forces, system 1")
    assert_close(both.energies, torch.cat([a.energies, b.energies]), rtol, "batched per-atom energies")
    assert_close(both.virial, torch.cat([a.virial, b.virial]), rtol, "batched virials")


def supercell(state: State, reps: tuple[int, int, int]) -> State:
    """``reps`` copies of a single-system state along the three cell vectors (replica-major order)."""
    assert state.n_systems == 1
    st = state.to(dtype=torch.float64)
    cell = st.cell[0]
    shifts = torch.tensor(list(itertools.product(*(range(r) for r in reps))), dtype=torch.float64)
    pos = (st.positions[None, :, :] + (shifts @ cell)[:, None, :]).reshape(-1, 3)
    n_rep = shifts.shape[0]
    return State.from_arrays(
        pos,
        st.masses.repeat(n_rep),
        st.species.repeat(n_rep),
        torch.diag(torch.tensor(reps, dtype=torch.float64)) @ cell,
    )


def check_small_cell(
    potential: Potential, state: State, *, reps: tuple[int, int, int] = (2, 2, 2), rtol: float = EXACT_RTOL
) -> None:
    """A cell thinner than ``2·cutoff`` agrees with its supercell (per atom, and ``E``, ``W`` × n_rep)."""
    width = float(space.perpendicular_widths(state.cell.double()).min())
    assert width < 2 * potential.cutoff, (
        f"check_small_cell needs a cell thinner than 2 x cutoff = {2 * potential.cutoff} Å, got {width:.3f} Å"
    )
    small = evaluate(potential, state)
    big = evaluate(potential, supercell(state, reps))
    n_rep = math.prod(reps)
    assert_close(big.energy, n_rep * small.energy, rtol, f"supercell {reps} energy vs {n_rep} x small cell")
    assert_close(big.virial, n_rep * small.virial, rtol, f"supercell {reps} virial vs {n_rep} x small cell")
    assert_close(big.forces, small.forces.repeat(n_rep, 1), rtol, f"supercell {reps} forces vs small cell")
    assert_close(big.energies, small.energies.repeat(n_rep), rtol, f"supercell {reps} per-atom energies")


class FullListProbe(Potential):
    """Zero potential that asks for a full neighbour list (forces a :class:`SumPotential` to build one)."""

    half_list = False

    def __init__(self, cutoff: float = 1.0) -> None:
        super().__init__()
        self.cutoff = cutoff

    def forward(self, local: LocalAtoms, nl: NeighborList) -> PotentialOutput:
        pos = local.positions
        return PotentialOutput(
            energies=torch.zeros(local.n_local, dtype=pos.dtype, device=pos.device),
            forces=torch.zeros_like(pos),
            virial=torch.zeros((local.n_systems, 3, 3), dtype=pos.dtype, device=pos.device),
        )


def check_half_full(potential: Potential, state: State, *, rtol: float = EXACT_RTOL) -> None:
    """A half-list potential gives the same result on a half list cut from a full list.

    Not applicable to full-list potentials (returns without checking).
    """
    if not potential.half_list:
        return
    probe = SumPotential([potential, FullListProbe()])
    assert not probe.half_list
    ref, out = evaluate(potential, state), evaluate(probe, state)
    assert_close(out.energy, ref.energy, rtol, "energy on half view of full list")
    assert_close(out.energies, ref.energies, rtol, "per-atom energies on half view of full list")
    assert_close(out.forces, ref.forces, rtol, "forces on half view of full list")
    assert_close(out.virial, ref.virial, rtol, "virial on half view of full list")


def check_all(potential: Potential, state: State, other: State) -> None:
    """Every check; ``state`` must be a single system thinner than ``2·cutoff``, ``other`` a
    different single system."""
    check_forces_fd(potential, state)
    check_virial_fd(potential, state)
    check_invariances(potential, state)
    check_energy_sum(potential, concatenate([state, other]))
    check_batch(potential, state, other)
    check_small_cell(potential, state)
    check_half_full(potential, state)
