"""Reference engines: finite-field Born charges with tblite and PySCF, the label and sample
commands. Real tblite and PySCF throughout; PySCF's DFT checks are marked slow."""

import time

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.units import Bohr, Debye, Hartree

from ipi_dipole import data
from ipi_dipole.cli import main
from ipi_dipole.engines import finite_field, get_engine
from ipi_dipole.engines.base import PERIODIC_MESSAGE, CalculationFailed, charge_and_uhf
from ipi_dipole.errors import InputError
from ipi_dipole.sampling import parse_masses, ramp_temperature
from ipi_dipole.structures import load_structure, water_dimer


@pytest.fixture(scope="module")
def tblite():
    return get_engine("tblite")


@pytest.fixture(scope="module")
def dimer_result(tblite):
    return tblite.compute(water_dimer())[0]


def dipole_derivatives(engine, atoms, step):
    """dM_a/dx_ib by central differences of the engine's dipole (e), shape (N, 3, 3)."""
    z = np.empty((len(atoms), 3, 3))
    for i in range(len(atoms)):
        for b in range(3):
            moved = atoms.copy()
            moved.positions[i, b] += step
            plus = engine.compute(moved, born_charges=False)[0].dipole
            moved.positions[i, b] -= 2 * step
            minus = engine.compute(moved, born_charges=False)[0].dipole
            z[i, :, b] = (plus - minus) / (2 * step)
    return z


def energy_gradient(engine, atoms, step, field=None):
    """-dE/dx by central differences of the engine's energy in a field (eV/Angstrom)."""
    f = np.empty((len(atoms), 3))
    for i in range(len(atoms)):
        for b in range(3):
            moved = atoms.copy()
            moved.positions[i, b] += step
            plus = engine._evaluate(moved, field)[0].energy
            moved.positions[i, b] -= 2 * step
            minus = engine._evaluate(moved, field)[0].energy
            f[i, b] = -(plus - minus) / (2 * step)
    return f


# --- finite-field core --------------------------------------------------------------------

def test_point_charges_give_plus_q_and_cubic_terms_cancel_to_h_squared():
    q = np.array([0.8, -0.3, -0.5])
    gamma = 0.7  # a cubic response, e per (V/A)^2

    def forces(field):
        return np.outer(q, field) + gamma * np.outer(q, field**3) + 3.0 * np.outer(q**2, field**2)

    for h in (0.01, 0.1):
        z = finite_field.born_charges(forces, h)
        expected = np.einsum("i,ab->iab", q, np.eye(3)) + gamma * h**2 * np.einsum("i,ab->iab", q, np.eye(3))
        np.testing.assert_allclose(z, expected, atol=1e-12)


@pytest.mark.parametrize("step", [0.0, -0.01, float("nan"), 1.0, "x"])
def test_bad_field_steps_are_refused(step):
    with pytest.raises(InputError, match="field step"):
        finite_field.check_field_step(step)


# --- tblite ---------------------------------------------------------------------------------

def test_tblite_field_route_equals_displacement_route_for_the_water_dimer(tblite, dimer_result):
    # the field route needs 6 force evaluations, the displacement route 36 dipoles
    z_disp = dipole_derivatives(tblite, water_dimer(), step=2e-3)
    assert np.abs(dimer_result.born_charges - z_disp).max() < 1e-4


def test_tblite_field_route_equals_displacement_route_for_a_hot_frame(tblite):
    atoms = water_dimer()
    atoms.rattle(0.08, seed=3)
    z = tblite.compute(atoms)[0].born_charges
    assert np.abs(z - dipole_derivatives(tblite, atoms, step=2e-3)).max() < 1e-4


@pytest.mark.parametrize("method", ["GFN2-xTB", "GFN1-xTB"])
def test_neutral_molecules_satisfy_the_sum_rule(method):
    # xTB energies are exactly translation invariant (no grid), so sum_i F_i(E) = q E holds
    # at any SCF convergence; what is left is rounding, measured <= 1e-12 e on these
    # molecules and on heated dimer frames. 1e-9 leaves room for other BLAS builds.
    engine = get_engine("tblite", method=method)
    for name in ("H2O", "NH3", "CO2", "CH3CH2OH", "C6H6"):
        atoms = molecule(name)
        atoms.rattle(0.05, seed=1)
        z = engine.compute(atoms)[0].born_charges
        assert np.abs(z.sum(axis=0)).max() < 1e-9, name
        assert np.all(np.isfinite(z))


