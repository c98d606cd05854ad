"""Structure analysis: RDF shells and coordination, ideal gas, polyanion classes, rotational ACF,
hop counting, hop–rotation correlation, site occupancy, and the store / CLI round trip."""

from __future__ import annotations

import math
from collections import Counter

import ase
import numpy as np
import pytest
from ase.build import bulk

from ssehpc.analysis.msd import AnalysisError
from ssehpc.analysis.structure import (
    Trajectory,
    density,
    first_peak,
    hop_rotation_correlation,
    li_hops,
    minimum_image,
    polyanion_units,
    rdf,
    rotation_events,
    rotational_acf,
    self_relaxation,
    shell_peak,
    site_occupancy,
    unit_statistics,
)
from ssehpc.structures import li6ps5cl, prototype, supercell


def _static(atoms) -> Trajectory:
    return Trajectory(atoms.get_chemical_symbols(), atoms.positions[None], atoms.cell.array, [0.0])


@pytest.mark.parametrize(
    ("kind", "a", "r_max", "shells"),
    [
        ("fcc", 5.26, 7.0, [(5.26 / math.sqrt(2), 12), (5.26, 6), (5.26 * math.sqrt(1.5), 24)]),
        ("sc", 3.0, 5.5, [(3.0, 6), (3.0 * math.sqrt(2), 12), (3.0 * math.sqrt(3), 8)]),
    ],
)
def test_rdf_of_ideal_crystal_has_shells_and_coordination(kind, a, r_max, shells):
    atoms = bulk("Ar", kind, a=a, cubic=True).repeat(6 if kind == "sc" else 4)
    res = rdf(_static(atoms), dr=0.02, r_max=r_max)
    g, n, r = res.g[("Ar", "Ar")], res.n[("Ar", "Ar")], res.r
    peaks = r[g > 0]
    # every occupied bin is one of the shells, and every shell is there
    shell_r = np.array([s for s, _ in shells])
    assert np.all(np.min(np.abs(peaks[:, None] - shell_r[None, :]), axis=1) < 0.02)
    cum = 0
    for rs, count in shells:
        cum += count
        assert n[np.searchsorted(r, rs + 0.05)] == pytest.approx(cum)  # running CN steps by the shell
    assert res.cn[("Ar", "Ar")] == pytest.approx(shells[0][1])
    assert shells[0][0] < res.r_min[("Ar", "Ar")] < shells[1][0]
    assert res.r_peak[("Ar", "Ar")] == pytest.approx(shells[0][0], abs=0.02)  # the nearest-neighbour distance


def test_first_peak_of_a_thermal_shell_is_its_centre():
    """A Gaussian shell at 2.05 Å (a P–S bond) on a flat background: the peak, not a bin edge."""
    r = np.arange(0.01, 8.0, 0.02)
    g = 1.0 + 6.0 * np.exp(-0.5 * ((r - 2.053) / 0.06) ** 2) * (r < 3.0)
    g[r < 1.7] = 0.0
    assert first_peak(r, g) == pytest.approx(2.053, abs=0.003)
    assert np.isnan(first_peak(r, np.full_like(r, 0.5)))


def test_rdf_of_ideal_gas_is_one_and_triclinic_minimum_image():
    rng = np.random.default_rng(3)
    cell = np.array([[18.0, 0.0, 0.0], [6.0, 17.0, 0.0], [3.0, 4.0, 16.0]])  # triclinic
    frac = rng.random((6, 400, 3))
    traj = Trajectory(["Li"] * 200 + ["S"] * 200, frac @ cell, np.repeat(cell[None], 6, 0), np.arange(6.0))
    res = rdf(traj, dr=0.25, r_max=6.0)
    for pair in [("Li", "Li"), ("Li", "S"), ("S", "S")]:
        g = res.g[pair][(res.r > 2.0)]
        assert abs(g.mean() - 1.0) < 0.03
        assert np.abs(g - 1).max() < 0.2
    # minimum image: the shortest image in a skewed cell
    d = minimum_image(np.array([[17.5, 0.2, 0.1]]), cell)
    assert np.linalg.norm(d) == pytest.approx(0.5477, abs=1e-3)


