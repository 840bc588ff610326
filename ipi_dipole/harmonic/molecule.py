"""Normal modes of a molecule: Hessian by central differences of forces, rigid-body motions
projected out, irreps from the molecule's point group.

The Hessian comes from :class:`ase.vibrations.Vibrations` (every displaced force is
cached in ``WORKDIR/vib``, so an interrupted run resumes). It is symmetrised
(``(H + H^T)/2``, then over the point group by phonopy, which leaves numerical noise out of
the irreps), and the three translations and three (two for a linear molecule) rotations
are projected out of the mass-weighted Hessian in the Eckart frame of the minimised
structure.

For the symmetry the molecule is put in its principal-axes frame inside a large
orthorhombic box, where phonopy (spglib) finds its site symmetry. That is the full point
group for molecules whose principal moments differ (asymmetric tops such as the water
dimer, Cs); for symmetric tops it is the subgroup that keeps the principal axes, and the
labels refer to that subgroup (:attr:`NormalModes.point_group` says which).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .modes import NormalModes, wavenumber_from_eigenvalue
from .symmetry import gamma_symmetry

#: vacuum (Angstrom) around the molecule in the box used only to find its symmetry
SYMMETRY_BOX_MARGIN = 10.0
#: eigenvalue given to rigid-body motions so that they sort above every vibration
RIGID_BODY_SHIFT = 1e6


def molecular_hessian(atoms, workdir, delta: float = 0.005) -> np.ndarray:
    """Hessian (3N, 3N) in eV/Angstrom^2 by central differences of ``atoms.calc``'s forces.

    Parameters
    ----------
    atoms : ase.Atoms
        The minimised molecule, with its calculator.
    workdir : path
        Where :class:`ase.vibrations.Vibrations` keeps its cache (``vib/``).
    delta : float
        Displacement in Angstrom.
    """
    from ase.vibrations import Vibrations

    vib = Vibrations(atoms, name=str(Path(workdir) / "vib"), delta=delta, nfree=2)
    vib.run()
    hessian = vib.get_vibrations().get_hessian_2d()
    return 0.5 * (hessian + hessian.T)


def rigid_body_basis(positions, masses_amu) -> np.ndarray:
    """Orthonormal mass-weighted translations and rotations (3N, r), r = 6 (5 if linear, 3 for an atom)."""
    x = np.asarray(positions, dtype=float)
    m = np.asarray(masses_amu, dtype=float)
    sqm = np.sqrt(m)
    x = x - (m[:, None] * x).sum(axis=0) / m.sum()
    vectors = []
    for a in range(3):
        t = np.zeros_like(x)
        t[:, a] = sqm
        vectors.append(t.ravel())
        axis = np.zeros(3)
        axis[a] = 1.0
        vectors.append((np.cross(axis, x) * sqm[:, None]).ravel())
    u, s, _ = np.linalg.svd(np.array(vectors).T, full_matrices=False)
    return u[:, s > 1e-6 * s.max()]


def projected_dynamical_matrix(hessian, positions, masses_amu) -> tuple[np.ndarray, int]:
    """Mass-weighted Hessian with rigid-body motions moved to :data:`RIGID_BODY_SHIFT`.

    Returns the matrix (3N, 3N, eV/(Angstrom^2 amu)) and the number of rigid-body motions.
    """
    m3 = np.repeat(np.asarray(masses_amu, dtype=float), 3)
    d = hessian / np.sqrt(np.outer(m3, m3))
    b = rigid_body_basis(positions, masses_amu)
    p = np.eye(len(d)) - b @ b.T
    return p @ d @ p + RIGID_BODY_SHIFT * (b @ b.T), b.shape[1]


def _principal_frame(atoms):
    """Rotation (columns = principal axes) and the molecule as a phonopy cell in a box."""
    from phonopy.structure.atoms import PhonopyAtoms

    m = atoms.get_masses()
    x = atoms.positions - atoms.get_center_of_mass()
    inertia = np.einsum("i,ij,ik->jk", m, x, x)
    _, rot = np.linalg.eigh(np.trace(inertia) * np.eye(3) - inertia)
    xp = x @ rot
    # unequal edges: the box's own symmetry must not add operations the molecule lacks
    box = np.ptp(xp, axis=0) + SYMMETRY_BOX_MARGIN + np.array([0.0, 0.37, 0.71])
    cell = PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=np.diag(box),
                        positions=xp + box / 2, masses=m)
    return rot, cell


def _rotate_blocks(fc, rot):
    """Force constants (N, N, 3, 3) in the frame whose axes are the columns of ``rot``."""
    return np.einsum("ab,ijac,cd->ijbd", rot, fc, rot)


def molecular_modes(atoms, hessian, symprec: float = 1e-3) -> NormalModes:
    """Vibrations of a molecule from its Hessian (3N, 3N, eV/Angstrom^2).

    Parameters
    ----------
    atoms : ase.Atoms
        The minimised molecule (positions in Angstrom, ASE masses in amu).
    hessian : array (3N, 3N)
    symprec : float
        Distance tolerance (Angstrom) of the symmetry search.
    """
    from phonopy import Phonopy

    n = len(atoms)
    masses = atoms.get_masses()
    rot, cell = _principal_frame(atoms)
    phonon = Phonopy(cell, supercell_matrix=np.eye(3, dtype=int), primitive_matrix="P", symprec=symprec)
    fc = _rotate_blocks(hessian.reshape(n, 3, n, 3).transpose(0, 2, 1, 3), rot)
    phonon.force_constants = fc
    phonon.symmetrize_force_constants_by_space_group()
    fc = _rotate_blocks(phonon.force_constants, rot.T)           # back to the input frame
    hessian = fc.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)
    hessian = 0.5 * (hessian + hessian.T)

    dyn, n_rigid = projected_dynamical_matrix(hessian, atoms.positions, masses)
    lam, vec = np.linalg.eigh(dyn)
    k = 3 * n - n_rigid
    wavenumber = wavenumber_from_eigenvalue(lam[:k])
    eigenvectors = vec[:, :k].T.reshape(k, n, 3)

    # the same projected matrix, in the principal frame, for phonopy's irreps
    m3 = np.repeat(masses, 3)
    fc_proj = (dyn * np.sqrt(np.outer(m3, m3))).reshape(n, 3, n, 3).transpose(0, 2, 1, 3)
    phonon.force_constants = _rotate_blocks(fc_proj, rot)
    sym = gamma_symmetry(phonon)
    if sym is None:
        labels, active, group = [None] * k, np.ones(k, dtype=bool), None
    else:
        labels, active = sym.assign(wavenumber)
        group = sym.point_group
    return NormalModes(symbols=atoms.get_chemical_symbols(), masses_amu=masses,
                       positions=atoms.positions.copy(), cell=None, wavenumber_cm1=wavenumber,
                       eigenvectors=eigenvectors, irreps=labels, ir_active=active,
                       point_group=group, kind="molecule",
                       info={"rigid_body_motions_removed": n_rigid})
