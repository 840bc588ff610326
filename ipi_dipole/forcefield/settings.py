"""What the settings of every force-field kind share: a cutoff and a weighted ridge fit."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar, Sequence

from ase import Atoms

from ..errors import InputError


@dataclass
class FitSettings:
    """Base of the settings of one force-field kind (subclasses give the defaults).

    Parameters
    ----------
    cutoff : float
        Neighbour cutoff (Angstrom).
    energy_weight, force_weight : float
        Least-squares weights of per-atom energies (eV) and force components (eV/A).
    regularization : float
        Ridge parameter of the least-squares fit.
    """

    #: name of the kind in messages
    KIND: ClassVar[str] = "force-field"
    #: what to do when there are fewer equations than coefficients
    FEWER_COEFFICIENTS: ClassVar[str] = "shrink the basis"

    cutoff: float
    energy_weight: float
    force_weight: float
    regularization: float

    def __post_init__(self):
        if not self.cutoff > 0:
            raise InputError(f"{self.KIND} cutoff must be positive, got {self.cutoff} Angstrom")
        if self.energy_weight < 0 or self.force_weight < 0 or self.energy_weight + self.force_weight == 0:
            raise InputError("fit weights must be >= 0 and not both 0")
        if self.regularization < 0:
            raise InputError(f"regularization must be >= 0, got {self.regularization}")

    def as_dict(self) -> dict:
        return asdict(self)

    def n_coefficients(self, n_species: int) -> int:
        """Number of fitted coefficients for ``n_species`` species."""
        raise NotImplementedError

    def check_enough_data(self, train_set: Sequence[Atoms], n_species: int, source: str) -> int:
        """Number of fitted equations (an energy and 3N force components per structure).

        Raises
        ------
        InputError
            When there are fewer equations than coefficients.
        """
        n_coeff = self.n_coefficients(n_species)
        n_equations = sum(1 + 3 * len(a) for a in train_set)
        if n_equations < n_coeff:
            raise InputError(f"{source}: too few structures: {len(train_set)} training structures "
                             f"give {n_equations} energies and force components for {n_coeff} "
                             f"{self.KIND} coefficients; add structures or {self.FEWER_COEFFICIENTS}")
        return n_equations
