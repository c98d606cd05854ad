"""Every potential passes the conformance checks; the checks catch broken potentials."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from ssehpc.forces import ForceCompute
from ssehpc.potentials import PARAMETER_SETS, BuckinghamDSF, LennardJones, SumPotential
from ssehpc.potentials.base import Potential, PotentialOutput
from ssehpc.state import State, concatenate
from tests.potentials import conformance
from tests.potentials.structures import SHEAR, argon, nacl

TF = PARAMETER_SETS["NaCl-TosiFumi"]


def lj() -> Potential:
    return LennardJones(0.0104, 3.405, 8.5)


def buckingham() -> Potential:
    return BuckinghamDSF(TF["charges"], TF["pairs"], alpha=0.25, cutoff=8.0, short_cutoff=7.0)


def nacl_lj() -> Potential:
    weak = {"Na-Na": (0.002, 2.5), "Na-Cl": (0.004, 2.9), "Cl-Cl": (0.006, 3.4)}
    return LennardJones(cutoff=6.0, pairs={tuple(k.split("-")): v for k, v in weak.items()})


def sum_half() -> Potential:
    return SumPotential([buckingham(), nacl_lj()])


def sum_mixed_lists() -> Potential:
    """A full-list member forces a full list; the half-list members run on the cut-out half list."""
    return SumPotential([conformance.FullListProbe(), buckingham(), nacl_lj()])


# name: (potential factory, small cell (< 2 x cutoff), a different second system)
SYSTEMS: dict[str, tuple[Callable[[], Potential], Callable[[], State], Callable[[], State]]] = {
    "lj": (
        lj,
        lambda: argon(2, jitter=0.1, seed=1),
        lambda: argon(1, a=5.4, jitter=0.1, deform=SHEAR, seed=2),
    ),
    "buckingham_dsf": (
        buckingham,
        lambda: nacl(1, jitter=0.1, deform=SHEAR, seed=1),
        lambda: nacl(1, a=5.9, jitter=0.15, seed=2),
    ),
    "sum": (
        sum_half,
        lambda: nacl(1, jitter=0.1, deform=SHEAR, seed=3),
        lambda: nacl(1, a=5.5, jitter=0.1, seed=4),
    ),
    "sum_mixed_lists": (
        sum_mixed_lists,
        lambda: nacl(1, jitter=0.1, deform=SHEAR, seed=5),
        lambda: nacl(1, a=5.8, jitter=0.1, seed=6),
    ),
}

CHECKS = {
    "forces_fd": lambda p, s, o: conformance.check_forces_fd(p, s),
    "virial_fd": lambda p, s, o: conformance.check_virial_fd(p, s),
    "invariances": lambda p, s, o: conformance.check_invariances(p, s),
    "energy_sum": lambda p, s, o: conformance.check_energy_sum(p, concatenate([s, o])),
    "batch": lambda p, s, o: conformance.check_batch(p, s, o),
    "small_cell": lambda p, s, o: conformance.check_small_cell(p, s),
    "half_full": lambda p, s, o: conformance.check_half_full(p, s),
}


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("system", list(SYSTEMS))
def test_conformance(system: str, check: str) -> None:
    make_potential, small, other = SYSTEMS[system]
    CHECKS[check](make_potential(), small(), other())


# ------------------------------------------------------------------------------------ mutants
class Mutant(Potential):
    """LJ with one deliberate bug, to show that each check can fail."""

    def __init__(self, bug: str) -> None:
        super().__init__()
        self.inner = lj()
        self.cutoff = self.inner.cutoff
        self.bug = bug

    def forward(self, local, nl) -> PotentialOutput:
        out = self.inner(local, nl)
        e, f, w = out.energies.clone(), out.forces.clone(), out.virial.clone()
        if self.bug == "force_scale":
            f = f * 1.0001
        elif self.bug == "virial_sign":
            w = -w
        elif self.bug == "ghost_energy_lost":
            e[local.n_owned :] = 0.0
        elif self.bug == "absolute_position":
            e = e + 1e-3 * local.positions[:, 0]
        elif self.bug == "virial_to_system_0":
            w = torch.zeros_like(w)
            w[0] = out.virial.sum(0)
        return PotentialOutput(energies=e, forces=f, virial=w)


@pytest.mark.parametrize(
    ("bug", "check"),
    [
        ("force_scale", "forces_fd"),
        ("virial_sign", "virial_fd"),
        ("ghost_energy_lost", "small_cell"),
        ("absolute_position", "invariances"),
        ("virial_to_system_0", "batch"),
    ],
)
def test_conformance_catches(bug: str, check: str) -> None:
    _, small, other = SYSTEMS["lj"]
    with pytest.raises(AssertionError):
        CHECKS[check](Mutant(bug), small(), other())


# ------------------------------------------------------------------------------------ species
@pytest.mark.parametrize(
    ("potential", "element", "z"),
    [
        (lambda: LennardJones(cutoff=8.5, pairs={("Ar", "Ar"): (0.0104, 3.405)}), "Kr", 36),
        (buckingham, "Li", 3),
        (sum_half, "Li", 3),
        (lambda: SumPotential([lj(), buckingham()]), "K", 19),
    ],
    ids=["lj", "buckingham_dsf", "sum", "sum_with_any_species_member"],
)
def test_unknown_element_is_named(potential: Callable[[], Potential], element: str, z: int) -> None:
    state = nacl(1) if z != 36 else argon(1)
    state.species[0] = z
    with pytest.raises(ValueError, match=rf"\b{element}\b"):
        ForceCompute(potential()).check(state)


def test_known_elements_pass_check() -> None:
    ForceCompute(sum_half()).check(nacl(1))
    ForceCompute(lj()).check(nacl(1))  # LJ without pairs takes any element
