"""What every reference engine shares: results, molecule checks, the finite-field loop and
an ASE calculator face.

An engine evaluates one structure in an optional uniform field and returns energy (eV),
forces (eV/Angstrom) and dipole (e*Angstrom); :meth:`Engine.compute` adds the Born
charges by central finite fields (:mod:`.finite_field`). Engines keep no state between
structures except a cache of library objects, so labelling a structure gives the same
numbers whatever was labelled before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import CalculationFailed as _AseCalculationFailed
from ase.calculators.calculator import Calculator, all_changes

from .. import data
from ..errors import InputError
from . import finite_field

PERIODIC_MESSAGE = "a finite field in a periodic cell is not the Born charge"


class CalculationFailed(_AseCalculationFailed):
    """An engine could not evaluate one structure (SCF not converged, atoms on top of
    each other, ...). The structure is unusable; other structures may be fine."""


@dataclass
class EngineResult:
    """Properties of one structure.

    Attributes
    ----------
    energy : float
        Potential energy in eV (without the field term when the field is zero).
    forces : numpy.ndarray, shape (N, 3)
        Forces in eV/Angstrom.
    dipole : numpy.ndarray, shape (3,)
        Total dipole (nuclei and electrons) in e*Angstrom, about the coordinate origin.
    born_charges : numpy.ndarray, shape (N, 3, 3), optional
        ``Z*[i, a, b] = dM_a / dx_ib`` in e.
    """

    energy: float
    forces: np.ndarray
    dipole: np.ndarray
    born_charges: np.ndarray | None = None


def check_molecule(atoms: Atoms, engine: str, where: str = "structure") -> None:
    """Refuse periodic structures: the Born charge of a crystal is not a finite-field
    derivative of a molecule's forces, and a uniform field in a periodic cell is a sawtooth."""
    if np.any(atoms.pbc):
        raise InputError(f"{where} is periodic (pbc={np.asarray(atoms.pbc).tolist()}): "
                         f"{PERIODIC_MESSAGE}; the {engine} engine labels isolated molecules "
                         "(set pbc to False for a molecule in a box)")
    if not np.all(np.isfinite(atoms.positions)):
        raise InputError(f"{where} has non-finite positions")


def charge_and_uhf(atoms: Atoms, where: str = "structure") -> tuple[float, int]:
    """Total charge (e) and number of unpaired electrons of a molecule.

    Read from ``atoms.info``: ``charge`` (default 0); ``uhf`` (unpaired electrons, tblite's
    convention) or ``spin`` / ``multiplicity`` (the spin multiplicity 2S+1, as in
    fairchem/OMol25 data sets). Without either, the lowest spin the electron count allows
    (0 or 1 unpaired electron).
    """
    info = atoms.info
    try:
        charge = float(info.get("charge", 0.0))
    except (TypeError, ValueError):
        raise InputError(f"{where}: charge {info.get('charge')!r} is not a number") from None
    n_electrons = float(atoms.numbers.sum()) - charge
    if not np.isfinite(charge) or n_electrons < 0:
        raise InputError(f"{where}: charge {charge:g} leaves {n_electrons:g} electrons")
    keys = [k for k in ("uhf", "spin", "multiplicity") if k in info]
    if not keys:
        return charge, int(round(n_electrons)) % 2
    key = keys[0]
    try:
        value = float(info[key])
    except (TypeError, ValueError):
        raise InputError(f"{where}: {key} {info[key]!r} is not a number") from None
    uhf = value if key == "uhf" else value - 1
    if uhf < 0 or uhf != int(uhf):
        raise InputError(f"{where}: {key}={info[key]!r} does not give a whole, non-negative "
                         "number of unpaired electrons")
    uhf = int(uhf)
    for other in keys[1:]:
        if float(info[other]) - (0 if other == "uhf" else 1) != uhf:
            raise InputError(f"{where}: {key}={info[key]!r} and {other}={info[other]!r} disagree")
    if n_electrons == int(n_electrons) and (int(n_electrons) - uhf) % 2:
        raise InputError(f"{where}: {int(n_electrons)} electrons (charge {charge:g}) cannot have "
                         f"{uhf} unpaired electrons ({key}={info[key]!r})")
    return charge, uhf


