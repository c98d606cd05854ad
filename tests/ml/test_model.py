"""MomentPotential: physics conformance, invariances, periodic consistency, files, species errors."""

from __future__ import annotations

import math
import os

import pytest
import torch

from ssehpc.forces import ForceCompute
from ssehpc.ml.data import periodic_pairs
from ssehpc.ml.model import ModelSpec, MomentPotential, bessel_basis, load
from ssehpc.state import State
from tests.ml.systems import LI, P, S, lips_state, make_model
from tests.potentials import conformance

VARIANTS = [
    pytest.param({"lmax": 1, "four_body": False}, id="l1-gram"),
    pytest.param({"lmax": 2, "four_body": True}, id="l2-4body-gram"),
    pytest.param({"lmax": 3, "four_body": True, "contraction": "channelwise"}, id="l3-4body-channelwise"),
    pytest.param(
        {"lmax": 2, "four_body": True, "contraction": "channelwise", "mixing": "pair"},
        id="l2-4body-channelwise-pair",
    ),
    # switch region 1.5–2.6 Å overlaps the random cells' distances (>= 1.9 Å): exercised
    pytest.param({"lmax": 2, "four_body": True, "core": (1.5, 2.6)}, id="l2-4body-core"),
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_conformance(variant: dict) -> None:
    """Forces = −∇E and virial = −∂E/∂ε (finite differences), translation/rotation invariance,
    batching, and a small cell (several images of one neighbour) vs its 2x2x2 supercell."""
    model = make_model(**variant)
    small = lips_state(seed=1)  # 8 atoms, ~5.4 Å cell < 2 x cutoff
    other = lips_state(seed=2, n_formula=2)
    conformance.check_all(model, small, other)


def test_energy_is_nontrivial() -> None:
    """Guard against a test subject that cannot fail: forces are O(0.1–10) eV/Å and energies
    depend on the configuration beyond the reference energies."""
    model = make_model()
    a, b = conformance.evaluate(model, lips_state(seed=1)), conformance.evaluate(model, lips_state(seed=3))
    assert 0.05 < float(a.forces.abs().max()) < 50
    assert abs(float(a.energy[0] - b.energy[0])) > 1e-3


def test_permutation_invariance() -> None:
    model = make_model()
    st = lips_state(seed=4, n_formula=2)
    perm = torch.randperm(st.n_atoms, generator=torch.Generator().manual_seed(0))
    ref = conformance.evaluate(model, st)
    out = conformance.evaluate(model, st.index_atoms(perm))
    conformance.assert_close(out.energy, ref.energy, 1e-12, "energy after permutation")
    conformance.assert_close(out.forces, ref.forces[perm], 1e-12, "forces after permutation")
    conformance.assert_close(out.energies, ref.energies[perm], 1e-12, "per-atom energies after permutation")


def test_ghost_evaluation_equals_periodic_owner_evaluation() -> None:
    """MD path (owned + explicit ghost images, reverse sum) == training path (pairs mapped to their
    periodic owners), on a cell small enough that atoms see several images of one neighbour."""
    model = make_model()
    st = lips_state(seed=5)
    ref = conformance.evaluate(model, st)
    i, j, rij = periodic_pairs(st, model.cutoff)
    assert bool((j[:, None] == j[None, :]).any())
    assert rij.shape[0] > 8 * st.n_atoms
    types = model.type_of_z[st.species]
    e, f, g = model.evaluate(rij, i, j, types, st.n_atoms, st.n_atoms)
    conformance.assert_close(e[0], ref.energies, 1e-12, "per-atom energies")
    conformance.assert_close(f[:, 0], ref.forces, 1e-12, "forces")
    w = -(rij[:, :, None] * g[:, 0, None, :]).sum(0)
    conformance.assert_close(w, ref.virial[0], 1e-12, "virial")


def test_float32_close_to_float64() -> None:
    m64 = make_model()
    m32 = make_model(dtype=torch.float32)
    st = lips_state(seed=6, n_formula=2)
    a, b = conformance.evaluate(m64, st), conformance.evaluate(m32, st.to(dtype=torch.float32))
    conformance.assert_close(b.forces, a.forces, 1e-4, "float32 forces")
    assert abs(float(b.energy[0] - a.energy[0])) < 1e-4 * abs(float(a.energy[0]))


def test_smooth_cutoff() -> None:
    """The radial basis and its first derivative vanish at r_c (no force jump when a neighbour
    crosses the cutoff), and a dimer's energy is flat just outside."""
    rc = 4.0
    r = torch.tensor([rc * (1 - 1e-4), rc], dtype=torch.float64)
    b, db = bessel_basis(r, rc, 8)
    assert float(b.abs().max()) < 1e-9
    assert float(db.abs().max()) < 1e-6
    model = make_model(cutoff=rc)

    def dimer(d: float) -> tuple[float, float]:
        st = State.from_arrays(
            torch.tensor([[5.0, 5.0, 5.0], [5.0 + d, 5.0, 5.0]], dtype=torch.float64),
            torch.ones(2, dtype=torch.float64),
            torch.tensor([LI, S]),
            torch.eye(3, dtype=torch.float64) * 20.0,
        )
        out = conformance.evaluate(model, st)
        return float(out.energy[0]), float(out.forces[1, 0])

    e_in, f_in = dimer(rc - 1e-3)
    e_out, f_out = dimer(rc + 1e-3)
    assert f_out == 0.0
    assert abs(f_in) < 1e-5
    assert abs(e_in - e_out) < 1e-8
    _e_mid, f_mid = dimer(2.5)
    assert abs(f_mid) > 1e-4  # the dimer does interact inside the cutoff


def test_core_repulsion_keeps_atoms_apart() -> None:
    """With the ZBL core, a Li–S dimer pushed to 0.8 Å costs tens of eV and is pushed apart;
    beyond core_outer the model is unchanged."""
    plain, core = make_model(), make_model(core=(1.0, 1.6))

    def dimer(model: MomentPotential, d: float) -> tuple[float, float]:
        st = State.from_arrays(
            torch.tensor([[5.0, 5.0, 5.0], [5.0 + d, 5.0, 5.0]], dtype=torch.float64),
            torch.ones(2, dtype=torch.float64),
            torch.tensor([LI, S]),
            torch.eye(3, dtype=torch.float64) * 20.0,
        )
        out = conformance.evaluate(model, st)
        return float(out.energy[0]), float(out.forces[1, 0])

    e_close, f_close = dimer(core, 0.8)
    e_far, _ = dimer(core, 2.5)
    assert e_close - e_far > 10.0
    assert f_close > 10.0  # on the outer atom, along +x: pushed away
    assert dimer(core, 1.7) == dimer(plain, 1.7)
    st = lips_state(seed=3)  # distances >= 1.9 Å > core_outer
    conformance.assert_close(
        conformance.evaluate(core, st).forces, conformance.evaluate(plain, st).forces, 0, "forces"
    )


def test_unknown_element_is_a_clear_error_before_running() -> None:
    model = make_model()
    st = lips_state(seed=1)
    st.species[0] = 11  # Na
    fc = ForceCompute(model)
    with pytest.raises(ValueError, match=r"Na \(Z=11\).*knows Li, P, S"):
        fc.check(st)


def test_unknown_element_never_silently_evaluates() -> None:
    """Even without check(), an unknown element (here only a neighbour's) is an error, not a
    silent mapping onto a known type."""
    model = make_model()
    st = lips_state(seed=1)
    st.species[-1] = 11
    with pytest.raises(ValueError, match="Na"):
        ForceCompute(model).compute(st)
    i, j, rij = periodic_pairs(st, model.cutoff)
    with pytest.raises((IndexError, RuntimeError)):
        model.evaluate(rij, i, j, model.type_of_z[st.species], st.n_atoms, st.n_atoms)


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="four_body"):
        ModelSpec(species=(3,), lmax=1, four_body=True)
    with pytest.raises(ValueError, match="unknown element"):
        ModelSpec(species=("Xx",))
    with pytest.raises(ValueError, match="lmax"):
        ModelSpec(species=(3,), lmax=4, four_body=False)
    spec = ModelSpec(species=("S", "Li", "P"), lmax=2, channels=5, contraction="gram")
    assert spec.species == (LI, P, S)
    assert spec.n_features == 5 + 2 * 15 + 25
    assert ModelSpec(species=(3,), lmax=2, channels=5, contraction="channelwise").n_features == 5 * 4
    with pytest.raises(ValueError, match="contraction"):
        ModelSpec(species=(3,), contraction="full")


