"""The shipped Li–P–S committee through the potential registry and the run spec."""

from __future__ import annotations

import pytest
import torch

from ssehpc.ml import Committee, MomentPotential, resolve_model
from ssehpc.potentials import make_potential


def test_shipped_committee_by_name() -> None:
    pot = make_potential("mlff", model="lips-v0")
    assert isinstance(pot, Committee)
    assert pot.n_members == 4
    assert pot.cutoff == pytest.approx(5.0)
    assert sorted(pot.spec.species) == [3, 15, 16]
    assert pot.metadata["teacher"].startswith("CHGNet")
    # the default name is the current committee (lips-v11), with its ZBL core below 1.2 Å
    assert resolve_model("lips") == resolve_model("lips-v11")
    assert make_potential("mlff", model="lips").spec.core_outer == pytest.approx(1.2)
    single = make_potential("mlff", model="lips-v0", members=[1], dtype="float64")
    assert type(single) is MomentPotential
    assert single.dtype == torch.float64
    pair = make_potential("mlff", model="lips-v0", members=[0, 2])
    assert isinstance(pair, Committee)
    assert pair.n_members == 2


def test_unknown_model_names_the_choices(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="lips-v0"):
        resolve_model("lips-v99")
    with pytest.raises(ValueError, match="dtype"):
        make_potential("mlff", model="lips-v0", dtype="float16")
    with pytest.raises(ValueError, match="bad parameters"):
        make_potential("mlff", model="lips-v0", nonsense=1)


def test_spec_with_an_element_the_model_does_not_know(tmp_path) -> None:
    """Na in a Li–P–S model: a one-line error before anything runs or is written."""
    import ase.io
    from ase import Atoms

    from ssehpc.spec import MDSpec, SpecError, prepare_run

    atoms = Atoms(
        "Li2NaS2",
        scaled_positions=[[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5], [0.25] * 3],
        cell=[6.0, 6.0, 6.0],
        pbc=True,
    )
    ase.io.write(tmp_path / "bad.extxyz", atoms)
    spec = MDSpec.from_dict(
        {
            "structure": {"file": "bad.extxyz"},
            "potential": {"name": "mlff", "params": {"model": "lips-v0"}},
            "temperature_K": 300,
            "dt_fs": 1.0,
            "steps": 10,
            "store": "out.zarr",
        },
        base_dir=tmp_path,
    )
    with pytest.raises(SpecError, match="Na"):
        prepare_run(spec)
    assert not (tmp_path / "out.zarr").exists()


def test_spec_with_a_missing_model_file(tmp_path) -> None:
    from ssehpc.spec import MDSpec, SpecError, build_potential

    spec = MDSpec.from_dict(
        {
            "structure": {"builder": "fcc", "element": "Ar", "a": 5.26, "repeat": 2},
            "potential": {"name": "mlff", "params": {"model": "missing.pt"}},
            "temperature_K": 300,
            "dt_fs": 1.0,
            "steps": 10,
        },
        base_dir=tmp_path,
    )
    with pytest.raises(SpecError, match=r"missing\.pt"):
        build_potential(spec)


@pytest.mark.parametrize("name", ["lips", "lips-v10", "lips-v9", "lips-v6"])
def test_shipped_committee_names_the_data_it_was_trained_on(name) -> None:
    """The model file's data hash is the hash of the shipped files it lists (provenance)."""
    from ssehpc.ml.data import sha256_files

    pot = make_potential("mlff", model=name)
    md = pot.metadata
    files = [resolve_model(name).parent / f for f in md["data_files"]]
    assert all(f.is_file() for f in files), md["data_files"]
    assert sha256_files(files) == md["data_sha256"]


