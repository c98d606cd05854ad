"""The hand-written C++ pair kernels (``ssehpc.ml.kernels``) against the torch kernels: moments,
pair gradients, forces, the cutoff filter, threads, and bad input; and the whole model on them
(forces = −∇E, virial, invariances, batching, small cells)."""

from __future__ import annotations

import pytest
import torch

from ssehpc.ml import kernels
from ssehpc.ml.data import periodic_pairs
from tests.ml.systems import lips_state, make_model
from tests.potentials import conformance

SHAPES = [
    pytest.param({"lmax": 1, "four_body": False, "n_radial": 8}, id="N8-l1-specialised"),
    pytest.param({"lmax": 2, "n_radial": 8, "radial_floor": 2.3}, id="N8-l2-specialised-floor"),
    pytest.param({"lmax": 3, "n_radial": 8}, id="N8-l3-specialised"),
    pytest.param({"lmax": 2, "n_radial": 6, "mixing": "pair"}, id="N6-l2-generic"),
    pytest.param({"lmax": 3, "n_radial": 5, "radial_floor": 2.3}, id="N5-l3-generic-floor"),
]


@pytest.fixture(scope="module")
def ext():
    module = kernels.load()
    assert module is not None, f"the C++ pair kernels did not build: {kernels.build_error}"
    return module


def _pairs(model, seed=5, n_formula=2):
    st = lips_state(seed=seed, n_formula=n_formula)
    i, j, rij = periodic_pairs(st, model.cutoff)
    types = model.type_of_z[st.species]
    return st, i, j, rij.to(model.dtype).contiguous(), types


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("variant", SHAPES)
def test_pair_kernels_equal_the_torch_kernels(ext, variant, dtype):
    model = make_model(n_members=3, dtype=dtype, **variant)
    st, i, j, rij, types = _pairs(model)
    assert float(torch.linalg.vector_norm(rij, dim=1).min()) < 2.3 or "radial_floor" not in variant
    tol = {"rtol": 1e-11, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 2e-4, "atol": 2e-5}
    n = st.n_atoms
    ref_a, basis = model.atomic_moments(rij, i, j, types, n)
    a, slot, cache = ext.moments(rij, i, j, types, n, model.spec.n_types, *model._basis_args(), True, 16384)
    a2, _, empty = ext.moments(rij, i, j, types, n, model.spec.n_types, *model._basis_args(), False, 16384)
    assert torch.equal(a, a2)
    assert empty.numel() == 0
    torch.testing.assert_close(a.view_as(ref_a), ref_a, **tol)
    assert torch.equal(slot, basis[0])
    assert float(ref_a.abs().max()) > 1e-2
    # Slot gradients of K members, and of one (the member mean).
    gen = torch.Generator().manual_seed(1)
    for members in (4, 3, 1):  # 4 and 1: the unrolled kernels; 3: the generic one
        grad_slots = torch.randn(
            (n * model.spec.n_types, basis[1].shape[1] * members * model.spec.n_angular),
            generator=gen,
            dtype=torch.float64,
        ).to(dtype)
        ref_g = model.pair_gradient(grad_slots, *basis)
        f, g = ext.pair_forces(grad_slots, rij, slot, cache, i, j, n + 3, *model._basis_args(), 16384)
        torch.testing.assert_close(g, ref_g, **tol)
        f2, g2 = ext.pair_forces(grad_slots, rij, slot, empty, i, j, n + 3, *model._basis_args(), 16384)
        assert torch.equal(g2, g)  # the cached basis is the recomputed one, bit for bit
        assert torch.equal(f2, f)
        ref_f = torch.zeros((n + 3, members, 3), dtype=dtype).index_add(0, i, ref_g).index_add(0, j, -ref_g)
        torch.testing.assert_close(f, ref_f, **tol)
        assert f[n:].abs().max() == 0  # rows no pair touches


def test_threads_split_at_centre_atoms_and_give_identical_results(ext):
    """Sorted by centre, the moment pass gives each thread whole centres, so two threads give the
    bit-identical moments of one (and the force pass, per pair, the identical gradients);
    unsorted pairs run serially and agree to round-off.  ``min_pairs`` = 64 makes a ~4,600-pair
    cell use both threads (the model's default, 16,384 pairs per thread, would not)."""
    model = make_model(n_radial=8)
    st, i, j, rij, types = _pairs(model, seed=6, n_formula=48)
    order = torch.argsort(i, stable=True)
    i, j, rij = i[order].contiguous(), j[order].contiguous(), rij[order].contiguous()
    assert rij.shape[0] >= 4 * 64
    args = (st.n_atoms, model.spec.n_types, *model._basis_args())
    threads = torch.get_num_threads()
    out = {}
    try:
        for n_threads in (1, 2):
            torch.set_num_threads(n_threads)
            a, slot, none = ext.moments(rij, i, j, types, *args, False, 64)
            g = ext.pair_gradient(a, rij, slot, none, *model._basis_args(), 64)
            out[n_threads] = (a, g)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(out[1][0], out[2][0])
    assert torch.equal(out[1][1], out[2][1])
    one, g1 = out[1]
    perm = torch.randperm(rij.shape[0], generator=torch.Generator().manual_seed(0))
    shuffled, slot, _ = ext.moments(
        rij[perm].contiguous(), i[perm].contiguous(), j[perm].contiguous(), types, *args, False, 64
    )
    torch.testing.assert_close(shuffled, one, rtol=1e-12, atol=1e-13)
    g2 = ext.pair_gradient(one, rij[perm].contiguous(), slot, none, *model._basis_args(), 64)
    assert torch.equal(g2, g1[perm])  # per-pair output: order does not matter


