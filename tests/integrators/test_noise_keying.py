"""Langevin noise is keyed by (seed, step, tag): trajectories do not depend on atom order or on
which other systems share the batch."""

from __future__ import annotations

import torch

from ssehpc.integrators import Langevin
from ssehpc.state import State, concatenate, split
from tests.integrators.helpers import argon_batch, argon_forces, fcc_argon, start, step

N_STEPS = 200


def by_tag(state: State) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.argsort(state.tag)
    return state.unwrapped_positions()[order], state.momenta[order]


def run_langevin(state: State, temperature: float | list[float]) -> State:
    forces = argon_forces(skin=0.5)
    langevin = Langevin(2.0, temperature, damping=50.0)
    start(state, forces, temperature, langevin)
    step(state, forces, langevin, N_STEPS)
    assert forces.nl.n_builds > 1
    return state


def test_langevin_independent_of_atom_order() -> None:
    reference = argon_batch([5.30], [7])
    perm = torch.randperm(reference.n_atoms, generator=torch.Generator().manual_seed(3))
    permuted = reference.index_atoms(perm)
    other_seed = reference.replace(seed=8)

    x_ref, p_ref = by_tag(run_langevin(reference, 60.0))
    x_perm, p_perm = by_tag(run_langevin(permuted, 60.0))
    x_other, _ = by_tag(run_langevin(other_seed, 60.0))

    dx = (x_perm - x_ref).abs().max().item()
    dp = ((p_perm - p_ref).abs().max() / p_ref.abs().max()).item()
    print(f"\npermuted atoms after {N_STEPS} steps: |dx| {dx:.1e} Å, |dp|/p {dp:.1e}")
    assert dx < 1e-9
    assert dp < 1e-9
    # the test can fail: another seed gives another trajectory
    assert (x_other - x_ref).abs().max().item() > 1e-2


def test_langevin_batch_equals_separate_runs() -> None:
    temperatures = [40.0, 80.0]
    batch = argon_batch([5.30, 5.35], [5, 5])
    alone = split(batch)  # same tags, seed and (single) system index order as inside the batch
    assert int(alone[1].tag.min()) == batch.n_atoms // 2

    x_batch, p_batch = by_tag(run_langevin(batch, temperatures))
    n = batch.n_atoms // 2
    for s, t in enumerate(temperatures):
        x_alone, p_alone = by_tag(run_langevin(alone[s], t))
        rows = slice(s * n, (s + 1) * n)
        dx = (x_batch[rows] - x_alone).abs().max().item()
        dp = ((p_batch[rows] - p_alone).abs().max() / p_alone.abs().max()).item()
        print(f"\nsystem {s} (T0 {t} K): batch vs alone |dx| {dx:.1e} Å, |dp|/p {dp:.1e}")
        assert dx < 1e-9
        assert dp < 1e-9
    # the two systems really had different temperatures
    ke = [(p_batch[s * n : (s + 1) * n] ** 2).sum().item() for s in range(2)]
    assert ke[1] > 1.3 * ke[0]


def test_batched_replicas_draw_what_they_draw_alone() -> None:
    """Replicas built alone (tags from 0, each its own seed) and then concatenated follow the
    trajectories they follow alone, Maxwell–Boltzmann draw included: the batch keeps each
    system's seed and tag base (this is what campaign batching relies on)."""
    temperatures = [40.0, 80.0, 60.0]
    lattice, seeds = [5.30, 5.35, 5.32], [5, 6, 7]
    alone = [fcc_argon(3, a=a, jitter=0.02, seed=s) for a, s in zip(lattice, seeds, strict=True)]
    alone = [st.replace(seed=100 + k) for k, st in enumerate(alone)]  # run seeds differ per replica
    batch = concatenate([st.clone() for st in alone])
    assert batch.system_seed.tolist() == [100, 101, 102]
    assert int(batch.tag.max()) + 1 == batch.n_atoms  # tags unique in the batch

    x_batch, p_batch = by_tag(run_langevin(batch, temperatures))
    n = alone[0].n_atoms
    for s, t in enumerate(temperatures):
        x_alone, p_alone = by_tag(run_langevin(alone[s], t))
        rows = slice(s * n, (s + 1) * n)
        dx = (x_batch[rows] - x_alone).abs().max().item()
        dp = ((p_batch[rows] - p_alone).abs().max() / p_alone.abs().max()).item()
        print(f"\nreplica {s} (seed {100 + s}): batch vs alone |dx| {dx:.1e} Å, |dp|/p {dp:.1e}")
        assert dx < 1e-9
        assert dp < 1e-9
    # and the seeds matter: replicas 0 and 2 with swapped seeds would differ
    swapped = alone[0].clone().replace(seed=102)
    x_sw, _ = by_tag(run_langevin(swapped, temperatures[0]))
    assert (x_sw - x_batch[:n]).abs().max().item() > 1e-2