def test_a_retired_name_says_how_to_restore_it_and_a_restored_copy_is_recognised(tmp_path) -> None:
    """Retired committees raise an error with the git command; the restored file keeps its levels."""
    import shutil
    import subprocess
    from pathlib import Path

    from ssehpc.ml.data import sha256_files
    from ssehpc.ml.shipped import RETIRED_MODELS, SHIPPED_MODELS
    from ssehpc.screen import CALIBRATED_TRUST, calibrated_trust

    assert not set(RETIRED_MODELS) & set(SHIPPED_MODELS)
    for name, r in RETIRED_MODELS.items():
        with pytest.raises(FileNotFoundError, match=rf"{name}.*retired.*git show {r.commit}:{r.path}"):
            resolve_model(name)
        assert not (Path(__file__).resolve().parents[2] / r.path).exists()
    with pytest.raises(FileNotFoundError, match="retired"):
        make_potential("mlff", model="LIPS-V8")
    # restore it the way the message says (needs the git history: skipped in a shallow or
    # exported copy of the repository)
    repo = Path(__file__).resolve().parents[2]
    r = RETIRED_MODELS["lips-v8"]
    if (
        shutil.which("git") is None
        or subprocess.run(
            ["git", "-C", str(repo), "cat-file", "-e", f"{r.commit}:{r.path}"], capture_output=True
        ).returncode
    ):
        pytest.skip("no git history here to restore lips-v8 from")
    subprocess.run(r.restore_command(tmp_path), shell=True, cwd=repo, check=True)
    restored = tmp_path / "committee_v8.pt"
    assert sha256_files(restored) == r.sha256
    assert calibrated_trust(restored) == CALIBRATED_TRUST["lips-v8"]
    pot = make_potential("mlff", model=str(restored))
    assert pot.n_members == 4
    assert "train_glass3.extxyz.xz" in pot.metadata["data_files"]


@pytest.mark.parametrize(("pair", "near"), [(("Li", "Li"), 1.3), (("Li", "P"), 1.4), (("Li", "S"), 1.4)])
def test_shipped_committee_repels_close_contacts_in_the_liquid(pair, near) -> None:
    """A pair pushed together inside a glass packing costs energy.  lips-v3 had a hole here (a Li
    pair at 1.5 Å was 3.9 eV below the same pair at 2.6 Å: 1000-1500 K melts collapsed); the
    teacher's energy rises below ~1.8 Å."""
    from pathlib import Path

    import ase.io
    import numpy as np
    from ase.neighborlist import neighbor_list

    from ssehpc.ml.calculator import SSEHPCCalculator

    start = Path(__file__).resolve().parents[2] / "examples" / "glass" / "lps75_random_s33_chgnet.extxyz"
    atoms = ase.io.read(start)
    atoms.calc = SSEHPCCalculator(make_potential("mlff", model="lips"))
    sym = np.array(atoms.get_chemical_symbols())
    i, j, d, vec = neighbor_list("ijdD", atoms, 4.0)
    close = np.flatnonzero((sym[i] == pair[0]) & (sym[j] == pair[1]) & (i != j))
    rng = np.random.default_rng(0)
    for k in rng.choice(close, size=3, replace=False):
        u = vec[k] / d[k]
        energies = []
        for r in (2.6, 1.9, near):
            b = atoms.copy()
            b.calc = atoms.calc
            shift = 0.5 * (d[k] - r) * u
            b.positions[i[k]] += shift
            b.positions[j[k]] -= shift
            energies.append(b.get_potential_energy())
        assert energies[2] > energies[1] + 0.3, (pair, energies)
        assert energies[2] > energies[0] + 0.3, (pair, energies)


def test_shipped_committee_meets_the_accuracy_targets_on_independent_frames() -> None:
    """Issue targets (force MAE ≤ 50 meV/Å, energy MAE ≤ 5 meV/atom) on ``test_indep``: teacher
    frames from their own seeds that no training run saw, not even for early stopping (the older
    ``test*`` files chose each member's best epoch).  Checks the independence too: none of its
    task seeds appears in a training or validation file."""
    from ssehpc.ml.data import build_graph, read_frames
    from ssehpc.ml.model import load
    from ssehpc.ml.train import metrics

    folder = resolve_model("lips").parent
    frames = read_frames(folder / "test_indep.extxyz.xz")
    assert len(frames) == 423
    seen = set()
    for name in load(resolve_model("lips")).metadata["data_files"] + [
        "test.extxyz.xz",
        "test_hot.extxyz.xz",
        "test_contact.extxyz.xz",
    ]:
        seen |= {a.info.get("seed") for a in read_frames(folder / name)}
    assert not {a.info["seed"] for a in frames} & seen

    model = load(resolve_model("lips")).eval()
    m = metrics(model, [build_graph(a, model.spec.cutoff) for a in frames])
    assert m["forces_meV_per_A"]["mae"] <= 50.0, m["forces_meV_per_A"]
    assert m["energy_meV_per_atom"]["mae"] <= 5.0, m["energy_meV_per_atom"]
    # per element: Li the softest, P (stiff P–S bonds) the hardest, none wildly off
    el = {k: v["mae"] for k, v in m["forces_per_element_meV_per_A"].items()}
    assert el["Li"] < el["S"] < el["P"] < 100.0, el


