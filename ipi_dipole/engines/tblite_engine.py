"""GFN2-xTB and GFN1-xTB reference labels from tblite's Python API.

tblite works in atomic units (bohr, hartree, e*bohr, hartree/(e*bohr) for fields); this
module converts at the boundary with :mod:`ase.units`, so everything it returns is in
eV, eV/Angstrom, e*Angstrom and e, and it takes fields in V/Angstrom.

tblite's field term is ``-M.E`` with ``M`` the total dipole about the coordinate origin
(measured: the energy changes by ``-M.E`` to first order, and a -1 ion feels a net force
``-E``), which is the convention of :mod:`.finite_field`. Its ``dipole`` result is about
the origin too, so for ions the dipole and the field route use the same reference point.

tblite 0.8.0's ``Calculator.add("electric-field", array)`` raises TypeError (the CFFI
wrapper wants a pointer): the field is passed as ``ffi.cast("double*", ...)`` of an array
that is kept alive on the calculator for as long as it exists.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.units import Bohr, Hartree, kB

from ..errors import InputError
from .base import CalculationFailed, Engine, EngineResult, charge_and_uhf

METHODS = ("GFN2-xTB", "GFN1-xTB")
#: V/Angstrom -> hartree/(e*bohr), the atomic unit of field (51.42 V/Angstrom)
FIELD_TO_AU = Bohr / Hartree


def normalise_method(method: str) -> str:
    """``gfn2``, ``GFN2``, ``gfn2-xtb`` ... -> ``GFN2-xTB``; InputError for unknown methods."""
    key = str(method).strip().lower().replace("_", "-")
    for name in METHODS:
        if key in (name.lower(), name.lower().split("-")[0]):
            return name
    raise InputError(f"tblite method {method!r} is not available; choose one of {', '.join(METHODS)}")


class TBLiteEngine(Engine):
    """Energies, forces, dipoles and finite-field Born charges with GFN-xTB (tblite).

    Parameters
    ----------
    method : str
        ``"GFN2-xTB"`` (default) or ``"GFN1-xTB"``.
    field_step : float, optional
        Finite-field step in V/Angstrom (default 0.01; ``Z*`` is flat to 3e-7 e from
        1e-4 to 1e-2 V/Angstrom for the water dimer).
    accuracy : float
        tblite's SCF accuracy factor (smaller is tighter). The default 0.01 makes the
        dipole smooth enough that its finite displacements reproduce the field-route
        ``Z*`` to ~1e-5 e (with tblite's default 1.0 they agree only to ~2e-3 e), for
        ~20 % more time.
    electronic_temperature : float
        Fermi smearing temperature in K (tblite's default 300 K).
    max_iterations : int
        SCF iteration limit; a structure that does not converge raises CalculationFailed.
    """

    name = "tblite"
    default_field_step = 0.01

    def __init__(self, method: str = "GFN2-xTB", field_step: float | None = None,
                 accuracy: float = 0.01, electronic_temperature: float = 300.0,
                 max_iterations: int = 250):
        super().__init__(field_step)
        self.method = normalise_method(method)
        if not accuracy > 0:
            raise InputError(f"tblite accuracy must be positive, got {accuracy!r}")
        if not electronic_temperature >= 0:
            raise InputError(f"electronic temperature must be >= 0 K, got {electronic_temperature!r}")
        if int(max_iterations) < 1:
            raise InputError(f"max_iterations must be >= 1, got {max_iterations!r}")
        self.accuracy = float(accuracy)
        self.electronic_temperature = float(electronic_temperature)
        self.max_iterations = int(max_iterations)
        self._molecule = None  # (numbers, charge, uhf) of the cached calculators
        self._calculators: dict = {}

    @property
    def description(self) -> str:
        return f"tblite {self.method}"

    def _calculator(self, atoms: Atoms, field_au: tuple):
        from tblite.interface import Calculator
        from tblite.library import ffi

        charge, uhf = charge_and_uhf(atoms)
        molecule = (atoms.numbers.tobytes(), charge, uhf)
        if molecule != self._molecule:
            self._molecule, self._calculators = molecule, {}
        calc = self._calculators.get(field_au)
        positions = np.ascontiguousarray(atoms.positions / Bohr)
        if calc is None:
            calc = Calculator(self.method, np.asarray(atoms.numbers), positions, charge, uhf)
            calc.set("verbosity", 0)
            calc.set("accuracy", self.accuracy)
            calc.set("temperature", self.electronic_temperature * kB / Hartree)
            calc.set("max-iter", self.max_iterations)
            if any(field_au):
                field = np.array(field_au, dtype=float)
                calc.add("electric-field", ffi.cast("double*", field.ctypes.data))
                calc._ipi_dipole_field = field  # tblite may read it later: keep it alive
            self._calculators[field_au] = calc
        else:
            calc.update(positions=positions)
        return calc

    def _evaluate(self, atoms, field=None, guess=None):
        field_au = (0.0, 0.0, 0.0) if field is None else tuple(float(f) * FIELD_TO_AU for f in field)
        try:
            calc = self._calculator(atoms, field_au)
            if guess is not None and guess[0] != self._molecule:
                guess = None  # a wavefunction of another molecule is no starting point
            res = calc.singlepoint(None if guess is None else guess[1], copy=True)
            energy = float(res.get("energy")) * Hartree
            forces = -np.asarray(res.get("gradient"), dtype=float) * (Hartree / Bohr)
            dipole = np.asarray(res.get("dipole"), dtype=float) * Bohr
        except InputError:
            raise
        except RuntimeError as exc:  # TBLiteRuntimeError: SCF not converged, atoms too close
            self._calculators.pop(field_au, None)  # start the next structure from a clean object
            raise CalculationFailed(f"{self.description}: {exc}") from exc
        if not (np.isfinite(energy) and np.all(np.isfinite(forces)) and np.all(np.isfinite(dipole))):
            raise CalculationFailed(f"{self.description}: non-finite energy, forces or dipole")
        return EngineResult(energy, forces, dipole), (self._molecule, res)
