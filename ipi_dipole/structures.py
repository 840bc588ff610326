"""Built-in structures, usable by name wherever a command takes a structure file.

Usage::

    from ipi_dipole.structures import load_structure
    atoms = load_structure("water-dimer")     # or any file ASE can read
"""

from __future__ import annotations

import os
from pathlib import Path

from ase import Atoms

from .errors import InputError


def water_dimer() -> Atoms:
    """The hydrogen-bonded water dimer of the S22 set (Jurecka et al., PCCP 8, 1985 (2006)),
    positions in Angstrom, as shipped with ASE (``ase.collections.s22``).

    Atom order: O, H, H of the donor (its H at index 2 points at the acceptor), then O, H, H
    of the acceptor. Not periodic, no cell.
    """
    from ase.collections import s22

    ref = s22["Water_dimer"]
    return Atoms(ref.numbers, positions=ref.positions, pbc=False)


#: name -> function returning a fresh Atoms
BUILTIN = {
    "water-dimer": water_dimer,
}


def load_structure(spec: str | os.PathLike) -> Atoms:
    """A built-in structure by name (see :data:`BUILTIN`), or the last structure of a file
    that ASE can read (extended XYZ, POSCAR, ...), positions in Angstrom.

    ``atoms.info`` is kept (``charge`` and ``uhf``/``spin`` are read by the engines).
    """
    import ase.io

    key = str(spec)
    if key in BUILTIN:
        return BUILTIN[key]()
    path = Path(key)
    if not path.is_file():
        raise InputError(f"{key}: no such file, and not a built-in structure "
                         f"({', '.join(BUILTIN)})")
    try:
        atoms = ase.io.read(path)
    except Exception as exc:  # ase raises many types for unreadable files
        raise InputError(f"{path}: cannot read a structure ({exc})") from exc
    if isinstance(atoms, list):
        atoms = atoms[-1]
    atoms.calc = None
    return atoms
