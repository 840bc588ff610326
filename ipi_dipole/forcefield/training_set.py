"""The training data of a force field: labels, checks and the train/test split.

A data-set structure (:mod:`ipi_dipole.data` format) carries its reference energy (eV)
and forces (eV/Angstrom) in ``atoms.calc.results``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from ase import Atoms

from ..errors import InputError


def labels(atoms: Atoms) -> tuple[float, np.ndarray]:
    """Reference energy (eV) and forces (eV/Angstrom) stored on a data-set structure."""
    results = atoms.calc.results if atoms.calc is not None else {}
    return float(results["energy"]), np.asarray(results["forces"], dtype=float).reshape(len(atoms), 3)


def check_training_set(structures: Sequence[Atoms], source: str,
                       species: Sequence[str] | None = None) -> list[str]:
    """Check that every structure can be trained on; return the species order.

    Every structure needs a finite energy and finite forces of the right shape, and one
    common kind of boundary: all periodic (with a cell) or all non-periodic. ``species``
    (the LAMMPS type order) defaults to the order of first appearance in the data; when
    given, every atom must be of one of them and each of them must occur.

    Raises
    ------
    InputError
        Naming ``source`` and the structure (and atom) at fault.
    """
    if not structures:
        raise InputError(f"{source}: no structures")
    seen: list[str] = []
    pbc0 = None
    for k, atoms in enumerate(structures):
        where = f"{source}: structure {k}"
        if len(atoms) == 0:
            raise InputError(f"{where}: no atoms")
        results = atoms.calc.results if atoms.calc is not None else {}
        for key in ("energy", "forces"):
            if key not in results:
                raise InputError(f"{where}: no {key} (the force field is fitted to energies "
                                 "in eV and forces in eV/Angstrom)")
        energy = np.asarray(results["energy"], dtype=float)
        forces = np.asarray(results["forces"], dtype=float)
        if energy.shape != () or not np.isfinite(energy):
            raise InputError(f"{where}: energy is not one finite number")
        if forces.shape != (len(atoms), 3):
            raise InputError(f"{where}: forces have shape {forces.shape}, expected ({len(atoms)}, 3)")
        bad = np.where(~np.isfinite(forces).all(axis=1))[0]
        if len(bad):
            raise InputError(f"{where}: non-finite forces on atom {bad[0]}")
        if not np.isfinite(atoms.positions).all():
            raise InputError(f"{where}: non-finite positions")
        pbc = tuple(bool(p) for p in atoms.pbc)
        if pbc0 is None:
            pbc0 = pbc
        elif pbc != pbc0:
            raise InputError(f"{where}: pbc {list(pbc)} differs from structure 0's {list(pbc0)}; "
                             "one force-field fit takes all-periodic or all-molecular data")
        if any(pbc) and not all(pbc):
            raise InputError(f"{where}: partly periodic structures (pbc {list(pbc)}) are not "
                             "supported; use pbc T T T with vacuum, or F F F for molecules")
        if all(pbc) and abs(atoms.cell.volume) < 1e-8:
            raise InputError(f"{where}: periodic but has no cell")
        symbols = atoms.get_chemical_symbols()
        for i, s in enumerate(symbols):
            if species is not None and s not in species:
                raise InputError(f"{where}: atom {i} is {s}, not one of the species "
                                 f"{' '.join(species)}")
            if s not in seen:
                seen.append(s)
    if species is None:
        return seen
    missing = [s for s in species if s not in seen]
    if missing:
        raise InputError(f"{source}: species {' '.join(missing)} occur in no structure; "
                         "a force field cannot learn them")
    return list(species)


def split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random train/test split of ``n`` structures; returns sorted index arrays.

    ``round(test_fraction * n)`` structures (at least one when ``test_fraction > 0``) are
    held out.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise InputError(f"test fraction must be in [0, 1), got {test_fraction}")
    n_test = 0 if test_fraction == 0 else max(1, int(round(test_fraction * n)))
    if n - n_test < 1:
        raise InputError(f"{n} structures leave none to train on with test fraction {test_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_test:]), np.sort(order[:n_test])