def test_ions_follow_the_sign_convention_sum_rule_equals_q(tblite):
    hydroxide = Atoms("OH", positions=[[0, 0, 0], [0.1, 0.2, 0.97]], info={"charge": -1})
    ammonium = molecule("NH3") + Atoms("H", positions=[[0, 0, -1.0]])
    ammonium.info["charge"] = 1
    for atoms, q in ((hydroxide, -1.0), (ammonium, 1.0)):
        z = tblite.compute(atoms)[0].born_charges
        np.testing.assert_allclose(z.sum(axis=0), q * np.eye(3), atol=1e-9)


def test_tblite_oxygen_charges_are_negative_and_hydrogens_positive(dimer_result):
    z = dimer_result.born_charges
    traces = np.trace(z, axis1=1, axis2=2) / 3
    assert np.all(traces[[0, 3]] < -0.3) and np.all(traces[[1, 2, 4, 5]] > 0.1)


def test_tblite_units_forces_are_minus_the_energy_gradient(tblite):
    atoms = water_dimer()
    atoms.rattle(0.05, seed=2)
    for field in (None, np.array([0.1, -0.2, 0.3])):
        forces = tblite._evaluate(atoms, field)[0].forces
        np.testing.assert_allclose(forces, energy_gradient(tblite, atoms, 1e-4, field), atol=2e-5)


def test_tblite_units_field_derivative_of_the_energy_is_minus_the_dipole(tblite):
    # eV per V/A is e*A: this ties the field (V/A -> hartree/(e bohr)), energy (hartree -> eV)
    # and dipole (e bohr -> e A) conversions together
    atoms = water_dimer()
    h = 1e-3
    dipole = tblite._evaluate(atoms)[0].dipole
    slope = [(tblite._evaluate(atoms, h * e)[0].energy - tblite._evaluate(atoms, -h * e)[0].energy) / (2 * h)
             for e in np.eye(3)]
    np.testing.assert_allclose(-np.array(slope), dipole, atol=1e-6)
    # CODATA: 1 atomic unit of field = 5.14220674763e11 V/m
    from ipi_dipole.engines.tblite_engine import FIELD_TO_AU
    assert 1 / FIELD_TO_AU == pytest.approx(51.4220674763, rel=2e-8)


def test_tblite_agrees_with_tblites_own_ase_calculator(tblite):
    from tblite.ase import TBLite

    atoms = water_dimer()
    atoms.rattle(0.03, seed=4)
    ours = tblite.compute(atoms, born_charges=False)[0]
    theirs = atoms.copy()
    theirs.calc = TBLite(method="GFN2-xTB", accuracy=0.01, verbosity=0)
    assert ours.energy == pytest.approx(theirs.get_potential_energy(), abs=1e-6)
    np.testing.assert_allclose(ours.forces, theirs.get_forces(), atol=1e-5)
    # tblite.ase documents its dipole as Debye but returns e*A (res["dipole"] * Bohr)
    np.testing.assert_allclose(ours.dipole, theirs.get_dipole_moment(), atol=1e-6)


def test_ase_calculator_face(tblite, dimer_result):
    atoms = water_dimer()
    atoms.calc = tblite.calculator()
    assert atoms.get_potential_energy() == pytest.approx(dimer_result.energy, abs=1e-8)
    np.testing.assert_allclose(atoms.get_forces(), dimer_result.forces, atol=1e-8)
    np.testing.assert_allclose(atoms.get_dipole_moment(), dimer_result.dipole, atol=1e-8)
    z = atoms.calc.get_property("born_charges", atoms)
    np.testing.assert_allclose(z, dimer_result.born_charges, atol=1e-6)
    # the charge lives in atoms.info, which ASE does not watch: the calculator does
    atoms.info["charge"] = 1
    assert atoms.get_potential_energy() > dimer_result.energy + 5


