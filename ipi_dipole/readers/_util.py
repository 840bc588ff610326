"""Small helpers shared by the readers: opening (compressed) files, numbers, labels, structures."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from ..errors import InputError

_OPENERS = {".xz": lzma.open, ".lzma": lzma.open, ".gz": gzip.open, ".bz2": bz2.open}


def open_binary(path: str | os.PathLike):
    """Open ``path`` for reading bytes, decompressing ``.xz``/``.gz``/``.bz2`` on the fly."""
    path = Path(path)
    opener = _OPENERS.get(path.suffix.lower(), open)
    try:
        return opener(path, "rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({exc.strerror or exc})") from exc


def read_text(path: str | os.PathLike) -> str:
    """The whole text of a (possibly compressed) file; undecodable bytes are replaced."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with open_binary(path) as fh:
            data = fh.read()
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from exc
    return data.decode("utf-8", errors="replace")


def read_head(path: str | os.PathLike, nbytes: int = 65536) -> str:
    """The first ``nbytes`` (decompressed) of a file, for format detection."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with open_binary(path) as fh:
            data = fh.read(nbytes)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from exc
    return data.decode("utf-8", errors="replace")


def fortran_float(token: str) -> float:
    """Parse a Fortran real such as ``0.1D+01`` or ``1.0E-3``."""
    return float(token.replace("D", "E").replace("d", "e"))


_FLOAT = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eEdD][-+]?\d+)?"
FLOAT_RE = re.compile(_FLOAT)


def floats_in(text: str) -> list[float]:
    """All real numbers in ``text``, in order."""
    return [fortran_float(t) for t in FLOAT_RE.findall(text)]


def symbol_from_label(label: str, mass: float | None = None) -> str:
    """Chemical symbol of a code's atom label (``'Fe1'``, ``'NA'``, ``'O_h'`` -> Fe, Na, O).

    Codes let users name species freely, so ``'Os'`` may mean a surface oxygen: when the
    species' ``mass`` (amu) is known, the candidate (two- or one-letter) closest in mass wins.

    Raises
    ------
    ValueError
        When the label does not start with an element symbol.
    """
    from ase.data import atomic_masses, atomic_numbers

    letters = re.match(r"[A-Za-z]+", label.strip())
    word = letters.group(0) if letters else ""
    candidates = [word[:n].capitalize() for n in (2, 1) if len(word) >= n]
    candidates = [c for c in candidates if c in chemical_symbols[1:]]
    if not candidates:
        raise ValueError(f"atom label {label!r} does not start with an element symbol")
    if mass is None or len(candidates) == 1:
        return candidates[0]
    return min(candidates, key=lambda c: abs(atomic_masses[atomic_numbers[c]] - mass))


def read_structure_file(path: str | os.PathLike) -> Atoms:
    """A crystal structure from any file ASE reads, or a phonopy (``phonopy_disp.yaml``) file.

    Used for the unit cell of a phonopy BORN file and to override a QE ph.x structure.
    """
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: structure file not found")
    name = path.name.lower()
    if name.endswith((".yaml", ".yml")):
        from phonopy.interface.calculator import read_crystal_structure

        try:
            cell, _ = read_crystal_structure(str(path), interface_mode="phonopy_yaml")
        except Exception as exc:  # phonopy raises many types for bad yaml
            raise InputError(f"{path}: not a readable phonopy yaml structure ({exc})") from exc
        if cell is None:
            raise InputError(f"{path}: no unit cell found in this phonopy yaml file")
        return Atoms(cell.symbols, cell=cell.cell, scaled_positions=cell.scaled_positions, pbc=True)
    fmt = None
    if "poscar" in name or "contcar" in name:
        fmt = "vasp"
    elif name.endswith((".in", ".pwi")):
        fmt = "espresso-in"
    elif name.endswith(".pwo") or ("pw" in name and name.endswith(".out")) or "scf.out" in name:
        fmt = "espresso-out"
    try:
        atoms = ase.io.read(path, index=-1, format=fmt)
    except Exception as exc:  # ASE raises many types for unreadable files
        raise InputError(f"{path}: not a structure file ASE can read ({type(exc).__name__}: {exc}); "
                         "give a POSCAR, a pw.x input/output, a CIF, an extended XYZ ...") from exc
    return Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)


def check_same_atoms(reference: Atoms, other: Atoms, what: str, tolerance: float = 0.05) -> None:
    """Raise InputError unless ``other`` has the species and (up to lattice vectors) positions of
    ``reference``; ``tolerance`` in Angstrom."""
    if len(other) != len(reference):
        raise InputError(f"{what}: {len(other)} atoms, but the Born charges are for {len(reference)}")
    bad = np.where(other.numbers != reference.numbers)[0]
    if bad.size:
        i = int(bad[0])
        raise InputError(f"{what}: atom {i + 1} is {other.get_chemical_symbols()[i]}, but the Born "
                         f"charges are for {reference.get_chemical_symbols()[i]} (atom order must match)")
    if reference.cell.rank == 3:
        off = np.abs(other.cell.array - reference.cell.array).max()
        if off > tolerance:
            raise InputError(f"{what}: its cell differs from the Born-charge file's by {off:.3f} A")
        d = other.positions - reference.positions
        frac = np.linalg.solve(reference.cell.T, d.T).T
        d = (frac - np.round(frac)) @ reference.cell
    else:
        d = other.positions - reference.positions
    worst = np.linalg.norm(d, axis=1)
    if worst.max() > tolerance:
        i = int(worst.argmax())
        raise InputError(f"{what}: atom {i + 1} ({reference.get_chemical_symbols()[i]}) is "
                         f"{worst[i]:.3f} A away from its position in the Born-charge file")