def test_polyanion_classes_of_prototypes():
    beta = unit_statistics(_static(supercell(prototype("beta-Li3PS4"), 100)))
    assert beta.unit_fraction == {"PS4": 1.0}
    li4 = polyanion_units(_static(prototype("Li4P2S6")))
    assert [u.kind for u in li4] == ["P2S6"]
    assert not li4[0].bridging
    li7 = unit_statistics(_static(prototype("Li7P3S11")))
    assert li7.unit_fraction == pytest.approx({"P2S7": 0.5, "PS4": 0.5})  # 1:1 by units
    assert li7.center_fraction == pytest.approx({"P2S7": 2 / 3, "PS4": 1 / 3})
    p2s7 = [u for u in polyanion_units(_static(prototype("Li7P3S11"))) if u.kind == "P2S7"]
    assert all(len(u.bridging) == 1 and len(u.ligands) == 7 for u in p2s7)
    assert unit_statistics(_static(li6ps5cl(seed=2))).counts == {"PS4": 4.0}
    # a corner-sharing pair with a three-fold P (one terminal S of a P2S7 removed) is not the
    # P-P bonded P2S6 of Li4P2S6
    li7_atoms = prototype("Li7P3S11")
    u = p2s7[0]
    terminal = [x for x in u.ligands if x not in u.bridging]
    del li7_atoms[terminal[0]]
    kinds = Counter(v.kind for v in polyanion_units(_static(li7_atoms)))
    assert kinds == {"P2S6-corner": 1, "P2S7": 1, "PS4": 2}
    assert (li7.free_ligands, li7.ligand_bonds) == (0.0, 0.0)


def test_free_ligands_and_ligand_bonds_outside_the_units():
    """A PS4 tetrahedron, an S2 dimer (2.05 Å) and a lone S in a 20 Å box: 3 free S, 1 S-S bond;
    the S of the PS4 (3.35 Å apart) are not bonded to each other."""
    tet = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / math.sqrt(3) * 2.05
    pos = np.vstack([[10.0, 10.0, 10.0], 10.0 + tet, [[3.0, 3.0, 3.0], [5.05, 3.0, 3.0], [3.0, 16.0, 16.0]]])
    atoms = ase.Atoms("PS4S2S", positions=pos, cell=[20.0, 20.0, 20.0], pbc=True)
    st = unit_statistics(_static(atoms))
    assert st.counts == {"PS4": 1.0}
    assert st.free_ligands == 3.0
    assert st.ligand_bonds == 1.0
    assert unit_statistics(_static(atoms), ligand_cutoff=3.5).ligand_bonds == 1.0 + 6.0  # + the PS4 edges


def _rotating_tetrahedron(omega: float, n_frames: int, dt: float, tilt: np.ndarray) -> Trajectory:
    """A PS4 rotating rigidly about z at ``omega`` rad/fs (orientation ``tilt``), in a big box."""
    from ssehpc.structures import ps4_unit

    local = ps4_unit().positions @ tilt.T
    t = np.arange(n_frames) * dt
    c, s = np.cos(omega * t), np.sin(omega * t)
    rot = np.zeros((n_frames, 3, 3))
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = c, -s, s, c, 1
    pos = np.einsum("tij,nj->tni", rot, local) + 10.0
    return Trajectory(["P", "S", "S", "S", "S"], pos, np.eye(3) * 20.0, t)


def test_rotational_acf_of_rigid_rotation_matches_analytic():
    from scipy.spatial.transform import Rotation

    tilt = Rotation.from_euler("xyz", [0.3, 0.7, 0.2]).as_matrix()
    omega, dt = 2 * np.pi / 400.0, 2.0
    traj = _rotating_tetrahedron(omega, 300, dt, tilt)
    res = rotational_acf(traj)
    assert res.n_bonds == 4
    u = (traj.positions[0, 1:] - traj.positions[0, 0]) / 2.03
    cz2 = u[:, 2] ** 2
    x = cz2[None, :] + (1 - cz2[None, :]) * np.cos(omega * res.time_fs)[:, None]  # u(0).u(t) per bond
    assert np.allclose(res.c1, x.mean(axis=1), atol=1e-10)
    assert np.allclose(res.c1, 1 / 3 + 2 / 3 * np.cos(omega * res.time_fs), atol=1e-10)  # any orientation
    assert np.allclose(res.c2, (1.5 * x**2 - 0.5).mean(axis=1), atol=1e-10)