def test_charge_and_spin_from_info():
    atoms = molecule("H2O")
    assert charge_and_uhf(atoms) == (0.0, 0)
    radical = Atoms("OH", positions=[[0, 0, 0], [0, 0, 0.97]])
    assert charge_and_uhf(radical) == (0.0, 1)
    radical.info["spin"] = 2  # multiplicity
    assert charge_and_uhf(radical) == (0.0, 1)
    radical.info["uhf"] = 3
    with pytest.raises(InputError, match="disagree"):
        charge_and_uhf(radical)
    atoms.info["uhf"] = 1
    with pytest.raises(InputError, match="10 electrons"):
        charge_and_uhf(atoms)


def test_scf_failure_is_a_calculation_failure():
    # a dimer stretched threefold (O-H 2.9 A, open-shell fragments) does not converge in
    # tblite's 250 cycles (0.25 s); the ASE face raises ASE's own CalculationFailed
    atoms = water_dimer()
    atoms.positions *= 3
    with pytest.raises(CalculationFailed, match="SCF not converged in 250 cycles"):
        get_engine("tblite").compute(atoms)
    atoms.calc = get_engine("tblite", max_iterations=5).calculator()
    from ase.calculators.calculator import CalculationFailed as AseCalculationFailed
    with pytest.raises(AseCalculationFailed, match="SCF not converged in 5 cycles"):
        atoms.get_potential_energy()


def test_periodic_structures_are_refused(tblite):
    atoms = water_dimer()
    atoms.cell = [10, 10, 10]
    atoms.pbc = [True, False, False]
    with pytest.raises(InputError, match=PERIODIC_MESSAGE):
        tblite.compute(atoms)
    assert PERIODIC_MESSAGE == "a finite field in a periodic cell is not the Born charge"


def test_get_engine_rejects_unknown_names_and_options():
    with pytest.raises(InputError, match="unknown engine"):
        get_engine("vasp")
    with pytest.raises(InputError, match="does not take option"):
        get_engine("tblite", xc="PBE")
    with pytest.raises(InputError, match="GFN2-xTB"):
        get_engine("tblite", method="GFN3")
    assert get_engine("tblite", method="gfn1").description == "tblite GFN1-xTB"


def test_tblite_speed_is_reported(tblite, capsys):
    atoms = water_dimer()
    tblite.compute(atoms)
    n = 20
    t0 = time.perf_counter()
    for _ in range(n):
        tblite.compute(atoms, born_charges=False)
    t1 = time.perf_counter()
    for _ in range(n):
        tblite.compute(atoms)
    t2 = time.perf_counter()
    with capsys.disabled():
        print(f"\n[tblite GFN2-xTB water dimer] {1e3 * (t1 - t0) / n:.2f} ms per point, "
              f"{1e3 * (t2 - t1) / n:.2f} ms per point + Z*")
    assert (t2 - t1) / n < 0.5


# --- structures and sampling --------------------------------------------------------------

def test_water_dimer_is_the_s22_geometry():
    atoms = load_structure("water-dimer")
    assert atoms.get_chemical_symbols() == ["O", "H", "H", "O", "H", "H"]
    assert not atoms.pbc.any()
    d = atoms.get_all_distances()
    assert 2.85 < d[0, 3] < 3.0          # O...O of the hydrogen bond
    assert 1.85 < d[2, 3] < 2.05         # H...O
    assert np.all((d[0, 1:3] > 0.9) & (d[0, 1:3] < 1.0))


def test_mass_specs_and_ramp():
    atoms = water_dimer()
    assert parse_masses(["H=8", "O=16.5"], atoms) == {"H": 8.0, "O": 16.5}
    for bad in ("H8", "H=-1", "Xx=3", "C=12"):
        with pytest.raises(InputError, match="--mass"):
            parse_masses([bad], atoms)
    assert ramp_temperature(0, 100, 10, 320) == 10
    assert ramp_temperature(50, 100, 10, 320) == 165
    assert ramp_temperature(100, 100, 10, 320) == 320


