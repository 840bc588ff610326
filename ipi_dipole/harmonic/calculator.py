"""The ASE calculator face of a force back-end (``--forces SPEC``, see
:func:`ipi_dipole.driver.backends.make_backend`), so that ASE's optimisers, ASE's
:class:`~ase.vibrations.Vibrations` and phonopy's displaced supercells can use any of them.
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from ..errors import InputError


class BackendCalculator(Calculator):
    """Energy (eV) and forces (eV/Angstrom) from a :class:`~ipi_dipole.driver.backends.ForceBackend`.

    The back-end is set up again whenever the species or the number of atoms change (a
    unit cell and its supercell can share one calculator). A structure counts as periodic
    only when ``pbc`` is True along all three axes, as in the driver.

    Parameters
    ----------
    backend : ForceBackend
        E.g. ``make_backend("lammps:forcefield.lammps")``.
    """

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, backend, **kwargs):
        super().__init__(**kwargs)
        self.backend = backend
        self._species = None
        self.n_calls = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        symbols = self.atoms.get_chemical_symbols()
        positions = np.array(self.atoms.positions, dtype=float)
        if symbols != self._species:
            if self._species is not None:
                if getattr(self.backend, "builds_system", False):
                    # a LAMMPS input that builds its own box cannot take another structure
                    raise InputError(f"{self.backend.label}: the input builds its own system of "
                                     f"{len(self._species)} atoms, not one of {len(symbols)}: give an "
                                     "input with interaction commands and a '# species:' line instead")
                self.backend.close()
            self.backend.setup(symbols, positions)
            self._species = symbols
        pbc = bool(np.all(self.atoms.pbc))
        energy, forces, _ = self.backend.compute(positions, np.array(self.atoms.cell.array), pbc)
        self.n_calls += 1
        self.results = {"energy": float(energy), "free_energy": float(energy),
                        "forces": np.asarray(forces, dtype=float)}

    def close(self):
        """Release the back-end (LAMMPS instance, ...)."""
        self.backend.close()
        self._species = None
