"""Atomic polar tensors in plain XYZ frames (the liquid-water files of Schienbein's APTNN).

Format: XYZ frames, ``N`` then a comment line (``fmt='p:a'``), then per atom
``symbol x y z`` (Angstrom) followed by the 9 tensor components (e). The file has no cell:
periodic data need ``cell=`` (``convert --cell``); the liquid-water box of the fixtures is a
15.6627 A cube (from the upstream ``do.sh``).

Index convention: the 9 numbers are row-major with row = dipole component. Upstream
``scripts/compute-apt.py`` (pschienbein/AtomicPolarTensor) builds ``dx = dM/dx`` (a vector
over dipole components) from +/-0.01 A displacements and writes
``[dx[0], dy[0], dz[0], dx[1], dy[1], dz[1], dx[2], dy[2], dz[2]]``: element ``3a + b`` is
``dM_a/dx_b``, exactly our ``Z[i, a, b]``; stored as read.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from ..errors import InputError
from ._util import read_text

CODE = "apt-xyz"


def looks_like_apt_xyz(head: str) -> bool:
    lines = head.splitlines()
    if len(lines) < 3 or not lines[0].strip().isdigit():
        return False
    if "Properties=" in lines[1]:
        return False  # extended XYZ
    tokens = lines[2].split()
    if len(tokens) != 13 or tokens[0] not in chemical_symbols:
        return False
    try:
        [float(t) for t in tokens[1:]]
    except ValueError:
        return False
    return True


def read_apt_xyz(path: str | Path, cell: np.ndarray | None = None, **unused) -> list[Atoms]:
    """All frames of an APT XYZ file.

    Parameters
    ----------
    path : path
        The file.
    cell : array (3, 3), optional
        Lattice vectors (rows, Angstrom). With a cell the structures are periodic (pbc True)
        and a cell so small that two atoms come closer than 0.5 A is refused; without one they
        are written non-periodic.

    Raises
    ------
    InputError
        A malformed line (file and line named), a truncated frame, or a cell that puts atoms on
        top of each other.
    """
    from .. import data

    path = Path(path)
    lines = read_text(path).splitlines()
    frames = []
    k = 0
    while k < len(lines):
        if not lines[k].strip():
            k += 1
            continue
        try:
            n = int(lines[k].split()[0])
        except ValueError:
            raise InputError(f"{path}, line {k + 1}: expected the number of atoms of a frame") from None
        if k + 2 + n > len(lines):
            raise InputError(f"{path}, line {len(lines)}: frame {len(frames) + 1} announces {n} atoms but the file "
                             f"ends after {max(len(lines) - k - 2, 0)}: truncated file?")
        symbols, values = [], np.empty((n, 12))
        for i in range(n):
            tokens = lines[k + 2 + i].split()
            if len(tokens) != 13 or tokens[0] not in chemical_symbols[1:]:
                raise InputError(f"{path}, line {k + 3 + i}: expected 'symbol x y z' and 9 tensor components")
            try:
                values[i] = [float(t) for t in tokens[1:]]
            except ValueError:
                raise InputError(f"{path}, line {k + 3 + i}: not a number in {lines[k + 2 + i].strip()[:60]!r}") from None
            symbols.append(tokens[0])
        if not np.all(np.isfinite(values)):
            raise InputError(f"{path}: frame {len(frames) + 1} has NaN/inf values")
        atoms = Atoms(symbols, positions=values[:, :3])
        if cell is not None:
            atoms.cell = cell
            atoms.pbc = True
            _check_cell(atoms, path, len(frames) + 1)
        info = {"source": str(path), "code": CODE, "format": "apt-xyz", "frame": len(frames)}
        frames.append(data.make_structure(atoms, values[:, 3:].reshape(n, 3, 3), info=info))
        k += 2 + n
    if not frames:
        raise InputError(f"{path}: no frames")
    if cell is None:
        warnings.warn(f"{path}: no cell given (this format has none): structures are written non-periodic; "
                      "give --cell for periodic data (the Schienbein liquid-water box is --cell 15.6627)")
    return frames


def _check_cell(atoms: Atoms, path: Path, frame: int, closest: float = 0.5) -> None:
    from ase.neighborlist import neighbor_list

    i, j, d = neighbor_list("ijd", atoms, closest)
    if len(d):
        k = int(np.argmin(d))
        s = atoms.get_chemical_symbols()
        raise InputError(f"{path}, frame {frame}: with cell lengths {np.round(atoms.cell.lengths(), 4).tolist()} A "
                         f"atoms {i[k] + 1} ({s[i[k]]}) and {j[k] + 1} ({s[j[k]]}) are {d[k]:.3f} A apart: wrong --cell?")