def _hopping_li(rng, n_li=6, n_frames=400, hops=((0, 100), (0, 250), (3, 180), (5, 60))):
    """Li on a cubic grid vibrating by 0.12 Å, hopping by 2.5 Å (+x) at the given frames."""
    base = np.array([[x, y, 5.0] for x in (3.0, 9.0, 15.0) for y in (4.0, 12.0)])[:n_li]
    pos = np.repeat(base[None], n_frames, axis=0) + rng.normal(0, 0.12, (n_frames, n_li, 3))
    for atom, frame in hops:
        pos[frame:, atom, 0] += 2.5
    return Trajectory(["Li"] * n_li, pos, np.eye(3) * 18.0, np.arange(n_frames) * 10.0)


def test_li_hop_counting_on_synthetic_trajectory():
    traj = _hopping_li(np.random.default_rng(0))
    ev = li_hops(traj, threshold=1.5, smooth=5)
    assert len(ev) == 4
    found = sorted(zip(ev.atom.tolist(), ev.frame.tolist(), strict=True))
    for (atom, frame), (a0, f0) in zip(found, [(0, 100), (0, 250), (3, 180), (5, 60)], strict=True):
        assert atom == a0
        assert abs(frame - f0) <= 2
    assert np.all((ev.size > 2.0) & (ev.size < 3.0))  # 2.5 Å hops, 0.12 Å noise
    none = li_hops(_hopping_li(np.random.default_rng(1), hops=()), threshold=1.5)
    assert len(none) == 0  # vibrations alone are not hops
    with pytest.raises(AnalysisError, match="species 'Na'"):
        li_hops(traj, "Na")


def _paddle_wheel(rng, coincide: bool) -> Trajectory:
    """One PS4 near Li 0 and far from Li 1; the PS4 makes C3 jumps (120° about one P-S bond);
    Li 0 hops at the jump times (``coincide``) or at unrelated times."""
    from ssehpc.structures import ps4_unit

    n = 600
    jumps = [100, 250, 400, 520]
    unit = ps4_unit().positions
    axis = unit[1] / np.linalg.norm(unit[1])
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    c3 = np.eye(3) + math.sin(2 * math.pi / 3) * k + (1 - math.cos(2 * math.pi / 3)) * k @ k
    pos = np.zeros((n, 7, 3))
    orient = unit.copy()
    for t in range(n):
        if t in jumps:
            orient = orient @ c3.T
        pos[t, :5] = orient + 10.0
    hop_times = jumps if coincide else [40, 180, 330, 460]
    n_hops = np.array([sum(t >= h for h in hop_times) for t in range(n)])
    pos[:, 5] = [13.0, 10.0, 10.0]  # 3 Å from P; hops back and forth by 2.5 Å along x
    pos[:, 5, 0] += 2.5 * (n_hops % 2)
    pos[:, 6] = [1.0, 1.0, 1.0]  # far away, never hops
    pos += rng.normal(0, 0.05, pos.shape)
    return Trajectory(["P", "S", "S", "S", "S", "Li", "Li"], pos, np.eye(3) * 20.0, np.arange(n) * 10.0)


@pytest.mark.parametrize("coincide", [True, False])
def test_hop_rotation_correlation(coincide):
    traj = _paddle_wheel(np.random.default_rng(4), coincide)
    rot = rotation_events(traj, threshold_deg=60.0, smooth=3)
    assert len(rot) == 4
    assert np.all(np.abs(rot.size - 109.5) < 15)
    hops = li_hops(traj, threshold=1.5, smooth=3)
    assert len(hops) == 4
    assert set(hops.atom.tolist()) == {5}
    c = hop_rotation_correlation(traj, hops, rot, r_cut=6.0, window=5, n_shuffles=50, seed=1)
    if coincide:
        assert c.p_observed == 1.0
        assert c.p_random < 0.3
        assert c.enhancement > 3
        assert c.xcorr[np.flatnonzero(c.lag_fs == 0)[0]] > 0.5
    else:
        assert c.p_observed == 0.0


