"""Force back-ends of the i-PI driver against the codes' own numbers.

LAMMPS: the driver's forces, energy and virial equal LAMMPS's own ``run 0`` for the same
configuration, for a triclinic cell handed over in a general orientation (i-PI's cell as a
non-symmetric matrix of column vectors, in bohr), after an NPT-like cell change, and for a
q-TIP4P/F water box built by its own data file. ASE: the same checks against the
calculator called directly.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.geometry import cellpar_to_cell

from ipi_dipole.ipi_io import units
from ipi_dipole.driver.pes import DipolePES
from ipi_dipole.errors import InputError

PROJECT = Path(__file__).resolve().parents[1]
NACL_FF = PROJECT / "inputs" / "nacl" / "forcefield.lammps"
WATER_DIR = PROJECT / "inputs" / "liquid-water"


def rotation(seed=3):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def to_ipi(cell_rows_A, positions_A):
    """i-PI's view: cell with lattice vectors as columns, everything in bohr."""
    return cell_rows_A.T * units.BOHR_PER_ANGSTROM, positions_A * units.BOHR_PER_ANGSTROM


def from_ipi(result):
    pot, force, vir, extras = result
    return (pot / units.HARTREE_PER_EV, force / units.FORCE_AU_PER_EV_ANGSTROM,
            vir.T / units.HARTREE_PER_EV, extras)


def lammps_reference(commands_before_box, box_rows, types, positions, body, cwd):
    """LAMMPS's own energy (eV), forces (eV/A) and virial (eV) for a lower-triangular box."""
    from mpi4py import MPI  # noqa: F401
    import lammps
    from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR, LMP_TYPE_VECTOR

    lmp = lammps.lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"], comm=MPI.COMM_SELF)
    L = box_rows
    assert abs(L[0, 1]) + abs(L[0, 2]) + abs(L[1, 2]) < 1e-12, "reference box must be lower-triangular"
    lmp.commands_list(commands_before_box + [
        f"region b prism 0 {L[0, 0]} 0 {L[1, 1]} 0 {L[2, 2]} {L[1, 0]} {L[2, 0]} {L[2, 1]}",
        f"create_box {max(types)} b"])
    lmp.create_atoms(len(types), list(range(1, len(types) + 1)), list(types), positions.reshape(-1).tolist())
    old = os.getcwd()
    os.chdir(cwd)
    try:
        lmp.commands_list(body + ["compute v all pressure NULL virial", "compute e all pe",
                                  "thermo_style custom step c_e c_v[*]", "run 0"])
    finally:
        os.chdir(old)
    n = len(types)
    ids = lmp.numpy.extract_atom("id")[:n]
    f = np.empty((n, 3))
    f[ids - 1] = lmp.numpy.extract_atom("f")[:n]
    e = lmp.numpy.extract_compute("e", LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR)
    p = lmp.numpy.extract_compute("v", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR)
    w = np.array([[p[0], p[3], p[4]], [p[3], p[1], p[5]], [p[4], p[5], p[2]]])
    w *= abs(np.linalg.det(L)) / lmp.extract_global("nktv2p")
    lmp.close()
    return float(e), f, w


def nacl_primitive_supercell(a=5.64, reps=3, rattle=0.1, seed=1):
    """Rock salt in its primitive (rhombohedral, 60 degree) cell, repeated: a triclinic box."""
    L = cellpar_to_cell([a / np.sqrt(2)] * 3 + [60.0] * 3) * reps
    grid = np.array([(i, j, k) for i in range(reps) for j in range(reps) for k in range(reps)], float)
    frac = np.concatenate([[g, g + 0.5] for g in grid]) / reps
    symbols = ["Na", "Cl"] * len(grid)
    pos = frac @ L + np.random.default_rng(seed).normal(scale=rattle, size=frac.shape)
    return symbols, L, pos


NACL_HEADER = ["units metal", "atom_style charge", "atom_modify map array", "boundary p p p"]
NACL_BODY = [line for line in NACL_FF.read_text().splitlines()
             if not line.startswith(("units", "atom_style"))] + ["mass 1 22.99", "mass 2 35.45"]


