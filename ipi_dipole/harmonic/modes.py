"""Normal modes of a harmonic system and their infrared dipole derivatives.

Conventions (ASE units inside): masses in amu, positions in Angstrom, the mass-weighted
Hessian ``D = M^-1/2 H M^-1/2`` in eV / (Angstrom^2 amu). Its eigenvectors ``e_k`` (rows of
:attr:`NormalModes.eigenvectors`, shape (K, N, 3), orthonormal) define the mass-weighted
normal coordinates ``Q_k = sum_ib sqrt(m_i) e_k[i, b] u_ib`` (sqrt(amu) Angstrom). The
dipole derivative of mode ``k`` is

    dM_a/dQ_k = sum_ib Z*[i, a, b] e_k[i, b] / sqrt(m_i)        (e / sqrt(amu))

with ``Z*[i, a, b] = dM_a/dx_ib`` in e. Its square is the IR intensity; in km/mol
(the unit quantum-chemistry codes print) ``A_k = N_A |dM/dQ_k|^2 / (12 eps0 c^2)``, which is
also the integral over wavenumber of the isotropic ``alpha n`` of one molecule per volume
``V``, times ``N_A V`` (see :mod:`ipi_dipole.analysis.harmonic_spectrum`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import units
from scipy import constants

from ..errors import InputError

#: modes below this |wavenumber| (cm^-1) after the rigid-body projection count as zero
ZERO_MODE_CM1 = 1e-3


def wavenumber_from_eigenvalue(eigenvalues) -> np.ndarray:
    """Wavenumbers (cm^-1) of mass-weighted Hessian eigenvalues in eV/(Angstrom^2 amu).

    Negative eigenvalues (imaginary modes) give negative wavenumbers, ``-sqrt(|lambda|)``.
    """
    from ..analysis.green_kubo import wavenumber

    lam = np.asarray(eigenvalues, dtype=float)
    # sqrt(eV / (A^2 amu)) is ASE's unit of angular frequency, rad per units.fs**-1 fs
    omega_rad_fs = np.sign(lam) * np.sqrt(np.abs(lam)) * units.fs
    return wavenumber(omega_rad_fs)


def dipole_derivatives(born_charges, eigenvectors, masses_amu) -> np.ndarray:
    """``dM_a/dQ_k`` (K, 3) in e/sqrt(amu) from ``Z*`` (N, 3, 3, e) and modes (K, N, 3)."""
    z = np.asarray(born_charges, dtype=float)
    e = np.asarray(eigenvectors)
    m = np.asarray(masses_amu, dtype=float)
    if z.shape != (len(m), 3, 3):
        raise InputError(f"Born charges have shape {z.shape}, expected ({len(m)}, 3, 3)")
    return np.einsum("iab,kib->ka", z, e / np.sqrt(m)[None, :, None])


def intensity_km_per_mol(dmdq) -> np.ndarray:
    """IR intensity ``N_A |dM/dQ|^2 / (12 eps0 c^2)`` in km/mol of ``dmdq`` (..., 3), e/sqrt(amu)."""
    d2 = np.sum(np.abs(np.asarray(dmdq)) ** 2, axis=-1)
    si = d2 * constants.e ** 2 / constants.atomic_mass                    # C^2 / kg
    return constants.N_A * si / (12.0 * constants.epsilon_0 * constants.c ** 2) / 1000.0


@dataclass
class NormalModes:
    """Vibrational modes at Gamma (crystals) or of a molecule (rigid-body motions removed).

    Attributes
    ----------
    symbols : list of str
        Species of the atoms the eigenvectors run over (the primitive cell for crystals).
    masses_amu : array (N,)
    positions : array (N, 3)
        Angstrom, the minimised structure.
    cell : array (3, 3) or None
        Lattice vectors as rows (Angstrom) for crystals.
    wavenumber_cm1 : array (K,)
        Ascending; negative for imaginary modes.
    eigenvectors : array (K, N, 3)
        Mass-weighted, orthonormal, real.
    irreps : list of (str or None)
        Irreducible representation of each mode (None when unknown).
    ir_active : array (K,) of bool
        Whether the irrep transforms like a vector (from the irreps; where the symmetry is
        unknown, whether the mode's dipole derivative is nonzero).
    point_group : str or None
        Hermann-Mauguin symbol of the point group the labels refer to.
    dmdq : array (K, 3) or None
        Dipole derivatives in e/sqrt(amu) (None until Born charges are given).
    kind : {"molecule", "crystal"}
    volume_a3 : float or None
        Volume of the cell the dipole refers to (primitive cell, crystals), Angstrom^3.
    nac : dict or None
        LO modes of crystals: ``q_direction`` (Cartesian unit vector), ``wavenumber_cm1``
        (K,) and ``irreps`` with the non-analytic term along it, ``eps_inf`` (3, 3).
    info : dict
        Provenance (back-end, step sizes, force evaluations, ...).
    """

    symbols: list
    masses_amu: np.ndarray
    positions: np.ndarray
    cell: np.ndarray | None
    wavenumber_cm1: np.ndarray
    eigenvectors: np.ndarray
    irreps: list
    ir_active: np.ndarray
    point_group: str | None = None
    dmdq: np.ndarray | None = None
    kind: str = "molecule"
    volume_a3: float | None = None
    nac: dict | None = None
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.wavenumber_cm1)

    @property
    def imaginary(self) -> np.ndarray:
        """Indices of imaginary modes (negative wavenumbers beyond numerical noise)."""
        return np.flatnonzero(self.wavenumber_cm1 < -ZERO_MODE_CM1)

    def set_born_charges(self, born_charges) -> None:
        """Project ``Z*`` (N, 3, 3, e; atoms of :attr:`symbols`) on the modes."""
        self.dmdq = dipole_derivatives(born_charges, self.eigenvectors, self.masses_amu)
        if self.point_group is None:
            scale = max(float(np.max(np.abs(self.dmdq))), 1e-30)
            self.ir_active = np.linalg.norm(self.dmdq, axis=1) > 1e-6 * scale

    @property
    def intensity_e2_per_amu(self) -> np.ndarray:
        """``|dM/dQ_k|^2`` in e^2/amu."""
        self._need_dmdq()
        return np.sum(self.dmdq ** 2, axis=1)

    @property
    def intensity_km_per_mol(self) -> np.ndarray:
        """IR intensities in km/mol (see the module docstring)."""
        self._need_dmdq()
        return intensity_km_per_mol(self.dmdq)

    def _need_dmdq(self):
        if self.dmdq is None:
            raise InputError("no Born charges projected on the modes yet (set_born_charges)")
