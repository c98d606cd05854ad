"""Runs one small MD job on however many ranks it was started with; used by test_mpi.py.

Usage: python mpi_driver.py OUT.pt JSON-options  (under mpiexec -n N, or alone for 1 rank)

Systems (``system``): ``"argon"`` (default; fcc Ar, tilted cell, Lennard-Jones) or ``"lips"``
(a sheared β-Li₃PS₄ supercell for the built-in ML force field, ``potential: "mlff"``).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch
from ase.build import bulk

from ssehpc import thermo
from ssehpc.forces import ForceCompute
from ssehpc.parallel.domain import SerialDomain
from ssehpc.parallel.runtime import abort_on_error, make_domain
from ssehpc.potentials.lj import LennardJones
from ssehpc.state import State


def build_argon(opts: dict) -> State:
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
    return State.from_arrays(
        pos, torch.full((n,), 39.948, dtype=torch.float64), torch.full((n,), 18), cell, seed=5
    )


def build_lips(opts: dict) -> State:
    """β-Li₃PS₄ repeated ``lips_repeat`` times, sheared (atoms follow the cell), translated by the
    fractional vector ``translate`` (puts atoms near brick faces), rattled by ``rattle`` Å."""
    from ssehpc.structures.lips import beta_li3ps4

    atoms = beta_li3ps4().repeat(tuple(opts.get("lips_repeat", (1, 1, 3))))
    cell = np.array(atoms.cell.array)
    cell[1] += 0.15 * cell[0]
    cell[2] += 0.1 * cell[0] + 0.1 * cell[1]
    atoms.set_cell(cell, scale_atoms=True)
    g = torch.Generator().manual_seed(opts.get("rattle_seed", 1))
    pos = torch.tensor(atoms.positions + np.asarray(opts.get("translate", (0.0, 0.0, 0.0))) @ cell)
    pos = pos + opts.get("rattle", 0.03) * torch.randn(pos.shape, generator=g, dtype=torch.float64)
    return State.from_arrays(
        pos,
        torch.tensor(atoms.get_masses(), dtype=torch.float64),
        torch.tensor(atoms.numbers),
        torch.tensor(atoms.cell.array, dtype=torch.float64),
        seed=opts.get("seed", 5),
    )


def build_state(opts: dict) -> State:
    state = build_lips(opts) if opts.get("system") == "lips" else build_argon(opts)
    thermo.maxwell_boltzmann(state, SerialDomain(), opts.get("temperature", 300.0))
    return state


def make_potential(opts: dict):
    if opts.get("potential", "lj") == "lj":
        return LennardJones(cutoff=opts.get("cutoff", 6.0))
    from ssehpc.potentials import make_potential as make

    return make(opts["potential"], **opts.get("potential_params", {}))


def make_integrator(opts: dict):
    name = opts.get("integrator", "nve")
    if name == "nve":
        from ssehpc.integrators.nve import VelocityVerlet

        return VelocityVerlet(opts.get("dt", 4.0))
    from ssehpc.integrators import make_integrator as make

    return make(name, opts.get("dt", 4.0), **opts.get("integrator_params", {}))


def gather_rows(domain, state: State, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """Owned-row arrays (not state fields) plus the owning rank, from every rank, in tag order."""
    mine = {k: v.detach().cpu().numpy() for k, v in values.items()}
    mine["tag"] = state.tag.cpu().numpy()
    mine["rank"] = np.full(state.n_atoms, domain.rank, dtype=np.int64)
    parts = domain.comm.gather(mine, root=0) if hasattr(domain, "comm") else [mine]
    if not domain.is_root:
        return None
    order = np.argsort(np.concatenate([p["tag"] for p in parts]), kind="stable")
    return {k: torch.from_numpy(np.concatenate([p[k] for p in parts])[order]) for k in mine}


def main() -> None:
    out_path, opts = sys.argv[1], json.loads(sys.argv[2])
    domain = make_domain(require_mpi=opts.get("require_mpi", False))
    with abort_on_error(domain):
        full = build_state(opts)
        state = domain.distribute(full) if hasattr(domain, "distribute") else full
        forces = ForceCompute(make_potential(opts), domain, skin=opts.get("skin", 0.5))
        integrator = make_integrator(opts)
        steps = opts.get("steps", 200)
        extras = bool(opts.get("extras"))
        forces.compute(state, extras=extras and steps == 0)
        integrator.attach(state, forces)
        owner_start = gather_rows(domain, state, {})
        migrated = 0  # net change of the owned count, summed over steps
        left = 0  # atoms that left this rank, summed over steps
        start = time.perf_counter()
        for _ in range(steps):
            if state.step == opts.get("fail_step") and domain.rank == opts.get("fail_rank"):
                raise RuntimeError(f"deliberate failure on rank {domain.rank} at step {state.step}")
            n_before, tags_before = state.n_atoms, state.tag
            integrator.step_one(state, forces)
            forces.compute(state, extras=extras and state.step + 1 == steps)
            integrator.step_two(state, forces)
            state.step += 1
            migrated += abs(state.n_atoms - n_before)
            left += int((~torch.isin(tags_before, state.tag)).sum())
        elapsed = time.perf_counter() - start
        names = ["positions", "momenta", "forces", "image"]
        if hasattr(domain, "gather_by_tag"):
            rows = domain.gather_by_tag(state, names)
        else:
            order = torch.argsort(state.tag)
            rows = {n: getattr(state, n)[order] for n in names}
        per_atom = {"energies": forces.energies}
        if extras:
            per_atom["force_dev"] = forces.extras["force_dev"]
        owner_end = gather_rows(domain, state, per_atom)
        counts = domain.allreduce_sum(torch.tensor([float(migrated), float(left)]))
        owned = domain.comm.gather(state.n_atoms, root=0) if hasattr(domain, "comm") else [state.n_atoms]
        # More than 6 swaps (one per direction) at the last build: a sweep was repeated to forward
        # ghosts through bricks thinner than the ghost shell.
        swaps = domain.allreduce_max(torch.tensor([float(len(getattr(domain, "swaps", [])))]))
        if domain.is_root:
            rows.update(
                energy=state.energy,
                virial=state.virial,
                builds=forces.nl.n_builds,
                migrated=float(counts[0]),
                left=float(counts[1]),
                owner_changed=int((owner_start["rank"] != owner_end["rank"]).sum()),
                owned=owned,
                swaps=int(swaps[0]),
                grid=list(getattr(domain, "grid", None) or (1, 1, 1)),
                size=domain.size,
                seconds=elapsed,
                energies=owner_end["energies"],
            )
            if extras:
                rows.update(
                    force_dev=owner_end["force_dev"],
                    force_dev_max=forces.extras["force_dev_max"],
                    force_dev_mean=forces.extras["force_dev_mean"],
                )
            torch.save(rows, out_path)


if __name__ == "__main__":
    main()
