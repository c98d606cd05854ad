"""Runs one small MD job on however many ranks it was started with; used by test_mpi.py.

Usage: python mpi_driver.py OUT.pt JSON-options  (under mpiexec -n N, or alone for 1 rank)
"""

from __future__ import annotations

import json
import sys

import torch
from ase.build import bulk

from ssehpc import thermo
from ssehpc.forces import ForceCompute
from ssehpc.parallel.domain import SerialDomain
from ssehpc.parallel.runtime import abort_on_error, make_domain
from ssehpc.potentials.lj import LennardJones
from ssehpc.state import State


def build_state(opts: dict) -> State:
    rep = opts.get("repeat", 4)
    atoms = bulk("Ar", "fcc", a=5.26, cubic=True).repeat((rep, rep, rep))
    cell = torch.tensor(atoms.cell.array, dtype=torch.float64)
    # Triclinic: tilt the b and c vectors.
    cell[1, 0], cell[2, 0], cell[2, 1] = 1.3, -0.8, 0.9
    g = torch.Generator().manual_seed(0)
    pos = torch.tensor(atoms.positions, dtype=torch.float64) + 0.1 * torch.randn(
        len(atoms), 3, generator=g, dtype=torch.float64
    )
    if opts.get("corner"):
        # A crystallite in one corner of a cell three times larger: most bricks stay empty.
        cell = cell * 3.0
    n = len(atoms)
    state = State.from_arrays(
        pos, torch.full((n,), 39.948, dtype=torch.float64), torch.full((n,), 18), cell, seed=5
    )
    thermo.maxwell_boltzmann(state, SerialDomain(), opts.get("temperature", 300.0))
    return state


def make_integrator(opts: dict):
    name = opts.get("integrator", "nve")
    if name == "nve":
        from ssehpc.integrators.nve import VelocityVerlet

        return VelocityVerlet(opts.get("dt", 4.0))
    from ssehpc.integrators import make_integrator as make

    return make(name, opts.get("dt", 4.0), **opts.get("integrator_params", {}))


def main() -> None:
    out_path, opts = sys.argv[1], json.loads(sys.argv[2])
    domain = make_domain(require_mpi=opts.get("require_mpi", False))
    with abort_on_error(domain):
        full = build_state(opts)
        state = domain.distribute(full) if hasattr(domain, "distribute") else full
        forces = ForceCompute(
            LennardJones(cutoff=opts.get("cutoff", 6.0)), domain, skin=opts.get("skin", 0.5)
        )
        integrator = make_integrator(opts)
        forces.compute(state)
        integrator.attach(state, forces)
        migrated = 0
        for _ in range(opts.get("steps", 200)):
            if state.step == opts.get("fail_step") and domain.rank == opts.get("fail_rank"):
                raise RuntimeError(f"deliberate failure on rank {domain.rank} at step {state.step}")
            n_before = state.n_atoms
            integrator.step_one(state, forces)
            forces.compute(state)
            integrator.step_two(state, forces)
            state.step += 1
            migrated += abs(state.n_atoms - n_before)
        names = ["positions", "momenta", "forces", "image"]
        if hasattr(domain, "gather_by_tag"):
            rows = domain.gather_by_tag(state, names)
        else:
            order = torch.argsort(state.tag)
            rows = {n: getattr(state, n)[order] for n in names}
        counts = domain.allreduce_sum(torch.tensor([float(migrated)]))
        if domain.is_root:
            rows.update(
                energy=state.energy,
                virial=state.virial,
                builds=forces.nl.n_builds,
                migrated=float(counts[0]),
                size=domain.size,
            )
            torch.save(rows, out_path)


if __name__ == "__main__":
    main()