def test_sample_cli_writes_frames(tmp_path, capsys):
    traj = tmp_path / "traj.extxyz"
    rc = main(["sample", "water-dimer", "-o", str(traj), "--steps", "6", "--every", "3",
               "--mass", "H=8", "--seed", "7", "--no-progress"])
    assert rc == 0
    frames = data.load(traj)
    assert [f.info["step"] for f in frames] == [0, 3, 6]
    assert [f.info["target_temperature_K"] for f in frames] == [10, 165, 320]
    np.testing.assert_allclose(frames[-1].get_masses()[[1, 2, 4, 5]], 8.0)
    assert not np.allclose(frames[0].positions, frames[-1].positions)
    for f in frames:  # engine results for free
        assert np.isfinite(f.get_potential_energy())
        assert f.get_forces().shape == (6, 3)
        assert f.get_dipole_moment().shape == (3,)
    # same seed, same trajectory; an existing file is not overwritten without asking
    assert main(["sample", "water-dimer", "-o", str(traj), "--steps", "6", "--seed", "7"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    again = tmp_path / "again.extxyz"
    main(["sample", "water-dimer", "-o", str(again), "--steps", "6", "--every", "3",
          "--mass", "H=8", "--seed", "7", "--no-progress"])
    np.testing.assert_allclose(data.load(again)[-1].positions, frames[-1].positions, atol=1e-12)


# --- label command ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trajectory(tmp_path_factory):
    """4 frames of a heated dimer, from the sample command."""
    path = tmp_path_factory.mktemp("traj") / "traj.extxyz"
    assert main(["sample", "water-dimer", "-o", str(path), "--steps", "150", "--every", "50",
                 "--t-start", "300", "--t-end", "300", "--seed", "11", "--no-progress"]) == 0
    assert len(data.load(path)) == 4
    return path


@pytest.fixture(scope="module")
def labelled(trajectory, tmp_path_factory):
    out = tmp_path_factory.mktemp("label") / "labelled.extxyz"
    assert main(["label", str(trajectory), "-o", str(out), "--no-progress"]) == 0
    return out


def assert_same_labels(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.info["source_index"] == y.info["source_index"]
        np.testing.assert_allclose(x.positions, y.positions, atol=1e-12)
        np.testing.assert_allclose(data.get_born_charges(x), data.get_born_charges(y), atol=1e-9)
        np.testing.assert_allclose(x.get_dipole_moment(), y.get_dipole_moment(), atol=1e-9)
        np.testing.assert_allclose(x.get_forces(), y.get_forces(), atol=1e-9)
        assert x.get_potential_energy() == pytest.approx(y.get_potential_energy(), abs=1e-9)


def test_label_cli_writes_a_valid_data_set(trajectory, labelled, tblite):
    frames = data.load(labelled)
    assert [f.info["source_index"] for f in frames] == [0, 1, 2, 3]
    assert data.validate(frames, asr_tolerance=1e-6) == []
    assert main(["validate", str(labelled)]) == 0
    assert frames[0].info["engine"] == "tblite GFN2-xTB"
    assert frames[0].info["field_step"] == pytest.approx(0.01)
    # what was written is what the engine computes (no unit slip on the way to disk)
    source = data.load(trajectory)[2]
    result = tblite.compute(source)[0]
    # extended XYZ keeps 8 decimals
    np.testing.assert_allclose(data.get_born_charges(frames[2]), result.born_charges, atol=1e-8)
    np.testing.assert_allclose(frames[2].get_dipole_moment(), result.dipole, atol=1e-8)


@pytest.mark.parametrize("cut", ["whole", "mid-frame"])
def test_label_rerun_after_truncation_resumes_with_the_same_result(trajectory, labelled, tmp_path, capsys, cut):
    text = labelled.read_text()
    lines = text.splitlines(keepends=True)
    per_frame = len(lines) // 4
    keep = 2 * per_frame + (0 if cut == "whole" else per_frame // 2)
    out = tmp_path / "partial.extxyz"
    out.write_text("".join(lines[:keep]) + ("" if cut == "whole" else lines[keep][:15]))
    assert main(["label", str(trajectory), "-o", str(out), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "2 now, 2 from an earlier run" in captured.out
    if cut == "mid-frame":
        assert "incomplete last structure" in captured.err
    assert_same_labels(data.load(out), data.load(labelled))
    # a rerun with nothing left to do changes nothing
    assert main(["label", str(trajectory), "-o", str(out), "--no-progress"]) == 0
    assert_same_labels(data.load(out), data.load(labelled))


def test_label_refuses_an_output_from_another_input_or_engine(trajectory, labelled, tmp_path, capsys):
    other = tmp_path / "other.extxyz"
    frames = data.load(trajectory)
    for f in frames:
        f.positions += 0.01
    data.save(other, frames)
    out = tmp_path / "out.extxyz"
    out.write_text(labelled.read_text())
    assert main(["label", str(other), "-o", str(out), "--no-progress"]) == 2
    assert "belongs to another input" in capsys.readouterr().err
    assert main(["label", str(trajectory), "-o", str(out), "--method", "GFN1-xTB", "--no-progress"]) == 2
    assert "labelled with 'tblite GFN2-xTB'" in capsys.readouterr().err
    assert main(["label", str(trajectory), "-o", str(out), "--every", "2", "--no-progress"]) == 2
    assert "--every" in capsys.readouterr().err
    assert out.read_text() == labelled.read_text()  # untouched


def test_label_reports_a_failed_structure_by_index_and_skips_it(trajectory, tmp_path, capsys):
    frames = data.load(trajectory)
    # two H atoms 1e-8 A apart: a singular overlap matrix, tblite's eigensolver fails
    frames[1].positions[5] = frames[1].positions[4] + [1e-8, 0, 0]
    # stretched threefold: the SCF does not converge
    frames[2].positions *= 3
    bad = tmp_path / "bad.extxyz"
    data.save(bad, frames)
    out = tmp_path / "out.extxyz"
    assert main(["label", str(bad), "-o", str(out), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert f"{bad}: structure 1: calculation failed, skipped: tblite GFN2-xTB: (sygvd) failed" in captured.err
    assert f"{bad}: structure 2: calculation failed, skipped: tblite GFN2-xTB: SCF not converged" in captured.err
    assert "2 failed and skipped: 1, 2" in captured.out
    written = data.load(out)
    assert [f.info["source_index"] for f in written] == [0, 3]
    assert all(np.all(np.isfinite(data.get_born_charges(f))) for f in written)
    # a rerun keeps reporting the gaps instead of forgetting them
    assert main(["label", str(bad), "-o", str(out), "--no-progress"]) == 1
    assert "missing from an earlier run (failed then, not retried): 1, 2" in capsys.readouterr().out


def test_label_refuses_periodic_input(trajectory, tmp_path, capsys):
    frames = data.load(trajectory)
    frames[2].cell = [12, 12, 12]
    frames[2].pbc = True
    path = tmp_path / "periodic.extxyz"
    data.save(path, frames)
    assert main(["label", str(path), "-o", str(tmp_path / "out.extxyz"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "structure 2" in err and PERIODIC_MESSAGE in err
    assert not (tmp_path / "out.extxyz").exists()


def test_label_every_and_max(trajectory, tmp_path, capsys):
    out = tmp_path / "sub.extxyz"
    assert main(["label", str(trajectory), "-o", str(out), "--every", "2", "--max", "1",
                 "--no-progress"]) == 0
    assert [f.info["source_index"] for f in data.load(out)] == [0]
    assert main(["label", str(trajectory), "-o", str(out), "--every", "2", "--no-progress"]) == 0
    assert [f.info["source_index"] for f in data.load(out)] == [0, 2]


# --- PySCF --------------------------------------------------------------------------------

def test_pyscf_hf_water_field_terms_units_and_displacement_route():
    """HF/STO-3G water (~2 s): forces in a field are -dE/dx (nuclear and basis-centre field
    terms), Z* by field equals Z* by displaced dipoles, sum rule, dipole against PySCF's Debye."""
    engine = get_engine("pyscf", xc="HF", basis="sto-3g")
    atoms = molecule("H2O")
    atoms.positions += [0.3, -0.2, 0.5]  # away from the origin: the field terms depend on it
    field = np.array([0.3, -0.2, 0.5])
    forces = engine._evaluate(atoms, field)[0].forces
    np.testing.assert_allclose(forces, energy_gradient(engine, atoms, 1e-4, field), atol=1e-5)
    result = engine.compute(atoms)[0]
    z = result.born_charges
    assert np.abs(z.sum(axis=0)).max() < 1e-8  # no DFT grid: exact translation invariance
    assert np.abs(z - dipole_derivatives(engine, atoms, 2e-3)).max() < 1e-4
    # the same SCF, dipole in Debye from PySCF's own constants
    mol = engine._molecule(atoms)
    mf = engine._scf(mol).run()
    debye = mf.dip_moment(unit="Debye", verbose=0)
    np.testing.assert_allclose(result.dipole / Debye, debye, atol=1e-4)
    assert result.energy == pytest.approx(mf.e_tot * Hartree, abs=1e-6)
    assert Bohr == pytest.approx(0.529177, abs=1e-6)


@pytest.mark.filterwarnings("ignore:Basis may be available")
def test_pyscf_refuses_periodic_structures_and_bad_options():
    atoms = molecule("H2O", vacuum=5.0)
    atoms.pbc = True
    engine = get_engine("pyscf", xc="HF", basis="sto-3g")
    with pytest.raises(InputError, match=PERIODIC_MESSAGE):
        engine.compute(atoms)
    with pytest.raises(InputError, match="functional"):
        get_engine("pyscf", xc="NOT-A-FUNCTIONAL")
    with pytest.raises(InputError, match="basis"):
        get_engine("pyscf", basis="no-such-basis").compute(molecule("H2O"))


@pytest.mark.slow
def test_pyscf_b3lyp_water_field_route_equals_displacement_route():
    engine = get_engine("pyscf")  # B3LYP/def2-SVP
    atoms = molecule("H2O")
    z = engine.compute(atoms)[0].born_charges
    # measured: 4e-5 e; the DFT grid breaks translation invariance at ~1e-6 e
    assert np.abs(z - dipole_derivatives(engine, atoms, 2e-3)).max() < 1e-4
    assert np.abs(z.sum(axis=0)).max() < 1e-4


@pytest.mark.slow
def test_pyscf_b3lyp_water_dimer_born_charges(capsys):
    engine = get_engine("pyscf")
    atoms = water_dimer()
    t0 = time.perf_counter()
    result = engine.compute(atoms)[0]
    elapsed = time.perf_counter() - t0
    with capsys.disabled():
        print(f"\n[pyscf B3LYP/def2-SVP water dimer] {elapsed:.1f} s per point + Z*")
    z = result.born_charges
    assert np.abs(z.sum(axis=0)).max() < 1e-4
    # same physics as GFN2-xTB: similar charges (mean diagonal within 0.25 e per atom)
    z_xtb = get_engine("tblite").compute(atoms)[0].born_charges
    traces = np.trace(z, axis1=1, axis2=2) / 3
    assert np.abs(traces - np.trace(z_xtb, axis1=1, axis2=2) / 3).max() < 0.25


@pytest.mark.slow
def test_label_cli_with_pyscf(tmp_path):
    path = tmp_path / "one.extxyz"
    data.save(path, [water_dimer()])
    out = tmp_path / "out.extxyz"
    assert main(["label", str(path), "-o", str(out), "--engine", "pyscf", "--xc", "PBE",
                 "--basis", "def2-SVP", "--no-progress"]) == 0
    frames = data.load(out)
    assert frames[0].info["engine"] == "pyscf PBE/def2-SVP"
    assert data.validate(frames, asr_tolerance=1e-4) == []


def test_sample_a_crystal_with_an_ase_calculator(tmp_path, capsys):
    """Bulk sampling: a periodic Cu cell, EMT forces, constant 300 K; frames keep the cell."""
    import ase.io
    from ase.build import bulk

    start = tmp_path / "cu.extxyz"
    ase.io.write(start, bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 2, 2))
    out = tmp_path / "md.extxyz"
    assert main(["sample", str(start), "-o", str(out), "--calculator", "ase:ase.calculators.emt:EMT",
                 "--temperature", "300", "--steps", "40", "--every", "10", "--timestep-fs", "2",
                 "--seed", "3", "--no-progress"]) == 0
    frames = data.load(out)
    assert len(frames) == 5 and all(f.pbc.all() for f in frames)
    assert np.allclose(frames[-1].cell.array, frames[0].cell.array)
    assert {f.info["target_temperature_K"] for f in frames} == {300.0}
    assert np.abs(frames[-1].positions - frames[0].positions).max() > 0.01  # it moved
    assert "300 -> 300 K, ase:ase.calculators.emt:EMT" in capsys.readouterr().out
    assert main(["sample", str(start), "-o", str(out), "--overwrite", "--steps", "1",
                 "--calculator", "emt"]) == 2
    assert "expected ase:MODULE:CLASS" in capsys.readouterr().err
