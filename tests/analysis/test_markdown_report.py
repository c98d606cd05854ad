"""``write_report`` / ``ssehpc analyze --report`` on a synthetic campaign store.

The store holds a 32-atom β-Li₃PS₄ cell at 500 / 600 / 700 K × 2 replicas (a production run each,
plus an equilibration run without frames and one failed run): PS₄ units vibrate in place (P–S
bonds intact), Li ions hop on a cubic lattice with D*(T) = D0·exp(−Ea/k_B T), Ea = 0.30 eV, and
the committee deviation per frame is scripted so the screening fractions are known exactly.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from synthetic import lattice_hops
from typer.testing import CliRunner

from ssehpc.analysis.markdown_report import REPORT_NAME, ea_interval, write_report
from ssehpc.analysis.report import analyze_store
from ssehpc.cli import app
from ssehpc.io.structure import atoms_to_state
from ssehpc.io.zarr_store import COMMITTEE_FRAME_FIELDS, ZarrStore
from ssehpc.structures.lips import prototype

KB_EV_K = 8.617333262e-5
EA_EV = 0.30
D0_A2_FS = 0.05  # Å²/fs, so D*(600 K) ≈ 1.5e-4 Å²/fs = 1.5e-5 cm²/s
TEMPS_K = (500.0, 600.0, 700.0)
N_FRAMES, DT_FRAME_FS = 400, 10.0
#: Committee deviation per frame (eV/Å) at each T: 500 K all accurate; 700 K half accurate,
#: a quarter candidate, a quarter failed (trust levels 0.10 / 0.25, those of ``lips``).
DEVIATIONS = {500.0: (0.05,), 600.0: (0.05, 0.05, 0.05, 0.15), 700.0: (0.05, 0.05, 0.15, 0.40)}


def _d_a2_fs(T: float) -> float:
    return D0_A2_FS * np.exp(-EA_EV / (KB_EV_K * T))


def _write_run(zs: ZarrStore, atoms, T: float, rep: int, stage: str, n_frames: int, status: str) -> None:
    rid = f"beta-Li3PS4_T{T:g}_r{rep}_{stage}"
    state = atoms_to_state(atoms)
    attrs = {
        "campaign": {"system": "beta-Li3PS4", "temperature_K": T, "replica": rep, "stage": stage},
        "temperature_K": T,
        "dt_fs": 1.0,
        "steps": int(n_frames * DT_FRAME_FS),
        "composition": "Li12P4S16",
        "potential": {"name": "mlff", "params": {"model": "lips"}},
    }
    run = zs.create_run(rid, state, attrs, extra_frame_fields=COMMITTEE_FRAME_FIELDS)
    if n_frames:
        rng = np.random.default_rng(1000 * int(T) + rep)
        base = np.asarray(atoms.positions)
        pos = np.broadcast_to(base, (n_frames, *base.shape)).copy()
        pos += rng.normal(scale=0.03, size=pos.shape)  # vibrations, P–S bonds stay < 2.4 Å
        li = np.flatnonzero(np.asarray(atoms.numbers) == 3)
        pos[:, li] += lattice_hops(rng, li.size, n_frames, _d_a2_fs(T), dt=DT_FRAME_FS, a=1.0)
        cell = np.asarray(atoms.cell.array)[None]
        devs = DEVIATIONS[T]
        frames = [
            {
                "positions": pos[f],
                "cell": cell,
                "time_fs": f * DT_FRAME_FS,
                "energy_eV": [0.0],
                "kinetic_energy_eV": [0.0],
                "temperature_K": [T],
                "pressure_GPa": [0.0],
                "conserved_energy_eV": [0.0],
                "force_dev_max": [devs[f % len(devs)]],
                "force_dev_mean": [devs[f % len(devs)] / 3],
                "step": int(f * DT_FRAME_FS),
            }
            for f in range(n_frames)
        ]
        run.append_frames(frames)
        run.update_attrs(current_step=int((n_frames - 1) * DT_FRAME_FS))
    run.set_status(status)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "campaign.zarr"
    zs = ZarrStore.open(path, "a")
    atoms = prototype("beta-Li3PS4")
    for T in TEMPS_K:
        for rep in (0, 1):
            _write_run(zs, atoms, T, rep, "equil", 0, "completed")
            _write_run(zs, atoms, T, rep, "prod", N_FRAMES, "completed")
    _write_run(zs, atoms, 800.0, 0, "equil", 0, "failed")
    return path


@pytest.fixture(scope="module")
def report(store: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = write_report(store, tmp_path_factory.mktemp("out") / "report", species="Li")
    return path, path.read_text(encoding="utf-8")


def _rows(text: str, first_cell: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith(f"| {first_cell} ")
    ]


def test_report_has_the_tables_with_units(report):
    path, text = report
    assert path.name == REPORT_NAME
    for header in (
        "D* (cm²/s)",
        "σ (mS/cm)",
        "σ_NE (mS/cm)",
        "Ea from D* (eV)",
        "σ(300 K) (mS/cm)",
        "D*(300 K) (cm²/s)",
        "non-Arrhenius flag",
        "simulated (ps)",
        "P–S peak (Å)",
    ):
        assert header in text, header
    # one transport row per temperature, with 95 % intervals "v [lo, hi]"
    rows = [r for r in _rows(text, "beta-Li3PS4") if len(r) == 11]
    assert [float(r[1]) for r in rows] == list(TEMPS_K)
    for r in rows:
        assert r[2] == "2"
        assert r[3] == "12"
        v, lo, hi = map(float, re.match(r"(\S+) \[(\S+), (\S+)\]", r[4]).groups())
        assert lo < v < hi


def test_campaign_summary_counts_runs_and_statuses(report):
    _, text = report
    assert "**13 runs**, 12 completed, 1 failed" in text
    summary = {r[1]: r for r in _rows(text, "beta-Li3PS4") if len(r) == 9 and r[2] == "Li12P4S16"}
    assert summary["800"][5] == "1 failed"
    assert summary["500"][4] == "2× equil, 2× prod"
    assert float(summary["500"][7]) == pytest.approx((N_FRAMES - 1) * DT_FRAME_FS / 1000, abs=1e-3)


def test_transport_and_arrhenius_are_the_analysis_values(store, report):
    _, text = report
    res = analyze_store(store, "Li")
    fit = res.arrhenius_D["beta-Li3PS4"]
    # the synthetic walk's activation energy comes back
    assert fit.Ea == pytest.approx(EA_EV, abs=0.08)
    lo, hi = ea_interval(fit)
    assert lo < fit.Ea < hi
    assert f"{fit.Ea:.3f} ± {fit.Ea_se:.3f} [{lo:.3f}, {hi:.3f}]" in text
    for p in res.points:
        assert f"{p.D:.3g} [{p.D_lo:.3g}, {p.D_hi:.3g}]" in text
        # D* in cm²/s from Å²/fs: × 0.1
        assert pytest.approx(0.1 * _d_a2_fs(p.temperature_K), rel=0.35) == p.D


def test_screening_fractions_per_temperature(report):
    _, text = report
    rows = {r[0]: r for r in (_rows(text, "500") + _rows(text, "600") + _rows(text, "700")) if len(r) == 8}
    n = str(2 * N_FRAMES)
    assert rows["500"][1:6] == ["2", n, "100.0 %", "0.0 %", "0.0 %"]
    assert rows["600"][1:6] == ["2", n, "75.0 %", "25.0 %", "0.0 %"]
    assert rows["700"][1:6] == ["2", n, "50.0 %", "25.0 %", "25.0 %"]
    n_fail = 2 * N_FRAMES // 4  # the 700 K quarter; nothing fails at 500 and 600 K
    assert f"failed ({n_fail} frames)." in text
    assert "trust_lo = 0.1" in text
    assert "trust_hi = 0.25" in text


def test_structure_section_sees_intact_ps4(report):
    _, text = report
    rows = [r for r in _rows(text, "beta-Li3PS4") if len(r) == 9 and r[2].endswith("_prod")]
    assert len(rows) == 3
    for r in rows:
        assert 1.9 < float(r[3]) < 2.2  # P–S first peak, Å
        assert r[5] == "100.0 %"  # P in PS4


def test_png_links_resolve(report):
    path, text = report
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    names = set(links)
    assert {f"msd_beta-Li3PS4_T{T:g}.png" for T in TEMPS_K} <= names
    assert {"arrhenius_beta-Li3PS4.png", "deviation_histogram.png"} <= names
    for link in links:
        f = path.parent / link
        assert f.is_file(), link
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", link


def test_notes_are_honest_about_length_and_model(report):
    _, text = report
    notes = text.split("## Notes", 1)[1]
    assert "3.99 ps long" in notes
    assert "`lips`" in notes
    assert "700 K" in notes
    assert "runs without frames" in notes


def test_cli_analyze_writes_the_report(store, tmp_path):
    out = tmp_path / "rep"
    res = CliRunner().invoke(app, ["analyze", str(store), "--no-write", "--report", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / REPORT_NAME).is_file()
    assert f"wrote {out / REPORT_NAME}" in res.stdout


def test_framework_check_separates_vibrating_framework_from_diffusing_li(report):
    _, text = report
    rows = [r for r in _rows(text, "beta-Li3PS4") if len(r) == 6]
    assert len(rows) == 3
    for r in rows:
        li0, li1 = map(float, r[3].split(" → "))
        p0, p1 = map(float, r[4].split(" → "))
        # Li diffuses (MSD grows several-fold); P only vibrates: 6·(0.03 Å)² = 0.0054 Å², nearly
        # flat (the removed drift of the Li + S reference adds a little as Li moves)
        assert li1 > 3 * li0
        assert p0 == pytest.approx(0.0054, rel=0.2)
        assert p1 - p0 < 0.02 * (li1 - li0)


def test_share_never_rounds_a_frame_away():
    from ssehpc.analysis.markdown_report import _share

    assert _share(0, 2004) == "0.0 %"
    assert _share(2004, 2004) == "100.0 %"
    assert _share(1, 2004) == "0.05 %"  # one failed frame of 2,004 (was printed "0.0 %")
    assert _share(2003, 2004) == "99.95 %"
    assert _share(1, 4) == "25.0 %"
    assert _share(1, 10**6) == "0.0001 %"
    assert _share(0, 0) == "–"
    assert _share(1, 10**7) == "< 0.0001 %"
    assert _share(10**7 - 1, 10**7) == "> 99.9999 %"