def test_site_occupancy_first_frame_and_given_sites():
    traj = _hopping_li(np.random.default_rng(2), hops=((0, 200),))
    occ = site_occupancy(traj, r_site=1.0, max_frames=None)
    assert occ.occupancy[0] == pytest.approx(200 / 400)  # Li 0 left its site half-way
    assert np.allclose(occ.occupancy[1:], 1.0)
    assert occ.on_site_fraction == pytest.approx(1 - 200 / 400 / 6)
    # with the destination as an extra (labelled) site, every Li-frame is on a site
    first = traj.positions[0] @ np.linalg.inv(traj.cells[0])
    extra = first[:1] + np.array([[2.5 / 18.0, 0, 0]])
    sites = np.vstack([first, extra])
    occ2 = site_occupancy(traj, sites=sites, labels=["a"] * 6 + ["b"], max_frames=None)
    assert occ2.on_site_fraction == pytest.approx(1.0)
    assert occ2.label_occupancy["b"] == pytest.approx(0.5)


def test_store_round_trip_and_cli(tmp_path):
    """A short LJ run of Li2S-like atoms through the store: datasets readable by xarray, CLI exit 0."""
    import ase.io
    import xarray as xr
    from typer.testing import CliRunner

    from ssehpc.analysis.structure import analyze_run, write_structure_analysis
    from ssehpc.cli import app
    from ssehpc.io.zarr_store import RunStore
    from ssehpc.spec import MDSpec, prepare_run

    spec = MDSpec.from_dict(
        {
            "run_id": "r0",
            "store": str(tmp_path / "s.zarr"),
            "structure": {"builder": "prototype", "name": "beta-Li3PS4"},
            "potential": {"name": "lj", "params": {"epsilon": 0.001, "sigma": 1.5, "cutoff": 3.0}},
            "integrator": {"name": "langevin", "params": {"damping": 50.0}},
            "temperature_K": 300.0,
            "dt_fs": 1.0,
            "steps": 40,
            "write_interval": 4,
            "thermo_interval": 0,
        }
    )
    prepare_run(spec).execute()
    run = RunStore.open(tmp_path / "s.zarr", "r0")
    res = analyze_run(run)
    assert res.units is not None
    assert res.units.unit_fraction == {"PS4": 1.0}
    assert res.rotation is not None
    assert res.rotation.c1[0] == pytest.approx(1.0)
    groups = write_structure_analysis(tmp_path / "s.zarr", res)
    ds = xr.open_zarr(
        str(tmp_path / "s.zarr"), group="analysis/structure/r0/coordination", consolidated=False
    )
    assert float(ds["cn"].sel(pair="P-S")) == pytest.approx(4.0)
    assert "analysis/structure/r0/rdf" in groups
    out = CliRunner().invoke(app, ["structure", str(tmp_path / "s.zarr"), "--plots", str(tmp_path / "p")])
    assert out.exit_code == 0, out.output
    assert "P-S" in out.output
    assert "PS4" in out.output
    assert "P self relaxation" in out.output
    assert "NOT relaxed" in out.output  # 40 fs of a crystal
    rel = xr.open_zarr(str(tmp_path / "s.zarr"), group="analysis/structure/r0/relaxation", consolidated=False)
    assert set(rel["species"].values) == {"P", "S", "Li"}
    assert not bool(rel["relaxed"].sel(species="P"))
    assert list((tmp_path / "p").glob("*.png"))
    assert "density (g/cm3)" in out.output
    assert "1.853 ± 0.000" in out.output  # NVT at the published cell of beta-Li3PS4
    dens = xr.open_zarr(str(tmp_path / "s.zarr"), group="analysis/structure/r0/density", consolidated=False)
    assert dens["density"].shape == (res.n_frames,)
    ase.io.write(tmp_path / "beta.cif", prototype("beta-Li3PS4"))
    ref = CliRunner().invoke(
        app, ["structure", str(tmp_path / "s.zarr"), "--sites", str(tmp_path / "beta.cif"), "--no-write"]
    )
    assert ref.exit_code == 0, ref.output
    assert "Li on reference sites" in ref.output
    bad = CliRunner().invoke(app, ["structure", str(tmp_path / "s.zarr"), "--run", "nope"])
    assert bad.exit_code != 0
    assert "nope" in bad.output