def test_glass_frames_above_trust_hi_are_as_accurate_as_the_rest() -> None:
    """``test_glass``: teacher-labelled 600 K frames of two melt-quenched 75Li₂S–25P₂S₅ packings
    that no training saw, driven by ``lips-v7`` (every frame whose ``lips-v7`` deviation reached the calibrated
    ``trust_hi`` = 0.25 eV/Å, plus a uniform and a 0.10–0.25 eV/Å sample).  The issue's accuracy
    targets hold on the uniform sample, and the frames above ``trust_hi`` are not measurably less
    accurate: in this glass the committee's excursions are disagreement, not error
    (``docs/mlff.md``, "MD stability")."""
    from ssehpc.ml.data import build_graph, read_frames
    from ssehpc.ml.model import load
    from ssehpc.ml.train import metrics
    from ssehpc.screen import CALIBRATED_TRUST

    folder = resolve_model("lips").parent
    frames = read_frames(folder / "test_glass.extxyz.xz")
    assert len(frames) == 246
    assert {a.info["seed"] for a in frames} == {78, 79}
    assert {a.info["temperature_K"] for a in frames} == {600.0}
    trust_hi = CALIBRATED_TRUST["lips"][1]
    model = load(resolve_model("lips")).eval()
    by = {}
    for stratum in ("uniform", "excursion"):
        sel = [a for a in frames if a.info["stratum"] == stratum]
        by[stratum] = metrics(model, [build_graph(a, model.spec.cutoff) for a in sel])
    excursions = [a for a in frames if a.info["stratum"] == "excursion"]
    assert len(excursions) == 66
    assert min(a.info["force_dev_max_lips_v7"] for a in excursions) >= trust_hi
    uni, exc = by["uniform"], by["excursion"]
    assert uni["forces_meV_per_A"]["mae"] <= 50.0, uni
    assert uni["energy_meV_per_atom"]["mae"] <= 5.0, uni
    assert exc["forces_meV_per_A"]["mae"] <= 1.1 * uni["forces_meV_per_A"]["mae"], (exc, uni)
    assert exc["energy_meV_per_atom"]["mae"] <= 5.0, exc


def test_default_committee_agrees_where_lips_v7_split() -> None:
    """On the 66 held-out glass frames where ``lips-v7`` (the default until 2026-12-07) went above
    ``trust_hi``, the default committee's members agree again on most: the fourth glass iteration
    (600 labels of the glass's rare redox defects, every member trained on all of them) is what
    made ``lips-v9`` the default.  Measured: ``lips-v9`` 9 of the 66 still above, median 0.19 eV/Å;
    ``lips-v10`` 9, median 0.15; ``lips-v11`` (the default since the sixth iteration) 8, median 0.15
    (``lips-v7``: 66, median 0.29; ``docs/mlff.md``, "MD stability")."""
    import numpy as np

    from ssehpc.ml.calculator import SSEHPCCalculator
    from ssehpc.ml.data import read_frames
    from ssehpc.screen import CALIBRATED_TRUST

    frames = [
        a
        for a in read_frames(resolve_model("lips").parent / "test_glass.extxyz.xz")
        if a.info["stratum"] == "excursion"
    ]
    trust_hi = CALIBRATED_TRUST["lips"][1]
    calc = SSEHPCCalculator(make_potential("mlff", model="lips"))
    dev = []
    for a in frames:
        b = a.copy()
        b.calc = calc
        b.get_forces()
        dev.append(calc.results["force_dev_max"])
    dev = np.array(dev)
    assert len(dev) == 66
    assert np.median(dev) < trust_hi, np.median(dev)
    assert np.sum(dev >= trust_hi) <= 66 // 4, np.sort(dev)[-20:]


def test_shipped_model_data_stays_within_the_20_MB_budget() -> None:
    """Issue 3: model + data ≤ 20 MB in the repo.  Counts every file of ``ssehpc/data/lips`` (the
    committees kept for documented results included), and the default committee's training files
    must all be there."""
    folder = resolve_model("lips").parent
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert total <= 20_000_000, f"ssehpc/data/lips holds {total / 1e6:.2f} MB"
    md = make_potential("mlff", model="lips").metadata
    assert all((folder / f).is_file() for f in md["data_files"])
