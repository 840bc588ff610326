"""The 0 K harmonic reference: normal modes, IR intensities from ``Z*``, LO-TO splitting.

The route (Fang et al.; the paper's DFPT comparison): minimise the structure with a force
back-end, take the Hessian by finite differences of forces, diagonalise the mass-weighted
Hessian, project the Born charges on the modes and label the modes by their irreducible
representations. Molecules go through :mod:`ase.vibrations` (central differences, cached
on disk), crystals through phonopy (symmetry-reduced displacements of a supercell, the
non-analytic correction from ``eps_inf`` and ``Z*`` for the LO modes).

Modules, one job each:

- :mod:`.calculator`: the ASE calculator face of a ``--forces`` back-end;
- :mod:`.relax`: fixed-cell minimisation;
- :mod:`.molecule`: molecular Hessian, rigid-body motions projected out;
- :mod:`.crystal`: phonopy force constants at Gamma, with and without NAC;
- :mod:`.symmetry`: irreducible representations and IR activity (phonopy);
- :mod:`.modes`: the :class:`NormalModes` container, dipole derivatives and intensities.

The spectrum built from the modes (same units as ``ipi-dipole spectrum``) lives in
:mod:`ipi_dipole.analysis.harmonic_spectrum`.
"""

from .modes import NormalModes, dipole_derivatives, intensity_km_per_mol

__all__ = ["NormalModes", "dipole_derivatives", "intensity_km_per_mol"]
