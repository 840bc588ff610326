"""Conversions between i-PI's atomic units and ipi-dipole's (ASE's) units, and i-PI's layouts.

i-PI sends the cell as a 3x3 matrix whose COLUMNS are the lattice vectors and the
positions as an (N, 3) array, both in bohr; it expects the energy in hartree, the forces
in hartree/bohr, the virial in hartree, and reads extras as they come. Its output files
carry a ``{unit}`` tag per quantity (atomic units when absent). Everything inside
ipi-dipole works in Angstrom, eV, e and fs (ASE's conventions); this module is the only
place the two meet.

The factors are i-PI's own (:mod:`ipi.utils.units`), so that a number written by i-PI in
Angstrom and a number we convert agree to the last digit. The force and virial factors are
derived from the energy and length factors, so that ``F = -dE/dx`` holds exactly after
conversion (i-PI's separately rounded ``ev/ang`` entry differs in the 8th digit).
"""

from __future__ import annotations

import numpy as np
from ipi.utils.units import unit_to_internal

from ipi_dipole.errors import InputError

#: bohr per Angstrom
BOHR_PER_ANGSTROM = float(unit_to_internal("length", "angstrom", 1.0))
#: hartree per eV
HARTREE_PER_EV = float(unit_to_internal("energy", "electronvolt", 1.0))
#: (hartree/bohr) per (eV/Angstrom)
FORCE_AU_PER_EV_ANGSTROM = HARTREE_PER_EV / BOHR_PER_ANGSTROM


# ------------------------------------------------------------------ unit families

def to_atomic_units(family: str, unit: str | None) -> float:
    """Atomic units per one ``unit`` of an i-PI unit family (``"length"``, ``"momentum"``, ...;
    None: atomic units), from :func:`ipi.utils.units.unit_to_internal`."""
    try:
        return unit_to_internal(family, unit or "atomic_unit", 1.0)
    except (TypeError, ValueError, IndexError) as exc:
        raise InputError(f"unknown i-PI unit {unit!r} for a {family}: {exc}") from None


def angstrom_per_bohr() -> float:
    """Length of one bohr in Angstrom, from :mod:`ipi.utils.units`."""
    return 1.0 / BOHR_PER_ANGSTROM


def fs_per_atomic_time() -> float:
    """One atomic unit of time in fs, from :mod:`ipi.utils.units`."""
    return 1.0 / to_atomic_units("time", "femtosecond")


def convert(value, family: str, unit: str | None, target: str):
    """Convert ``value`` of an i-PI unit family from ``unit`` (None: atomic) to ``target``."""
    return np.asarray(value, dtype=float) * (to_atomic_units(family, unit) / to_atomic_units(family, target))


def velocity_to_angstrom_per_fs(unit: str | None = "atomic_unit") -> float:
    """Factor turning an i-PI velocity in ``unit`` into Angstrom/fs (Angstrom/fs divided by it: ``unit``)."""
    au = to_atomic_units("velocity", unit)  # unit -> bohr per atomic time
    return au * angstrom_per_bohr() / fs_per_atomic_time()


def ipi_masses_dalton(symbols) -> np.ndarray:
    """Masses (Da) i-PI gives these atom labels, so that i-PI's momenta match our velocities."""
    from ipi.utils.units import Elements

    return np.array([Elements.mass(s) for s in symbols]) / to_atomic_units("mass", "dalton")


def drop_made_up_digits(x: float) -> float:
    """``x`` to 8 significant digits: i-PI writes checkpoints and properties with 9, so a value
    converted from another unit carries digits after the 8th that the round trip made up
    (0.5 fs written as 2.06706865e+01 atomic units reads back as 0.499999996 fs)."""
    return float(f"{x:.8g}")


# ------------------------------------------------------------ the driver's boundary

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


def dipole_from_ipi(dipole: np.ndarray) -> np.ndarray:
    """Dipole (..., 3) in e*Angstrom from i-PI's e*bohr: the inverse of :func:`dipole_to_ipi`."""
    return np.asarray(dipole, dtype=float) * angstrom_per_bohr()


# ------------------------------------------------------------------ Born charges

def bec_to_ipi(born_charges: np.ndarray) -> list[list[float]]:
    """i-PI's ``BEC`` extra, shape (3N, 3) in e, from ``Z[i, a, b] = dM_a / dx_ib`` (N, 3, 3).

    Row ``3 i + b`` holds the derivative with respect to ``x_ib``; column ``a`` is the dipole
    component, i.e. ``Z.transpose(0, 2, 1).reshape(3N, 3)``. Born charges are in e in both
    unit systems, so only the layout changes.
    """
    return bec_to_ipi_array(born_charges).tolist()


def bec_to_ipi_array(born_charges: np.ndarray) -> np.ndarray:
    """:func:`bec_to_ipi` as a (3N, 3) array, for encoders that format it themselves."""
    z = np.asarray(born_charges, dtype=float)
    return z.transpose(0, 2, 1).reshape(-1, 3)


def bec_from_ipi(bec: np.ndarray, source="BEC") -> np.ndarray:
    """``Z[..., i, a, b] = dM_a / dx_ib`` from i-PI's ``BEC`` blocks (..., 3N, 3): the inverse of
    :func:`bec_to_ipi`.

    Parameters
    ----------
    bec : array (3N, 3), (T, 3N, 3) or (9N,)
        Row ``3i+b`` of a block is d/dx_ib, its column ``a`` the dipole component; in e
        (Born charges are in e in both unit systems). A flat (9N,) array is one block.
    source : str or path
        Named in the error for a wrong shape.

    Returns
    -------
    array (N, 3, 3) or (T, N, 3, 3)
        In e.
    """
    b = np.asarray(bec, dtype=float)
    if b.ndim == 1:
        b = b.reshape(-1, 3) if b.size % 3 == 0 else b[None]
    if b.ndim < 2 or b.shape[-1] != 3 or b.shape[-2] % 3:
        raise InputError(f"{source}: BEC must be (3N, 3) numbers per step, found {b.shape[-2:]}")
    n_atoms = b.shape[-2] // 3
    return b.reshape(*b.shape[:-2], n_atoms, 3, 3).swapaxes(-1, -2).copy()