class Engine:
    """Base class of the reference engines.

    Subclasses implement :meth:`_evaluate` for one structure in one field and set
    ``name`` and ``default_field_step``.

    Parameters
    ----------
    field_step : float, optional
        Finite-field step in V/Angstrom (engine's default when None).
    """

    name = "engine"
    default_field_step = finite_field.DEFAULT_FIELD_STEP

    def __init__(self, field_step: float | None = None):
        self.field_step = finite_field.check_field_step(
            self.default_field_step if field_step is None else field_step)

    @property
    def description(self) -> str:
        """Engine and method, written into every labelled structure (``info['engine']``)."""
        return self.name

    def check(self, atoms: Atoms, where: str = "structure") -> None:
        """Raise InputError when this engine cannot label ``atoms`` at all."""
        check_molecule(atoms, self.name, where)
        charge_and_uhf(atoms, where)

    def _evaluate(self, atoms: Atoms, field: np.ndarray | None, guess: Any = None):
        """Energy (eV), forces (eV/A) and dipole (e*A) in the field (V/A, None = zero).

        Returns ``(EngineResult, state)`` where ``state`` can be passed back as ``guess``
        to start a nearby calculation (a wavefunction); raises CalculationFailed.
        """
        raise NotImplementedError

    def compute(self, atoms: Atoms, born_charges: bool = True, guess: Any = None):
        """Energy, forces, dipole and (optionally) Born charges of one molecule.

        Parameters
        ----------
        atoms : ase.Atoms
            Positions in Angstrom; ``info`` may hold ``charge`` and ``uhf``/``spin``.
        born_charges : bool
            Also compute ``Z*`` by central finite fields (6 extra force evaluations).
        guess : optional
            Starting wavefunction from an earlier call (``state`` returned by it).

        Returns
        -------
        (EngineResult, state)
        """
        self.check(atoms)
        result, state = self._evaluate(atoms, None, guess)
        if born_charges:
            result.born_charges = finite_field.born_charges(
                lambda field: self._evaluate(atoms, field, state)[0].forces, self.field_step)
        return result, state

    def label(self, atoms: Atoms, info: dict | None = None) -> Atoms:
        """A data-set structure (:func:`ipi_dipole.data.make_structure`) with energy, forces,
        dipole and Born charges from this engine; ``atoms.info`` is kept and ``engine`` and
        ``field_step`` (V/Angstrom) are added."""
        result, _ = self.compute(atoms, born_charges=True)
        meta = dict(atoms.info)
        meta.update(engine=self.description, field_step=self.field_step)
        meta.update(info or {})
        return data.make_structure(atoms, result.born_charges, dipole=result.dipole,
                                   energy=result.energy, forces=result.forces, info=meta)

    def calculator(self) -> "EngineCalculator":
        """An ASE calculator evaluating this engine."""
        return EngineCalculator(self)


class EngineCalculator(Calculator):
    """ASE face of an engine: ``energy``, ``forces``, ``dipole`` (e*Angstrom) and, when asked
    for (``calc.get_property('born_charges', atoms)``), ``born_charges`` (N, 3, 3) in e.

    Between calls on the same molecule the last wavefunction starts the next SCF, which
    makes molecular dynamics cheaper.
    """

    implemented_properties = ["energy", "free_energy", "forces", "dipole", "born_charges"]

    def __init__(self, engine: Engine, **kwargs):
        super().__init__(**kwargs)
        self.engine = engine
        self._state = None

    def check_state(self, atoms, tol=1e-15):
        changes = super().check_state(atoms, tol)
        # ASE does not watch atoms.info, where the charge and spin live
        if self.atoms is not None and not changes:
            try:
                if charge_and_uhf(self.atoms) != charge_and_uhf(atoms):
                    changes.append("initial_charges")
            except InputError:
                changes.append("initial_charges")
        return changes

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if set(system_changes) - {"positions"}:
            self._state = None  # another molecule, charge or spin: start afresh
        result, self._state = self.engine.compute(
            self.atoms, born_charges="born_charges" in properties, guess=self._state)
        self.results = {
            "energy": result.energy,
            "free_energy": result.energy,
            "forces": result.forces,
            "dipole": result.dipole,
        }
        if result.born_charges is not None:
            self.results["born_charges"] = result.born_charges
