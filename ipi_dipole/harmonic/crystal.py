"""Gamma-point modes of a crystal through phonopy: symmetry-reduced displacements of a
supercell, forces from the back-end, force constants, the non-analytic correction (NAC).

The force constants give the analytic (TO) dynamical matrix at Gamma, which is what a
periodic force field with Ewald sums (conducting, "tin-foil" boundary conditions) implies,
and what the Green-Kubo spectrum of the cell dipole sees: absorption at the TO modes. The LO
modes along a wave-vector direction ``q`` come from phonopy's NAC with the Born charges and
the electronic dielectric tensor ``eps_inf``, ``D_NA ~ (q.Z*)(q.Z*) / (eps0 V q.eps_inf.q)``.

Every displaced supercell's forces are saved in ``WORKDIR/phonopy_forces/`` as they are
computed, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np
from ase.units import Bohr, Hartree

from ..errors import InputError
from .modes import NormalModes, wavenumber_from_eigenvalue
from .symmetry import gamma_symmetry

#: e^2 / (4 pi eps0) in eV*Angstrom: phonopy's NAC unit factor for eV, Angstrom, amu
NAC_FACTOR = Hartree * Bohr
#: eigenvalue given to the acoustic (uniform translation) modes so that they sort last
ACOUSTIC_SHIFT = 1e6


def make_phonopy(atoms, supercell, symprec: float = 1e-5):
    """A :class:`phonopy.Phonopy` of the unit cell ``atoms`` (ASE masses), primitive cell found by phonopy.

    Parameters
    ----------
    atoms : ase.Atoms
        Unit cell (Angstrom), periodic.
    supercell : sequence of 3 int or (3, 3) int array
        Supercell of the unit cell used for the displacements.
    symprec : float
        Symmetry tolerance, Angstrom.
    """
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    matrix = np.asarray(supercell, dtype=int)
    if matrix.shape == (3,):
        matrix = np.diag(matrix)
    if matrix.shape != (3, 3) or abs(np.linalg.det(matrix)) < 1:
        raise InputError(f"--supercell: expected 3 positive integers, got {supercell}")
    unit = PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=atoms.cell.array,
                        scaled_positions=atoms.get_scaled_positions(), masses=atoms.get_masses())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Phonopy(unit, supercell_matrix=matrix, primitive_matrix="auto", symprec=symprec)


def _ase_atoms(cell):
    from ase import Atoms

    return Atoms(cell.symbols, cell=cell.cell, scaled_positions=cell.scaled_positions, pbc=True)


def compute_force_constants(phonon, calc, workdir, distance: float = 0.01, log=print) -> int:
    """Displacements, back-end forces (cached), force constants (symmetrised, acoustic sum rule).

    Parameters
    ----------
    phonon : phonopy.Phonopy
    calc : ase calculator
        Energy and forces of the supercells (eV/Angstrom).
    workdir : path
        Where the forces of each displaced supercell are cached.
    distance : float
        Displacement in Angstrom.

    Returns
    -------
    int
        Number of displaced supercells.
    """
    phonon.generate_displacements(distance=distance)
    cache = Path(workdir) / "phonopy_forces"
    cache.mkdir(parents=True, exist_ok=True)
    supercells = phonon.supercells_with_displacements
    forces = []
    for k, cell in enumerate(supercells):
        path = cache / f"forces-{k:04d}.npy"
        atoms = _ase_atoms(cell)
        if path.is_file():
            saved = np.load(path)
            if saved.shape == (len(atoms), 3):
                forces.append(saved)
                continue
        atoms.calc = calc
        f = atoms.get_forces()
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, f)
        os.replace(tmp, path)   # a kill leaves either the whole file or none
        forces.append(f)
        log(f"  displacement {k + 1}/{len(supercells)}: |F|max {np.abs(f).max():.4g} eV/A")
    # forces of the undisplaced supercell (zero by symmetry at a minimum) are not subtracted
    phonon.forces = np.array(forces)
    phonon.produce_force_constants()
    phonon.symmetrize_force_constants()
    return len(supercells)


def _gamma_matrix(phonon, q_direction=None) -> np.ndarray:
    dm = phonon.dynamical_matrix
    if q_direction is None:
        dm.run([0.0, 0.0, 0.0])
    else:
        dm.run([0.0, 0.0, 0.0], q_direction=q_direction)
    d = np.asarray(dm.dynamical_matrix)
    return 0.5 * (d + d.conj().T).real   # real symmetric at Gamma


def _acoustic_basis(masses) -> np.ndarray:
    sqm = np.repeat(np.sqrt(np.asarray(masses, dtype=float)), 3).reshape(-1, 3)
    b = np.zeros((3, sqm.size))
    for a in range(3):
        t = np.zeros_like(sqm)
        t[:, a] = sqm[:, a]
        b[a] = t.ravel() / np.linalg.norm(t)
    return b.T


def _optical_modes(d, masses):
    b = _acoustic_basis(masses)
    p = np.eye(len(d)) - b @ b.T
    lam, vec = np.linalg.eigh(p @ d @ p + ACOUSTIC_SHIFT * (b @ b.T))
    k = len(d) - 3
    return wavenumber_from_eigenvalue(lam[:k]), vec[:, :k].T.reshape(k, -1, 3)


def cartesian_to_reduced_q(phonon, q_cart) -> np.ndarray:
    """A Cartesian direction as fractional coordinates of the primitive reciprocal basis."""
    return np.asarray(q_cart, dtype=float) @ phonon.primitive.cell.T


def gamma_modes(phonon, born_primitive=None, eps_inf=None, q_direction=(1.0, 0.0, 0.0)) -> NormalModes:
    """Optical modes at Gamma of the primitive cell; LO modes along ``q_direction`` when
    Born charges and ``eps_inf`` are given.

    Parameters
    ----------
    phonon : phonopy.Phonopy
        With force constants.
    born_primitive : array (n, 3, 3), optional
        ``Z*`` of the primitive cell's atoms (e).
    eps_inf : array (3, 3), optional
        Electronic dielectric tensor.
    q_direction : array (3,)
        Cartesian direction of the LO wave vector.
    """
    prim = phonon.primitive
    masses = np.asarray(prim.masses, dtype=float)
    phonon.nac_params = None
    wavenumber, vectors = _optical_modes(_gamma_matrix(phonon), masses)
    sym = gamma_symmetry(phonon)
    if sym is None:
        labels, active, group = [None] * len(wavenumber), np.ones(len(wavenumber), dtype=bool), None
    else:
        (labels, active), group = sym.assign(wavenumber), sym.point_group
    modes = NormalModes(symbols=list(prim.symbols), masses_amu=masses, positions=np.array(prim.positions),
                        cell=np.array(prim.cell), wavenumber_cm1=wavenumber, eigenvectors=vectors,
                        irreps=labels, ir_active=active, point_group=group, kind="crystal",
                        volume_a3=float(abs(np.linalg.det(prim.cell))),
                        info={"supercell_matrix": np.asarray(phonon.supercell_matrix).tolist(),
                              "primitive_atoms": len(masses)})
    if born_primitive is not None and eps_inf is not None:
        q = np.asarray(q_direction, dtype=float)
        q = q / np.linalg.norm(q)
        phonon.nac_params = {"born": np.asarray(born_primitive, dtype=float),
                             "dielectric": np.asarray(eps_inf, dtype=float), "factor": NAC_FACTOR}
        q_red = cartesian_to_reduced_q(phonon, q)
        lo, _ = _optical_modes(_gamma_matrix(phonon, q_red), masses)
        sym_lo = gamma_symmetry(phonon, nac_q_direction=q_red)
        lo_labels = sym_lo.assign(lo)[0] if sym_lo is not None else [None] * len(lo)
        modes.nac = {"q_direction": q, "wavenumber_cm1": lo, "irreps": lo_labels,
                     "eps_inf": np.asarray(eps_inf, dtype=float)}
        phonon.nac_params = None
    return modes


def warn(message: str) -> None:
    print(f"ipi-dipole harmonic: warning: {message}", file=sys.stderr)