def test_site_occupancy_of_li6ps5cl_on_its_48h_sites():
    from ssehpc.structures.argyrodite import li6ps5cl_li_sites

    atoms = li6ps5cl(seed=5).repeat(2)
    traj = _static(atoms)
    sites = li6ps5cl_li_sites().repeat(2)
    occ = site_occupancy(traj, sites=sites.get_scaled_positions(), r_site=0.5)
    assert occ.on_site_fraction == pytest.approx(1.0)
    assert sorted(set(occ.occupancy.tolist())) == [0.0, 1.0]  # each site empty or full
    assert occ.occupancy.mean() == pytest.approx(0.5)  # half of 48h, as in the real material


ARGYRODITE_CIF = """data_Li6PS5Cl
_cell_length_a 9.859
_cell_length_b 9.859
_cell_length_c 9.859
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_Int_Tables_number 216
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Li1 Li 0.3148 0.3148 0.982 0.5
P1 P 0.5 0.5 0.5 1.0
S1 S 0.61947 0.61947 0.61947 1.0
S2 S 0.75 0.75 0.75 1.0
Cl1 Cl 0.0 0.0 0.0 1.0
"""


def test_reference_sites_from_a_partially_occupied_cif(tmp_path):
    """All 48 half-occupied 48h sites of the CIF become reference sites of a 2x2x2 supercell."""
    import ase.io

    from ssehpc.analysis.structure import reference_sites

    (tmp_path / "argy.cif").write_text(ARGYRODITE_CIF)
    ref = ase.io.read(tmp_path / "argy.cif")
    cell = li6ps5cl(seed=0).cell.array
    frac, labels = reference_sites(ref, "Li", cell * 2)
    assert frac.shape == (8 * 48, 3)
    assert set(labels.tolist()) == {"kind0"}
    occ = site_occupancy(_static(li6ps5cl(seed=7).repeat(2)), sites=frac, labels=labels, r_site=0.5)
    assert occ.label_occupancy["kind0"] == pytest.approx(0.5)  # the CIF's 0.5
    assert occ.on_site_fraction == pytest.approx(1.0)
    with pytest.raises(AnalysisError, match="not an integer repeat"):
        reference_sites(ref, "Li", cell * 1.5)
    with pytest.raises(AnalysisError, match="hold no Na"):
        reference_sites(ref, "Na", cell)


def test_pair_search_matches_ase_with_images_in_a_skewed_small_cell():
    """Every periodic image within the cutoff, also beyond half the cell width."""
    from ase.neighborlist import neighbor_list

    from ssehpc.analysis.structure import _pairs

    rng = np.random.default_rng(9)
    cell = np.array([[6.0, 0.0, 0.0], [4.5, 5.0, 0.0], [-2.0, 1.5, 5.5]])
    pos = rng.random((20, 3)) @ cell + 30.0  # unwrapped: far outside the cell
    traj = Trajectory(["Li"] * 20, pos[None], cell, [0.0])
    i, j, d = _pairs(traj, 0, 7.5)
    atoms = ase.Atoms("Li20", positions=pos, cell=cell, pbc=True)
    ri, rj, rd = neighbor_list("ijd", atoms, 7.5)
    assert len(d) == len(rd) > 20 * 20  # many images of every pair
    ours = sorted(zip(i.tolist(), j.tolist(), np.round(d, 6).tolist(), strict=True))
    theirs = sorted(zip(ri.tolist(), rj.tolist(), np.round(rd, 6).tolist(), strict=True))
    assert ours == theirs


def _walkers(rng, n=64, n_frames=400, dt=10.0, d_a2_fs=0.01, cage=None, drift=0.0):
    """Brownian walkers (D in Å²/fs) or, with ``cage`` = σ in Å, atoms rattling around fixed sites;
    every atom shares a uniform drift of ``drift`` Å per frame (a wandering centre of mass)."""
    cell = np.eye(3) * 20.0
    sites = rng.uniform(0, 20, (n, 3))
    if cage is None:
        steps = rng.normal(0.0, math.sqrt(2 * d_a2_fs * dt), (n_frames, n, 3))
        steps[0] = 0
        pos = sites + np.cumsum(steps, axis=0)
    else:
        pos = sites + rng.normal(0.0, cage, (n_frames, n, 3))
    pos = pos + drift * np.arange(n_frames)[:, None, None] * np.array([1.0, 0.5, 0.0])
    return Trajectory(["P"] * n, pos, cell, np.arange(n_frames) * dt, "walk")


