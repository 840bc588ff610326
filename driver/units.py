"""Conversions between i-PI's atomic units and ASE's units, at the driver's boundary.

i-PI sends the cell as a 3x3 matrix whose COLUMNS are the lattice vectors and the
positions as an (N, 3) array, both in bohr; it expects the energy in hartree, the forces
in hartree/bohr, the virial in hartree, and reads extras as they come. Everything inside
ipi-dipole works in Angstrom, eV and e (ASE's conventions).

The factors are i-PI's own (:mod:`ipi.utils.units`), so that a number written by i-PI in
Angstrom and a number we convert agree to the last digit. The force and virial factors are
derived from the energy and length factors, so that ``F = -dE/dx`` holds exactly after
conversion (i-PI's separately rounded ``ev/ang`` entry differs in the 8th digit).
"""

from __future__ import annotations

import numpy as np
from ipi.utils.units import unit_to_internal

#: bohr per Angstrom
BOHR_PER_ANGSTROM = float(unit_to_internal("length", "angstrom", 1.0))
#: hartree per eV
HARTREE_PER_EV = float(unit_to_internal("energy", "electronvolt", 1.0))
#: (hartree/bohr) per (eV/Angstrom)
FORCE_AU_PER_EV_ANGSTROM = HARTREE_PER_EV / BOHR_PER_ANGSTROM


def cell_from_ipi(cell: np.ndarray) -> np.ndarray:
    """ASE cell (lattice vectors as ROWS, Angstrom) from i-PI's cell (columns, bohr)."""
    return np.asarray(cell, dtype=float).reshape(3, 3).T / BOHR_PER_ANGSTROM


def positions_from_ipi(pos: np.ndarray) -> np.ndarray:
    """Positions (N, 3) in Angstrom from i-PI's positions in bohr."""
    return np.asarray(pos, dtype=float).reshape(-1, 3) / BOHR_PER_ANGSTROM


def energy_to_ipi(energy: float) -> float:
    """Energy in hartree from eV."""
    return float(energy) * HARTREE_PER_EV


def forces_to_ipi(forces: np.ndarray) -> np.ndarray:
    """Forces (N, 3) in hartree/bohr from eV/Angstrom."""
    return np.ascontiguousarray(forces, dtype=np.float64).reshape(-1, 3) * FORCE_AU_PER_EV_ANGSTROM


def virial_to_ipi(virial: np.ndarray) -> np.ndarray:
    """i-PI's virial (3, 3) in hartree from the virial ``W_ab = sum_i x_ia F_ib`` in eV.

    The transpose follows i-PI's own ASE driver (``ipi/pes/_ase.py``); the virial of a
    rotationally invariant potential is symmetric, so it only matters for round-off.
    """
    return np.ascontiguousarray(np.asarray(virial, dtype=float).reshape(3, 3).T * HARTREE_PER_EV)


def virial_from_stress(stress: np.ndarray, volume: float) -> np.ndarray:
    """Virial (3, 3) in eV from an ASE stress (eV/Angstrom^3, Voigt 6 or 3x3) and volume (A^3).

    ASE's stress is ``-W / V`` for a static configuration.
    """
    s = np.asarray(stress, dtype=float)
    if s.shape == (6,):
        s = s[[0, 5, 4, 5, 1, 3, 4, 3, 2]].reshape(3, 3)
    return -s.reshape(3, 3) * volume


def dipole_to_ipi(dipole: np.ndarray) -> list[float]:
    """Dipole in e*bohr (3 numbers) from e*Angstrom."""
    return (np.asarray(dipole, dtype=float).reshape(3) * BOHR_PER_ANGSTROM).tolist()


def bec_to_ipi(born_charges: np.ndarray) -> list[list[float]]:
    """i-PI's ``BEC`` extra, shape (3N, 3) in e, from ``Z[i, a, b] = dM_a / dx_ib`` (N, 3, 3).

    Row ``3 i + b`` holds the derivative with respect to ``x_ib``; column ``a`` is the dipole
    component, i.e. ``Z.transpose(0, 2, 1).reshape(3N, 3)``. Born charges are in e in both
    unit systems, so only the layout changes.
    """
    z = np.asarray(born_charges, dtype=float)
    return z.transpose(0, 2, 1).reshape(-1, 3).tolist()


def bec_from_ipi(bec: np.ndarray) -> np.ndarray:
    """``Z[i, a, b] = dM_a / dx_ib`` (N, 3, 3) from i-PI's ``BEC`` (3N, 3): the inverse of :func:`bec_to_ipi`."""
    b = np.asarray(bec, dtype=float).reshape(-1, 3, 3)
    return b.transpose(0, 2, 1).copy()