def test_cutoff_filter_equals_the_torch_filter(ext):
    st = lips_state(seed=7, n_formula=2)
    i, j, _ = periodic_pairs(st, 5.0)  # a pair list; positions below make its distances random
    pos = torch.randn((st.n_atoms + 4, 3), dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    rij_list = pos[j] - pos[i]
    keep = torch.nonzero((rij_list * rij_list).sum(1) < 1.0).squeeze(1)
    ci, cj, crij = ext.cutoff_pairs(pos, i, j, 1.0, torch.float32)
    assert 0 < keep.numel() < i.numel()
    assert torch.equal(ci, i[keep])
    assert torch.equal(cj, j[keep])
    assert crij.dtype == torch.float32
    assert torch.equal(crij, rij_list[keep].float())


def test_bad_input_is_a_clear_error(ext):
    model = make_model(n_radial=8)
    st, i, j, rij, types = _pairs(model)
    args = model._basis_args()
    bad_types = types.clone()
    bad_types[j[0]] = 7
    with pytest.raises(RuntimeError, match="has type 7"):
        ext.moments(rij, i, j, bad_types, st.n_atoms, model.spec.n_types, *args, False, 16384)
    with pytest.raises(RuntimeError, match="indexes out of range"):  # a centre beyond n_centres
        ext.moments(rij, i, j, types, int(i.max()), model.spec.n_types, *args, False, 16384)
    none = torch.zeros((0, 1), dtype=model.dtype)
    g80 = torch.zeros((1000, 80), dtype=model.dtype)
    with pytest.raises(RuntimeError, match="slot of pair 0 out of range"):
        ext.pair_gradient(g80[:1], rij, torch.full_like(i, 5), none, *args, 16384)
    with pytest.raises(RuntimeError, match="cache must be"):
        ext.pair_gradient(g80, rij, i, torch.ones((3, 4), dtype=model.dtype), *args, 16384)
    with pytest.raises(RuntimeError, match="contiguous"):
        ext.moments(
            rij.t().contiguous().t(), i, j, types, st.n_atoms, model.spec.n_types, *args, False, 16384
        )
    with pytest.raises(ValueError, match="pair_kernels must be"):
        model.compile_inference(pair_kernels="fortran")
    with pytest.raises(ValueError, match="need n_radial <= 32"):
        make_model(n_radial=40).compile_inference(pair_kernels="cpp", backend="eager")
    assert make_model(n_radial=40).compile_inference(backend="eager")._cpp is None  # auto: torch kernels
    from ssehpc.potentials import make_potential

    with pytest.raises(ValueError, match="pair_kernels='cpp' needs compile: true"):
        make_potential("mlff", model="lips", pair_kernels="cpp")


@pytest.mark.parametrize("variant", [SHAPES[1], SHAPES[3]])
def test_model_on_the_cpp_kernels_passes_conformance(ext, variant):
    """The whole model on the C++ kernels (``torch.compile`` with the eager backend, so no
    inductor compile): −∇E, virial by finite differences, invariances, batching, small cells, and
    equal to the eager model; committee member forces too."""
    eager = make_model(n_members=2, **variant)
    model = make_model(n_members=2, **variant).compile_inference(pair_kernels="cpp", backend="eager")
    assert model._cpp is ext
    small, other = lips_state(seed=1), lips_state(seed=2, n_formula=2)
    conformance.check_all(model, small, other)
    a, b = conformance.evaluate(eager, other), conformance.evaluate(model, other)
    conformance.assert_close(b.forces, a.forces, 1e-11, "C++ forces")
    conformance.assert_close(b.energy, a.energy, 1e-12, "C++ energy")
    conformance.assert_close(b.virial, a.virial, 1e-11, "C++ virial")
    from ssehpc.forces import ForceCompute

    fe, fc = ForceCompute(eager, skin=0.5), ForceCompute(model, skin=0.5)
    st1, st2 = lips_state(seed=3, n_formula=2), lips_state(seed=3, n_formula=2)
    fe.compute(st1, extras=True)
    fc.compute(st2, extras=True)
    torch.testing.assert_close(fc.extras["member_forces"], fe.extras["member_forces"], rtol=1e-11, atol=1e-12)