def test_self_relaxation_of_brownian_walkers_matches_theory():
    """Gaussian displacements: MSD = 6 D t (exponent 1), F_s(q, t) = exp(−q² D t), τ_α = 1/(q² D)."""
    rng = np.random.default_rng(3)
    d = 0.01  # Å²/fs = 1e-3 cm²/s
    res = self_relaxation(_walkers(rng, n=256, d_a2_fs=d), "P", q=2.0)
    assert res.alpha == pytest.approx(1.0, abs=0.1)
    assert res.d_cm2_s == pytest.approx(d * 0.1, rel=0.12)
    k = np.searchsorted(res.time_fs, 20.0)
    assert res.fs[k] == pytest.approx(math.exp(-4.0 * d * res.time_fs[k]), abs=0.03)
    assert res.tau_alpha_fs == pytest.approx(1.0 / (4.0 * d), rel=0.15)
    assert res.relaxed


def test_caged_atoms_with_a_drifting_centre_of_mass_are_not_relaxed():
    """Atoms rattling in cages never lose F_s, even when the whole system drifts by 40 Å."""
    rng = np.random.default_rng(4)
    res = self_relaxation(_walkers(rng, cage=0.3, drift=0.1), "P", q=2.0)
    assert math.isnan(res.tau_alpha_fs)
    assert not res.relaxed
    assert abs(res.alpha) < 0.1
    assert res.fs[-1] > 0.7
    assert res.msd[-1] == pytest.approx(2 * 3 * 0.3**2, rel=0.15)
    with pytest.raises(AnalysisError, match="species 'Li'"):
        self_relaxation(_walkers(rng, n_frames=10), "Li")
    with pytest.raises(AnalysisError, match="at least 3 frames"):
        self_relaxation(_walkers(rng, n_frames=2), "P")


def test_density_of_prototypes_and_of_a_shrinking_cell():
    """g/cm³ from cell and masses: the published densities, 1/s³ under a scaled cell, drift sign."""
    li2s = prototype("Li2S")  # antifluorite, 4 Li2S per cubic cell
    by_hand = 4 * (2 * 6.94 + 32.06) / li2s.get_volume() * 1.66053906660
    assert density(_static(li2s)).mean == pytest.approx(by_hand, rel=2e-3)
    beta = prototype("beta-Li3PS4")
    assert density(_static(beta)).mean == pytest.approx(1.853, abs=2e-3)
    # an NPT-like run compressing by 1 % in length per frame: density grows as 1 / s³
    s = 1.0 - 0.01 * np.arange(8)
    cells = beta.cell.array[None] * s[:, None, None]
    pos = beta.positions[None] * s[:, None, None]
    d = density(Trajectory(beta.get_chemical_symbols(), pos, cells, 10.0 * np.arange(8)))
    np.testing.assert_allclose(d.g_cm3 / d.g_cm3[0], 1.0 / s**3, rtol=1e-12)
    assert d.drift > 0  # still compressing: not settled
    flat = density(Trajectory(beta.get_chemical_symbols(), pos[[0] * 8], cells[[0] * 8], 10.0 * np.arange(8)))
    assert flat.drift == pytest.approx(0.0)
    assert flat.second_half == pytest.approx((flat.mean, 0.0))
    with pytest.raises(AnalysisError, match="degenerate cell"):
        density(Trajectory(beta.get_chemical_symbols(), pos[:2], np.zeros((2, 3, 3)), [0.0, 1.0]))


def test_shell_peak_skips_a_stray_close_pair_that_first_peak_takes():
    """Simple cubic 'P' at 5.3 Å plus one extra atom on a cube edge (2.9 and 2.4 Å from two
    sites): g has tall narrow peaks below 3 Å holding 4/126 neighbours per atom, and the real
    shell at 5.3 Å."""
    atoms = bulk("Po", "sc", a=5.3).repeat(5)
    atoms += ase.Atoms("Po", positions=[atoms.positions[0] + [2.9, 0.0, 0.0]])
    atoms.positions[:, 0] += 0.01  # nothing on a bin edge
    r = rdf(_static(atoms), [("Po", "Po")], r_max=6.5)
    key = ("Po", "Po")
    assert r.r_peak[key] < 3.0  # first_peak: a stray pair
    assert shell_peak(r.r, r.g[key], r.n[key]) == pytest.approx(5.3, abs=0.1)
    assert math.isnan(shell_peak(r.r, r.g[key], r.n[key], min_cn=100.0))