def test_save_load_weights_only(tmp_path) -> None:
    model = make_model(dtype=torch.float32)
    path = tmp_path / "m.pt"
    model.save(path, teacher="EMT", data_sha256="ab" * 32)
    raw = torch.load(path, weights_only=True)
    assert raw["spec"]["species"] == [LI, P, S]
    assert raw["metadata"]["teacher"] == "EMT"
    assert raw["metadata"]["units"]["energy"] == "eV"
    assert raw["ssehpc_version"]
    back = load(path)
    assert type(back) is MomentPotential
    assert back.dtype == torch.float32
    assert back.metadata["data_sha256"] == "ab" * 32
    st = lips_state(seed=7).to(dtype=torch.float32)
    a, b = conformance.evaluate(model, st), conformance.evaluate(back, st)
    assert torch.equal(a.forces, b.forces)
    assert torch.equal(a.energy, b.energy)


def test_load_rejects_other_files(tmp_path) -> None:
    path = tmp_path / "x.pt"
    torch.save({"a": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not an ssehpc model file"):
        load(path)


def test_batched_systems_of_different_sizes_and_species() -> None:
    """Batch consistency with a system that lacks an element (no P) next to a full one."""
    from ssehpc.ml.data import atoms_to_state
    from tests.ml.systems import random_cell

    model = make_model()
    a = atoms_to_state(random_cell([LI, LI, S, S, S, LI], 6.0, seed=3))
    conformance.check_batch(model, a, lips_state(seed=8, n_formula=2))
    assert math.isfinite(float(conformance.evaluate(model, a).energy[0]))


def _nve_drift(dtype: torch.dtype, dt: float, time_fs: float) -> tuple[float, float]:
    """Max |ΔE_total| (eV) and potential-energy range (eV) of an NVE run of 32 atoms at 600 K."""
    from ssehpc import thermo
    from ssehpc.integrators.nve import VelocityVerlet

    model = make_model(dtype=dtype)
    st = lips_state(seed=9, n_formula=4).to(dtype=dtype)
    st.masses = torch.tensor(
        [6.94 if z == LI else 30.97 if z == P else 32.06 for z in st.species.tolist()], dtype=dtype
    )
    fc = ForceCompute(model, skin=0.5)
    thermo.maxwell_boltzmann(st, fc.domain, 600.0)
    integ = VelocityVerlet(dt)
    fc.compute(st)
    integ.attach(st, fc)
    e0 = float(st.energy[0] + st.kinetic_energy()[0])
    drift, pe = 0.0, []
    for _ in range(round(time_fs / dt)):
        integ.step_one(st, fc)
        fc.compute(st)
        integ.step_two(st, fc)
        pe.append(float(st.energy[0]))
        drift = max(drift, abs(float(st.energy[0] + st.kinetic_energy()[0]) - e0))
    assert fc.nl.n_builds > 3  # the neighbour list was rebuilt along the way
    return drift, max(pe) - min(pe)


def test_energy_conservation_nve() -> None:
    """Velocity Verlet with the model: the energy error is small against the potential energy
    exchanged, shrinks ~dt² (what consistent, smooth forces give; wrong or discontinuous forces do
    not), and float32 follows float64."""
    drift, pe_range = _nve_drift(torch.float64, 0.5, 100.0)
    drift_half, _ = _nve_drift(torch.float64, 0.25, 100.0)
    drift32, _ = _nve_drift(torch.float32, 0.5, 100.0)
    assert pe_range > 0.5, "potential energy barely changes: the test cannot detect bad forces"
    assert drift < 0.01 * pe_range, (drift, pe_range)
    assert drift / drift_half > 2.5, f"energy error does not scale as dt²: {drift} vs {drift_half} at dt/2"
    assert abs(drift32 - drift) < 2e-3, (drift32, drift)


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("SSEHPC_TEST_COMPILE") != "1",
    reason="torch.compile takes minutes on CPU; SSEHPC_TEST_COMPILE=1",
)
@pytest.mark.parametrize("contraction", ["gram", "channelwise"])
def test_compiled_kernels_match_eager(contraction: str) -> None:
    eager = make_model(contraction=contraction, n_members=2)
    compiled = make_model(contraction=contraction, n_members=2).compile_inference()
    for seed in (1, 2):  # a second size must not need a recompile to be right
        st = lips_state(seed=seed, n_formula=seed)
        a, b = conformance.evaluate(eager, st), conformance.evaluate(compiled, st)
        conformance.assert_close(b.forces, a.forces, 1e-10, "compiled forces")
        conformance.assert_close(b.energy, a.energy, 1e-12, "compiled energy")


@pytest.mark.parametrize(
    "variant",
    [
        {"mixing": "neighbour"},
        {"mixing": "pair"},
        {"lmax": 1, "four_body": False},
        {"lmax": 3},
        {"mixing": "pair", "lmax": 3, "hidden": (8, 8, 8)},
    ],
)
def test_hand_written_backward_equals_autograd(variant: dict) -> None:
    """Inference uses a written-out backward pass through the invariants and the MLP
    (``_energy_and_grad_manual``); training uses autograd.  Same energies and ∂E/∂A, per member,
    and the member mean summed inside one GEMM equals the mean of the members."""
    model = make_model(n_members=3, **variant)
    with torch.no_grad():  # no degenerate standardisation or biases
        g = torch.Generator().manual_seed(3)
        model.feature_mean.copy_(torch.randn(model.feature_mean.shape, generator=g, dtype=torch.float64))
        model.feature_std.uniform_(0.5, 2.0, generator=g)
        for b in [model.bias0, *model.biases]:
            b.copy_(torch.randn(b.shape, generator=g, dtype=torch.float64))
    n = 37
    a = torch.randn(
        (n, model.spec.n_types * model.spec.n_radial, model.spec.n_angular), generator=g, dtype=torch.float64
    )
    centre = torch.randint(0, model.spec.n_types, (n,), generator=g)
    e_ref, g_ref = model._energy_and_grad_autograd(a, centre, False)
    e, grads, mean = model._energy_and_grad_manual(a, centre, members=True)
    e2, none, mean2 = model._energy_and_grad_manual(a, centre, members=False)
    assert none is None
    torch.testing.assert_close(e, e_ref, rtol=1e-12, atol=1e-12)
    assert float(g_ref[0].abs().max()) > 1e-3  # a real gradient
    for rank, (gr, ref) in enumerate(zip(grads, g_ref, strict=True)):
        torch.testing.assert_close(gr, ref, rtol=1e-11, atol=1e-12, msg=f"rank {rank}")
        torch.testing.assert_close(mean[rank][0], ref.mean(0), rtol=1e-11, atol=1e-12)
        assert torch.equal(mean[rank], mean2[rank])  # the MD force does not depend on `members`
    assert torch.equal(e, e2)


def test_atom_chunked_network_is_identical() -> None:
    model = make_model(n_members=2)
    st = lips_state(seed=12, n_formula=2)
    ref = conformance.evaluate(model, st)
    model.atom_chunk = 5  # many blocks of atoms through the per-atom network
    out = conformance.evaluate(model, st)
    conformance.assert_close(out.forces, ref.forces, 1e-13, "atom-chunked forces")
    conformance.assert_close(out.energy, ref.energy, 1e-13, "atom-chunked energy")
    conformance.assert_close(out.virial, ref.virial, 1e-13, "atom-chunked virial")


def test_chunked_force_pass_is_identical() -> None:
    model = make_model(n_members=2)
    st = lips_state(seed=10, n_formula=2)
    ref = conformance.evaluate(model, st)
    model.pair_chunk = 2000  # a few dozen pairs per chunk
    out = conformance.evaluate(model, st)
    conformance.assert_close(out.forces, ref.forces, 1e-14, "chunked forces")
    conformance.assert_close(out.virial, ref.virial, 1e-14, "chunked virial")


def test_radial_floor_leaves_the_core_alone_below_it() -> None:
    """Below ``radial_floor`` the learned energy of a pair is frozen, so only the ZBL core acts;
    above it nothing changes (the floor is set below every distance in the data)."""
    import numpy as np
    from ase import Atoms

    from ssehpc.forces import ForceCompute
    from ssehpc.ml.data import atoms_to_state
    from tests.ml.systems import make_model

    floored = make_model(core=(0.6, 1.4), radial_floor=1.4)
    plain = make_model(core=(0.6, 1.4))

    def energy(model, r):
        atoms = Atoms("PS", positions=[[0, 0, 0], [r, 0.1 * r, 0]], cell=[20, 20, 20], pbc=True)
        st = atoms_to_state(atoms, dtype=torch.float64)
        ForceCompute(model).compute(st)
        return float(st.energy[0]), st.forces.clone()

    # above the floor: identical models
    for r in (1.5, 2.1, 3.0):
        assert energy(floored, r)[0] == pytest.approx(energy(plain, r)[0], rel=1e-12, abs=1e-12)
    # below it the floored model differs (its learned part is frozen at the floor's value)
    e = np.array([energy(floored, r)[0] for r in (0.9, 1.0, 1.1, 1.2, 1.3)])
    e_plain = np.array([energy(plain, r)[0] for r in (0.9, 1.0, 1.1, 1.2, 1.3)])
    assert np.ptp(e) > 1.0  # the ZBL wall is there
    assert not np.allclose(e - e_plain, (e - e_plain)[0])  # the unfloored learned part varies
    # forces still equal −dE/dx below the floor (finite differences)
    r, h = 1.1, 1e-5
    _, f = energy(floored, r)
    de = (energy(floored, r + h)[0] - energy(floored, r - h)[0]) / (2 * h)
    # the second atom sits at (r, 0.1 r, 0): −dE/dr = F·(1, 0.1, 0)
    assert float(f[1, 0] + 0.1 * f[1, 1]) == pytest.approx(-de, rel=1e-6)
