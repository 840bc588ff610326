"""The data set format that every part of ipi-dipole reads and writes.

A data set is an extended-XYZ file readable by ``ase.io.read(path, ":")``. Per structure:

- per-atom array ``born_charges``: 9 numbers per atom, row-major
  ``Z[i, a, b] = dM_a / dx_ib`` (row = dipole component, column = displacement
  direction), in units of e;
- optionally the cell dipole ``M`` (e*Angstrom), the energy (eV), the forces
  (eV/Angstrom) and the electronic dielectric tensor, all as ASE calculator results
  (``dipole``, ``energy``, ``forces``, ``dielectric_tensor``), so that
  ``atoms.get_dipole_moment()`` works on a loaded structure;
- ``pbc`` and the cell as usual.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from .errors import InputError

BORN_KEY = "born_charges"
#: per-atom array names other people's extended-XYZ files use for Born charges, all read as
#: row = dipole component (see :func:`rename_born_key` for how that was settled)
BEC_KEYS = ("born_charges", "born_charge", "born_effective_charges", "bec", "BEC", "Z", "zstar",
            "Zstar", "apt")
#: calculator results carried along with a structure, besides the Born charges
RESULT_KEYS = ("energy", "forces", "dipole", "dielectric_tensor")


def get_born_charges(atoms: Atoms) -> np.ndarray | None:
    """Born effective charges of a structure, or None when it has none.

    Returns
    -------
    numpy.ndarray, shape (N, 3, 3)
        ``Z[i, a, b] = dM_a / dx_ib`` in e.
    """
    z = atoms.arrays.get(BORN_KEY)
    if z is None:
        return None
    return np.asarray(z, dtype=float).reshape(len(atoms), 3, 3)


def rename_born_key(atoms: Atoms, key: str | None = None, where: str = "") -> Atoms:
    """Move a foreign per-atom Born-charge array to :data:`BORN_KEY` (in place; returns atoms).

    Parameters
    ----------
    atoms : ase.Atoms
    key : str, optional
        The array's name; default: the first of :data:`BEC_KEYS` present with 9 columns.
    where : str
        File/structure named in error messages.

    Notes
    -----
    Convention: the 9 numbers are read row-major as ``Z[i, a, b] = dM_a / dx_ib`` (e).
    Settled on the Allegro-pol BaTiO3 set (``born_charge``, QE): between nearby frames the
    change of the stored cell ``polarization`` (e*Angstrom, modulo e*L) matches
    ``sum_i Z_i . dr_i`` with this reading and not with the transpose (tests/test_readers.py
    checks it), consistent with that paper's ``Z*_{i,ab} = dP_a/dr_ib`` (Falletta et al. 2024).
    """
    if BORN_KEY in atoms.arrays and key in (None, BORN_KEY):
        return atoms
    names = [key] if key is not None else [k for k in BEC_KEYS if k in atoms.arrays]
    for name in names:
        z = atoms.arrays.get(name)
        if z is None:
            raise InputError(f"{where}: no per-atom array {name!r} (arrays: {', '.join(atoms.arrays)})")
        z = np.asarray(z, dtype=float)
        if z.size != 9 * len(atoms):
            if key is not None:
                raise InputError(f"{where}: array {name!r} has {z.size // max(len(atoms), 1)} numbers "
                                 "per atom, Born charges need 9")
            continue
        del atoms.arrays[name]
        atoms.arrays[BORN_KEY] = z.reshape(len(atoms), 9)
        return atoms
    return atoms


def set_born_charges(atoms: Atoms, born_charges: np.ndarray) -> None:
    """Store Born charges ``Z[i, a, b] = dM_a / dx_ib`` (e, shape (N, 3, 3)) on ``atoms``."""
    z = np.asarray(born_charges, dtype=float)
    if z.shape != (len(atoms), 3, 3):
        raise InputError(f"Born charges must have shape ({len(atoms)}, 3, 3), got {z.shape}")
    atoms.arrays[BORN_KEY] = z.reshape(len(atoms), 9).copy()


def get_results(atoms: Atoms) -> dict:
    """Calculator results (energy, forces, dipole, dielectric tensor) stored on ``atoms``."""
    if atoms.calc is None:
        return {}
    return {k: v for k, v in atoms.calc.results.items() if k in RESULT_KEYS}


def make_structure(
    atoms: Atoms,
    born_charges: np.ndarray | None = None,
    *,
    dipole: np.ndarray | None = None,
    energy: float | None = None,
    forces: np.ndarray | None = None,
    dielectric_tensor: np.ndarray | None = None,
    info: dict | None = None,
) -> Atoms:
    """A data-set structure: a copy of ``atoms`` carrying the given labels.

    Parameters
    ----------
    atoms : ase.Atoms
        Species, positions (Angstrom), cell (Angstrom) and pbc.
    born_charges : array (N, 3, 3), optional
        ``Z[i, a, b] = dM_a / dx_ib`` in e.
    dipole : array (3,), optional
        Cell dipole in e*Angstrom.
    energy : float, optional
        Potential energy in eV.
    forces : array (N, 3), optional
        Forces in eV/Angstrom.
    dielectric_tensor : array (3, 3), optional
        Electronic (clamped-ion) dielectric tensor, dimensionless.
    info : dict, optional
        Extra per-structure metadata (source file, code, ...), kept in ``atoms.info``.
    """
    out = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    if born_charges is not None:
        set_born_charges(out, born_charges)
    results = {}
    if dipole is not None:
        results["dipole"] = np.asarray(dipole, dtype=float).reshape(3)
    if energy is not None:
        results["energy"] = float(energy)
    if forces is not None:
        results["forces"] = np.asarray(forces, dtype=float).reshape(len(out), 3)
    if dielectric_tensor is not None:
        results["dielectric_tensor"] = np.asarray(dielectric_tensor, dtype=float).reshape(3, 3)
    if results:
        out.calc = SinglePointCalculator(out, **results)
    if info:
        out.info.update(info)
    return out


def load(path: str | os.PathLike, index: str | int = ":") -> list[Atoms]:
    """Read a data set (extended XYZ).

    Raises
    ------
    InputError
        When the file is missing or is not readable extended XYZ; the message names the file.
    """
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        frames = ase.io.read(path, index=index, format="extxyz")
    except Exception as exc:  # ase raises many types for malformed files
        raise InputError(f"{path}: not a readable extended-XYZ data set ({exc})") from exc
    if isinstance(frames, Atoms):
        frames = [frames]
    if not frames:
        raise InputError(f"{path}: no structures")
    # other people's files name the array differently (born_charge, bec, ...): read them as ours
    return [rename_born_key(a, where=f"{path}: structure {k}") for k, a in enumerate(frames)]


def save(path: str | os.PathLike, structures: Iterable[Atoms], append: bool = False) -> None:
    """Write (or append) structures to an extended-XYZ data set.

    Appending flushes each call to disk, so that a labelling run that is killed keeps
    every structure it finished.
    """
    import ase.io

    structures = list(structures)
    if not structures:
        return
    with open(path, "a" if append else "w") as fh:
        ase.io.write(fh, structures, format="extxyz")
        fh.flush()
        os.fsync(fh.fileno())


def total_charge(atoms: Atoms) -> float:
    """Net charge of the structure in e, from ``atoms.info['charge']`` (default 0)."""
    return float(atoms.info.get("charge", 0.0))


def asr_violation(atoms: Atoms, charge: float | None = None) -> float:
    """Acoustic-sum-rule violation ``max |sum_i Z*_i - q_total * I|`` in e."""
    z = get_born_charges(atoms)
    if z is None:
        raise InputError("structure has no Born charges")
    q = total_charge(atoms) if charge is None else charge
    return float(np.abs(z.sum(axis=0) - q * np.eye(3)).max())


def enforce_asr(atoms: Atoms, charge: float | None = None) -> Atoms:
    """Copy of ``atoms`` whose Born charges obey the acoustic sum rule.

    The residual ``sum_i Z*_i - q_total * I`` is spread evenly over all atoms, as
    most first-principles codes do with their "simple" ASR correction.
    """
    z = get_born_charges(atoms)
    if z is None:
        raise InputError("structure has no Born charges")
    q = total_charge(atoms) if charge is None else charge
    residual = z.sum(axis=0) - q * np.eye(3)
    out = atoms.copy()
    out.calc = atoms.calc
    set_born_charges(out, z - residual / len(atoms))
    return out


@dataclass
class Problem:
    """One validation finding: which structure, how bad, and what."""

    index: int
    severity: str  # "error" (unusable) or "warning" (usable, but look)
    message: str

    def __str__(self) -> str:
        return f"structure {self.index}: {self.severity}: {self.message}"


def validate(structures: Sequence[Atoms], asr_tolerance: float = 0.05,
             require_born_charges: bool = True) -> list[Problem]:
    """Check a data set, structure by structure.

    Reports wrong shapes, NaN/inf values, periodic structures without a cell, and
    acoustic-sum-rule violations larger than ``asr_tolerance`` (e).
    """
    problems: list[Problem] = []
    for k, atoms in enumerate(structures):
        def add(severity, message):
            problems.append(Problem(k, severity, message))

        n = len(atoms)
        if n == 0:
            add("error", "no atoms")
            continue
        if not np.all(np.isfinite(atoms.positions)):
            bad = np.where(~np.isfinite(atoms.positions).all(axis=1))[0]
            add("error", f"non-finite positions for atoms {_atoms_list(atoms, bad)}")
        if atoms.pbc.any():
            lengths = atoms.cell.lengths()
            if np.any(lengths[atoms.pbc] <= 0) or abs(atoms.cell.volume) < 1e-8 and atoms.pbc.all():
                add("error", f"periodic (pbc={atoms.pbc.tolist()}) but has no cell")
        raw = atoms.arrays.get(BORN_KEY)
        if raw is None:
            if require_born_charges:
                add("error", f"no '{BORN_KEY}' array")
        elif raw.size != 9 * n:
            add("error", f"'{BORN_KEY}' has {raw.size // max(n, 1)} numbers per atom, expected 9")
        else:
            z = np.asarray(raw, dtype=float).reshape(n, 3, 3)
            finite = np.isfinite(z).all(axis=(1, 2))
            if not finite.all():
                add("error", f"non-finite Born charges for atoms {_atoms_list(atoms, np.where(~finite)[0])}")
            else:
                violation = asr_violation(atoms)
                if violation > asr_tolerance:
                    add("warning", f"acoustic sum rule violated by {violation:.4f} e "
                                   f"(max |sum_i Z*_i - q I|, q = {total_charge(atoms):g})")
        for key, value in get_results(atoms).items():
            value = np.asarray(value, dtype=float)
            expected = {"energy": (), "forces": (n, 3), "dipole": (3,), "dielectric_tensor": (3, 3)}[key]
            if value.shape != expected:
                add("error", f"'{key}' has shape {value.shape}, expected {expected}")
            elif not np.all(np.isfinite(value)):
                add("error", f"'{key}' is not finite")
    return problems


def _atoms_list(atoms: Atoms, indices, most: int = 5) -> str:
    symbols = atoms.get_chemical_symbols()
    shown = ", ".join(f"{i} ({symbols[i]})" for i in indices[:most])
    return shown + (f" and {len(indices) - most} more" if len(indices) > most else "")
