"""A trained force field evaluated by LAMMPS: ASE calculator face and error statistics."""

from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from .. import lammps_runtime
from ..errors import InputError
from .files import check_path_for_lammps, lammps_commands, read_species
from .training_set import labels


class ForceFieldCalculator(Calculator):
    """ASE calculator face of a trained force field, evaluated by LAMMPS.

    Energies in eV, forces in eV/Angstrom (stress in eV/Angstrom^3 for periodic cells).
    Built on :class:`ase.calculators.lammpslib.LAMMPSlib`, which loads the snippet through
    :func:`lammps_commands`. Non-periodic structures (molecules, ``pbc`` all False, any
    cell) are evaluated in a large box with fixed boundaries; energies and forces do not
    depend on where the molecule sits.

    Parameters
    ----------
    ff_dir : path
        A directory written by ``ipi-dipole train-forcefield``.
    log_file : path, optional
        Where LAMMPS writes its log (default: none).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]
    #: empty space (Angstrom) around a molecule in its evaluation box
    MOLECULE_MARGIN = 10.0

    def __init__(self, ff_dir: str | os.PathLike, log_file: str | os.PathLike | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.ff_dir = check_path_for_lammps(ff_dir)
        self.species = read_species(self.ff_dir)
        self.log_file = log_file
        self._lammpslib = None
        self._box = None  # edge (Angstrom) of the current molecule box

    def _inner(self):
        if self._lammpslib is None:
            _, MPI = lammps_runtime.load()  # LAMMPSlib imports lammps: the wheel needs MPI first
            from ase.calculators.lammpslib import LAMMPSlib

            self._lammpslib = LAMMPSlib(
                lmpcmds=lammps_commands(self.ff_dir),
                atom_types={s: k + 1 for k, s in enumerate(self.species)},
                log_file=str(self.log_file) if self.log_file else None,
                keep_alive=True, comm=MPI.COMM_SELF)
        return self._lammpslib

    def _lammps_atoms(self, atoms: Atoms) -> Atoms:
        """The structure as LAMMPS gets it: molecules centred in a big fixed-boundary box."""
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(self.species))
        if unknown:
            symbols = atoms.get_chemical_symbols()
            first = next(i for i, s in enumerate(symbols) if s in unknown)
            raise InputError(f"atom {first} ({symbols[first]}): species {', '.join(unknown)} "
                             f"not in the force field {self.ff_dir} (species {' '.join(self.species)})")
        out = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        if not atoms.pbc.any():
            lo, hi = atoms.positions.min(axis=0), atoms.positions.max(axis=0)
            need = float((hi - lo).max()) + 2 * self.MOLECULE_MARGIN
            # grow in 10 A steps: a box that changes every call makes LAMMPSlib change_box
            if self._box is None or need > self._box:
                self._box = 10.0 * math.ceil(need / 10.0)
            out.cell = np.eye(3) * self._box
            out.positions = atoms.positions - 0.5 * (lo + hi) + 0.5 * self._box
        elif not atoms.pbc.all():
            lengths = atoms.cell.lengths()
            if np.any(lengths < 1e-6):
                raise InputError(f"pbc={atoms.pbc.tolist()} with a zero cell vector: give the "
                                 "non-periodic directions a cell (vacuum) too")
        elif abs(atoms.cell.volume) < 1e-8:
            raise InputError("periodic structure without a cell")
        return out

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        proxy = self._lammps_atoms(self.atoms)
        inner = self._inner()
        changes = inner.check_state(proxy)
        if changes:
            inner.calculate(proxy, ["energy", "forces"], changes)
        self.results = {
            "energy": float(inner.results["energy"]),
            "free_energy": float(inner.results["energy"]),
            "forces": np.array(inner.results["forces"], dtype=float),
        }
        if self.atoms.pbc.all():
            self.results["stress"] = np.array(inner.results["stress"], dtype=float)

    def close(self):
        """Free the LAMMPS instance."""
        if self._lammpslib is not None:
            self._lammpslib.clean()
            self._lammpslib = None
            self._box = None


def evaluate(ff_dir: str | os.PathLike, structures: Sequence[Atoms]) -> dict:
    """Energy and force errors of a force field against labelled structures.

    Returns
    -------
    dict
        ``n`` structures, ``energy_rmse_eV_per_atom``, ``energy_mae_eV_per_atom``,
        ``energy_rmse_eV`` (per structure), ``force_rmse_eV_per_A`` and
        ``force_mae_eV_per_A`` (over Cartesian components), ``force_max_error_eV_per_A``
        (largest component error); None values for an empty list.
    """
    calc = ForceFieldCalculator(ff_dir)
    de, de_atom, df = [], [], []
    try:
        for atoms in structures:
            ref_e, ref_f = labels(atoms)
            calc.calculate(atoms, ["energy", "forces"])
            de.append(calc.results["energy"] - ref_e)
            de_atom.append(de[-1] / len(atoms))
            df.append((calc.results["forces"] - ref_f).ravel())
    finally:
        calc.close()
    if not de:
        return {"n": 0, "energy_rmse_eV_per_atom": None, "energy_mae_eV_per_atom": None,
                "energy_rmse_eV": None, "force_rmse_eV_per_A": None, "force_mae_eV_per_A": None,
                "force_max_error_eV_per_A": None}
    de, de_atom, df = np.array(de), np.array(de_atom), np.concatenate(df)
    return {
        "n": len(de),
        "energy_rmse_eV_per_atom": float(np.sqrt(np.mean(de_atom ** 2))),
        "energy_mae_eV_per_atom": float(np.mean(np.abs(de_atom))),
        "energy_rmse_eV": float(np.sqrt(np.mean(de ** 2))),
        "force_rmse_eV_per_A": float(np.sqrt(np.mean(df ** 2))),
        "force_mae_eV_per_A": float(np.mean(np.abs(df))),
        "force_max_error_eV_per_A": float(np.max(np.abs(df))),
    }