def test_lammps_species_style_triclinic_rotated_and_npt():
    symbols, L, pos = nacl_primitive_supercell()
    types = [1 if s == "Na" else 2 for s in symbols]
    R = rotation()
    pes = DipolePES(forces=f"lammps:{NACL_FF}", species=" ".join(symbols))
    try:
        for step, (strain, shift) in enumerate([(0.0, 0.0), (0.02, 0.0), (0.02, 0.05)]):
            # an NPT-like sequence: new cell, then new positions in the same cell
            Ls = L @ (np.eye(3) + strain * np.array([[1, 0.3, 0], [0, -0.5, 0.2], [0.1, 0, 1]])).T
            Ls = cellpar_to_cell(Atoms(cell=Ls).cell.cellpar())  # back to lower-triangular
            frac = np.linalg.solve(L.T, pos.T).T
            p = frac @ Ls + shift * np.sin(np.arange(pos.size).reshape(pos.shape))
            e_ref, f_ref, w_ref = lammps_reference(NACL_HEADER, Ls, types, p, NACL_BODY, NACL_FF.parent)
            # the driver sees the rotated system, some atoms moved by lattice vectors
            images = np.random.default_rng(step).integers(-1, 2, size=(len(p), 3))
            cell_rot, pos_rot = Ls @ R.T, (p + images @ Ls) @ R.T
            assert np.abs(cell_rot - cell_rot.T).max() > 1.0  # a non-symmetric cell matrix
            e, f, w, extras = from_ipi(pes(*to_ipi(cell_rot, pos_rot)))
            assert extras == ""
            assert e == pytest.approx(e_ref, abs=1e-8 * abs(e_ref))
            np.testing.assert_allclose(f, f_ref @ R.T, atol=1e-7)
            np.testing.assert_allclose(w, R @ w_ref @ R.T, atol=1e-6 * np.abs(w_ref).max())
    finally:
        pes.close()


