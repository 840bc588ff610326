"""From a structure and a force back-end to IR-projected normal modes: what ``ipi-dipole
harmonic`` runs.

Molecules (``pbc`` not all True) and crystals (``pbc`` all True) take their own routes
(:mod:`.molecule`, :mod:`.crystal`); both minimise first (fixed cell) and write the
minimised structure. Born charges come from a polarization model (predicted at the
minimum), a data-set or code file (:func:`ipi_dipole.readers.read_born`, the atoms in the
structure's order), or per-species charges (rigid ions).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .modes import NormalModes


@dataclass
class HarmonicSettings:
    """Numerical settings of the harmonic calculation.

    Attributes
    ----------
    relax : bool
        Minimise the positions first (the cell is kept).
    fmax : float
        Force threshold of the minimisation, eV/Angstrom.
    steps : int
        Most minimisation steps.
    optimiser : str
        ``bfgs``, ``lbfgs`` or ``fire``.
    delta : float, optional
        Finite-difference displacement, Angstrom (default 0.005 molecules, 0.01 crystals).
    supercell : tuple of 3 int
        Crystals: supercell of the given cell for the displacements. Gamma-point force
        constants are exact in any supercell (a displaced atom moves with all its images),
        so (1, 1, 1) suffices for the IR modes.
    symprec : float
        Symmetry tolerance in Angstrom (default 1e-3 molecules, 1e-5 crystals).
    q_direction : tuple of 3 float
        Cartesian direction of the LO wave vector (crystals with NAC).
    """

    relax: bool = True
    fmax: float = 1e-4
    steps: int = 1000
    optimiser: str = "bfgs"
    delta: float | None = None
    supercell: tuple = (1, 1, 1)
    symprec: float | None = None
    q_direction: tuple = (1.0, 0.0, 0.0)


def is_crystal(atoms) -> bool:
    """Periodic along all three axes (the driver's rule)."""
    return bool(np.all(atoms.pbc))


def relax_structure(atoms, calc, workdir: Path, settings: HarmonicSettings, log=print):
    """A minimised copy of ``atoms`` (written to ``WORKDIR/minimised.extxyz``)."""
    import ase.io

    from .relax import minimise

    atoms = atoms.copy()
    atoms.calc = calc
    if settings.relax:
        steps = minimise(atoms, fmax=settings.fmax, steps=settings.steps, optimiser=settings.optimiser,
                         logfile=workdir / "relax.log", trajectory=workdir / "relax.traj")
        fmax = float(np.sqrt((atoms.get_forces() ** 2).sum(axis=1).max()))
        log(f"minimised in {steps} steps ({settings.optimiser}, fixed cell): max force {fmax:.2g} eV/A")
    out = atoms.copy()
    ase.io.write(workdir / "minimised.extxyz", out, format="extxyz")
    return atoms


def _same_structure_as_cache(atoms, workdir: Path) -> bool:
    """Whether cached displacements in ``workdir`` belong to these positions and cell."""
    import ase.io

    ref = workdir / "displaced-from.extxyz"
    if ref.is_file():
        old = ase.io.read(ref)
        if (len(old) == len(atoms) and list(old.numbers) == list(atoms.numbers)
                and np.allclose(old.positions, atoms.positions, atol=1e-8)
                and np.allclose(old.cell.array, atoms.cell.array, atol=1e-8)):
            return True
    return False


def _reset_cache(atoms, workdir: Path, names) -> None:
    """Drop cached displaced forces that belong to another structure, remember this one."""
    import shutil

    import ase.io

    if not _same_structure_as_cache(atoms, workdir):
        for name in names:
            shutil.rmtree(workdir / name, ignore_errors=True)
        a = atoms.copy()
        a.calc = None
        ase.io.write(workdir / "displaced-from.extxyz", a, format="extxyz")


def compute_modes(atoms, calc, workdir, settings: HarmonicSettings | None = None, log=print):
    """Minimise, take the Hessian and diagonalise it.

    Parameters
    ----------
    atoms : ase.Atoms
        Molecule or crystal unit cell (Angstrom).
    calc : ase calculator
        Energies and forces (e.g. :class:`.calculator.BackendCalculator`).
    workdir : path
        Output directory (minimised structure, caches of displaced forces).

    Returns
    -------
    modes : NormalModes
    minimised : ase.Atoms
        The minimised structure (the given cell for crystals).
    phonon : phonopy.Phonopy or None
        Crystals: the phonopy object with force constants (for the NAC and Z* mapping).
    """
    settings = settings or HarmonicSettings()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    minimised = relax_structure(atoms, calc, workdir, settings, log)
    if is_crystal(minimised):
        from .crystal import compute_force_constants, gamma_modes, make_phonopy

        _reset_cache(minimised, workdir, ["phonopy_forces"])
        phonon = make_phonopy(minimised, settings.supercell, symprec=settings.symprec or 1e-5)
        n = compute_force_constants(phonon, calc, workdir, distance=settings.delta or 0.01, log=log)
        log(f"phonopy: space group {phonon.symmetry.get_international_table()}, "
            f"{len(phonon.primitive)} atoms in the primitive cell, {n} displaced supercell(s) of "
            f"{len(phonon.supercell)} atoms")
        phonon.save(workdir / "phonopy_params.yaml", settings={"force_constants": True})
        modes = gamma_modes(phonon, q_direction=settings.q_direction)
        modes.info["displacements"] = n
        return modes, minimised, phonon
    from .molecule import molecular_hessian, molecular_modes

    _reset_cache(minimised, workdir, ["vib"])
    delta = settings.delta or 0.005
    hessian = molecular_hessian(minimised, workdir, delta=delta)
    np.save(workdir / "hessian_eV_A2.npy", hessian)
    modes = molecular_modes(minimised, hessian, symprec=settings.symprec or 1e-3)
    modes.info["displacements"] = 6 * len(minimised)
    log(f"Hessian: central differences of forces, {6 * len(minimised)} displacements of {delta:g} A; "
        f"{modes.info['rigid_body_motions_removed']} rigid-body motions projected out")
    return modes, minimised, None


# ------------------------------------------------------------------------ Born charges

def born_from_model(model_path, atoms) -> np.ndarray:
    """``Z*`` (N, 3, 3, e) of ``atoms`` predicted by a saved polarization model."""
    from ..model import PolarizationModel

    model = PolarizationModel.load(model_path)
    _, z = model.predict(atoms, where="the minimised structure")
    return np.asarray(z, dtype=float)


def born_from_file(path, atoms) -> tuple[np.ndarray, np.ndarray | None]:
    """``Z*`` (N, 3, 3) and the dielectric tensor (or None) of the last structure of ``path``.

    The file's atoms must be the structure's, in the same order.
    """
    from ..data import get_born_charges
    from ..readers import read_born

    ref = read_born(path)[-1]
    if list(ref.get_chemical_symbols()) != list(atoms.get_chemical_symbols()):
        raise InputError(f"{path}: its atoms ({ref.get_chemical_formula()}, {len(ref)}) are not the "
                         f"structure's ({atoms.get_chemical_formula()}, {len(atoms)}) in the same order")
    eps = None
    if ref.calc is not None and "dielectric_tensor" in ref.calc.results:
        eps = np.asarray(ref.calc.results["dielectric_tensor"], dtype=float).reshape(3, 3)
    return get_born_charges(ref), eps


def born_from_charges(charges: dict, atoms) -> np.ndarray:
    """Rigid-ion ``Z*_i = q_i 1`` from per-species charges (e)."""
    missing = sorted(set(atoms.get_chemical_symbols()) - set(charges))
    if missing:
        raise InputError(f"--charges: no charge for {', '.join(missing)}")
    return np.array([charges[s] * np.eye(3) for s in atoms.get_chemical_symbols()])


def attach_born_charges(modes: NormalModes, born_unit_cell, phonon=None) -> np.ndarray:
    """Project ``Z*`` of the structure's atoms on the modes (crystals: on the primitive cell).

    Returns the Born charges of the atoms the modes run over.
    """
    z = np.asarray(born_unit_cell, dtype=float)
    if phonon is not None:
        z = z[primitive_to_unit_cell(phonon)]
    modes.set_born_charges(z)
    return z


def primitive_to_unit_cell(phonon) -> np.ndarray:
    """Index in the given (unit) cell of each atom of phonopy's primitive cell."""
    sc = phonon.supercell
    return np.array([sc.u2u_map[sc.s2u_map[p]] for p in phonon.primitive.p2s_map], dtype=int)


def add_lo_modes(modes: NormalModes, phonon, born_primitive, eps_inf, q_direction) -> None:
    """LO modes along ``q_direction`` from phonopy's NAC (``modes.nac``)."""
    from .crystal import gamma_modes

    with_nac = gamma_modes(phonon, born_primitive, eps_inf, q_direction=q_direction)
    modes.nac = with_nac.nac


def asr_violation(born) -> float:
    """Largest element of ``sum_i Z*_i`` (e): zero for a neutral cell (acoustic sum rule)."""
    return float(np.abs(np.asarray(born).sum(axis=0)).max())