def test_lammps_file_style_water_matches_run0(tmp_path, monkeypatch):
    subprocess.run([sys.executable, str(WATER_DIR / "make_water_box.py"), "--molecules", "32",
                    "--no-minimize", "--seed", "4", "-o", str(tmp_path)], check=True, capture_output=True)
    (tmp_path / "in.lammps").write_text((WATER_DIR / "in.lammps").read_text())
    import ase.io

    atoms = ase.io.read(tmp_path / "init.xyz")
    lines = (tmp_path / "init.xyz").read_text().splitlines()
    length = float(lines[1].split()[2])
    cell = np.eye(3) * length
    # LAMMPS's own numbers, from the same input file
    from mpi4py import MPI  # noqa: F401
    import lammps

    lmp = lammps.lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"], comm=MPI.COMM_SELF)
    monkeypatch.chdir(tmp_path)
    lmp.file("in.lammps")
    lmp.commands_string("compute e all pe\nthermo_style custom step c_e\nrun 0")
    n = len(atoms)
    f_ref = np.empty((n, 3))
    f_ref[lmp.numpy.extract_atom("id")[:n] - 1] = lmp.numpy.extract_atom("f")[:n]
    from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR

    e_ref = lmp.numpy.extract_compute("e", LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR)
    lmp.close()
    from ase.units import kcal, mol

    pes = DipolePES(forces=f"lammps:{tmp_path / 'in.lammps'}", structure=str(tmp_path / "init.xyz"))
    try:
        # i-PI does not wrap (ffsocket pbc='false'): shift whole molecules by a lattice vector
        pos = atoms.positions + np.repeat([[length, 0, -length]], n, axis=0) * (np.arange(n) // 3 % 2)[:, None]
        e, f, w, _ = from_ipi(pes(*to_ipi(cell, pos)))
        np.testing.assert_allclose(f, f_ref * kcal / mol, atol=1e-7)
        assert e == pytest.approx(e_ref * kcal / mol, rel=1e-9)
        assert np.trace(w) != 0.0
        # later requests skip LAMMPS's set-up: a small move, then moves past half the
        # neighbour skin (1 A in in.lammps) that force a re-neighbouring
        for amplitude in (0.01, 1.2, 0.02):
            moved = pos + amplitude * np.cos(np.arange(pos.size)).reshape(pos.shape)
            e, f, _, _ = from_ipi(pes(*to_ipi(cell, moved)))
            e_ref, f_ref = water_reference(tmp_path, moved)
            np.testing.assert_allclose(f, f_ref, atol=1e-9 * np.abs(f_ref).max() + 1e-7)
            assert e == pytest.approx(e_ref, rel=1e-9)
    finally:
        pes.close()


def water_reference(directory, positions):
    """LAMMPS's run 0 (eV, eV/A) for in.lammps of ``directory`` with new positions."""
    from mpi4py import MPI  # noqa: F401
    import lammps
    from ase.units import kcal, mol
    from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR

    lmp = lammps.lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"], comm=MPI.COMM_SELF)
    old = os.getcwd()
    os.chdir(directory)
    try:
        lmp.file("in.lammps")
    finally:
        os.chdir(old)
    n = len(positions)
    import ctypes

    from ase.geometry import wrap_positions

    box = np.diag(np.array(lmp.extract_box()[1]) - np.array(lmp.extract_box()[0]))
    positions = wrap_positions(positions, box, pbc=True)

    lmp.scatter_atoms("x", 1, 3, (ctypes.c_double * (3 * n))(*positions.reshape(-1)))
    lmp.commands_string("compute e all pe\nthermo_style custom step c_e\nrun 0")
    f = np.empty((n, 3))
    f[lmp.numpy.extract_atom("id")[:n] - 1] = lmp.numpy.extract_atom("f")[:n]
    e = lmp.numpy.extract_compute("e", LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR)
    lmp.close()
    return e * kcal / mol, f * kcal / mol


def test_ase_backend_cell_and_virial_conventions():
    from ase.build import bulk
    from ase.calculators.emt import EMT

    atoms = bulk("Cu", "fcc", a=3.6).repeat((2, 2, 2))
    atoms.set_cell(atoms.cell @ (np.eye(3) + 0.03 * np.array([[0, 1, 0], [0, 0, 0], [0.5, 0, 0.2]])),
                   scale_atoms=True)
    atoms.rattle(0.05, seed=2)
    atoms.calc = EMT()
    e_ref, f_ref = atoms.get_potential_energy(), atoms.get_forces()
    w_ref = -atoms.get_stress(voigt=False) * atoms.get_volume()
    pes = DipolePES(forces="ase:ase.calculators.emt:EMT", species=f"Cu{len(atoms)}")
    e, f, w, _ = from_ipi(pes(*to_ipi(np.array(atoms.cell), atoms.positions)))
    assert e == pytest.approx(e_ref, rel=1e-10)
    np.testing.assert_allclose(f, f_ref, atol=1e-10)
    np.testing.assert_allclose(w, w_ref, atol=1e-8)


def test_unit_factors_agree_with_ase():
    from ase.units import Bohr, Hartree

    # i-PI's constants carry 8 significant digits
    assert units.BOHR_PER_ANGSTROM == pytest.approx(1 / Bohr, rel=2e-7)
    assert units.HARTREE_PER_EV == pytest.approx(1 / Hartree, rel=2e-7)
    assert units.FORCE_AU_PER_EV_ANGSTROM == pytest.approx(Bohr / Hartree, rel=2e-7)
    # i-PI reads its own factors back: our numbers and i-PI's conversions agree exactly
    from ipi.utils.units import unit_to_internal, unit_to_user

    assert units.energy_to_ipi(2.5) == unit_to_internal("energy", "electronvolt", 2.5)
    np.testing.assert_allclose(units.positions_from_ipi(np.ones((1, 3))),
                               unit_to_user("length", "angstrom", np.ones((1, 3))), rtol=1e-15)
    assert units.dipole_to_ipi([1.0, 0, 0])[0] == pytest.approx(1 / Bohr, rel=1e-7)


def test_cell_rows_and_columns():
    cell_rows = np.array([[5.0, 0.0, 0.0], [1.0, 6.0, 0.0], [0.5, -0.7, 7.0]])
    ipi_cell = cell_rows.T * units.BOHR_PER_ANGSTROM   # i-PI: h[:, k] is lattice vector k
    np.testing.assert_allclose(units.cell_from_ipi(ipi_cell), cell_rows, rtol=1e-15)


def test_bec_layout_non_symmetric():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4, 3, 3))      # Z[i, a, b] = dM_a / dx_ib, not symmetric
    bec = np.array(units.bec_to_ipi(z))
    assert bec.shape == (12, 3)
    for i in range(4):
        for a in range(3):
            for b in range(3):
                assert bec[3 * i + b, a] == z[i, a, b]   # row 3i+b = d/dx_ib, column = M_a
    np.testing.assert_array_equal(units.bec_from_ipi(bec), z)


def test_extras_json_is_what_json_would_send():
    import json

    from ipi_dipole.driver.pes import encode_extras
    from ipi_dipole.errors import InputError

    z = np.random.default_rng(1).normal(size=(5, 3, 3)) * 10.0 ** np.arange(-4, 5).reshape(1, 3, 3)
    dipole = [0.1, -2.5e-7, 3.0]
    got = json.loads(encode_extras(dipole, units.bec_to_ipi_array(z), 0))
    assert got["dipole"] == dipole
    np.testing.assert_allclose(got["BEC"], units.bec_to_ipi(z), rtol=1e-12, atol=0)
    assert json.loads(encode_extras(dipole, None, 0)) == {"dipole": dipole}
    z[2, 1, 0] = np.nan
    with pytest.raises(InputError, match="non-finite .* force request 7"):
        encode_extras(dipole, units.bec_to_ipi_array(z), 7)


def test_backend_spec_errors(tmp_path):
    from ipi_dipole.driver.backends import make_backend

    with pytest.raises(InputError, match="unknown back-end"):
        make_backend("gromacs:x")
    with pytest.raises(InputError, match="no such LAMMPS input"):
        make_backend(f"lammps:{tmp_path / 'missing.in'}")
    with pytest.raises(InputError, match="cannot import"):
        make_backend("ase:no_such_module_xyz:Calc")
    with pytest.raises(InputError, match="bad JSON"):
        make_backend('ase:ase.calculators.emt:EMT:{"a":')
    bare = tmp_path / "bare.lammps"
    bare.write_text("pair_style lj/cut 3.0\n")
    with pytest.raises(InputError, match="# species"):
        make_backend(f"lammps:{bare}")
    with pytest.raises(InputError, match="missing from the '# species: Na Cl' line"):
        DipolePES(forces=f"lammps:{NACL_FF}", species="Na Cl K")


def test_lammps_species_style_molecule_matches_forcefield_calculator(tmp_path):
    """A POD force field from ``ipi-dipole train-forcefield`` (its forcefield.lammps snippet),
    for a molecule (pbc false: shrink-wrapped LAMMPS box), against the trainer's own
    LAMMPS calculator."""
    from ipi_dipole.engines.tblite_engine import TBLiteEngine
    from ipi_dipole.forcefield import ForceFieldCalculator, train
    from ipi_dipole.structures import water_dimer

    rng = np.random.default_rng(5)
    engine = TBLiteEngine()
    frames = []
    for _ in range(30):
        atoms = water_dimer()
        atoms.positions += rng.normal(scale=0.06, size=atoms.positions.shape)
        frames.append(engine.label(atoms))
    ff_dir = tmp_path / "ff"
    train(frames, ff_dir, check_runs=0)
    symbols = water_dimer().get_chemical_symbols()
    pes = DipolePES(forces=f"lammps:{ff_dir / 'forcefield.lammps'}", species=" ".join(symbols), pbc="false")
    box = np.eye(3) * 20.0  # i-PI's (ignored) box for a molecule
    try:
        for k in range(3):
            atoms = water_dimer()
            atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
            atoms.positions = atoms.positions @ rotation(k).T + [30.0 * k, -7.0, 55.0]
            e, f, w, _ = from_ipi(pes(*to_ipi(box, atoms.positions)))
            atoms.calc = ForceFieldCalculator(ff_dir)
            assert e == pytest.approx(atoms.get_potential_energy(), abs=1e-8)
            np.testing.assert_allclose(f, atoms.get_forces(), atol=1e-8)
            assert not w.any()
    finally:
        pes.close()
