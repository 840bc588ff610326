"""Readers of Born effective charges from first-principles codes' own output files.

One entry point, :func:`read_born`, turns a file into data-set structures (see
:mod:`ipi_dipole.data`): positions and cell in Angstrom, pbc, the per-atom array
``born_charges`` with ``Z[i, a, b] = dM_a/dx_ib = dF_ib/dE_a`` (e; row = field/dipole
component ``a``, column = displacement ``b``), the electronic dielectric tensor as the
``dielectric_tensor`` result when the file has one, and ``atoms.info['source']`` (the file),
``['code']``, ``['format']``. Each reader's module docstring says which orientation its code
prints and how that was verified.

Formats (``format=`` names; detected from the content when not given):

==============  ===============================================================
vasp-outcar     VASP OUTCAR, LEPSILON / LCALCEPS (old and new headers)
vasp-xml        VASP vasprun.xml (also .xz/.gz/.bz2)
qe-ph           Quantum ESPRESSO ph.x output (old and new formats)
qe-dyn          Quantum ESPRESSO fildyn file at Gamma ("Effective Charges E-U")
abinit-ddb      ABINIT DDB (text), reduced -> Cartesian
phonopy-born    phonopy BORN + its unit cell (symmetry expansion by phonopy)
apt-xyz         XYZ frames with 9 APT components per atom (Schienbein); no cell
crystal         CRYSTAL14/17 output with ATOMIC BORN CHARGE TENSOR
extxyz          an ipi-dipole data set (extended XYZ with born_charges)
==============  ===============================================================
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms

from ..errors import InputError


@dataclass(frozen=True)
class Format:
    """A readable file format: its reader and content sniffer (module-relative names)."""

    name: str
    module: str
    reader: str
    sniffer: str
    description: str
    has_cell: bool = True            # False: the file has no cell, ``cell=`` applies
    takes_structure: bool = False    # True: ``structure=`` applies (needed or optional)


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("vasp-xml", "vasp", "read_vasprun", "looks_like_vasprun", "VASP vasprun.xml (LEPSILON/LCALCEPS)"),
    Format("vasp-outcar", "vasp", "read_outcar", "looks_like_outcar", "VASP OUTCAR (LEPSILON/LCALCEPS)"),
    Format("qe-ph", "qe", "read_ph_out", "looks_like_ph_out", "Quantum ESPRESSO ph.x output", takes_structure=True),
    Format("qe-dyn", "qe", "read_dyn", "looks_like_dyn", "Quantum ESPRESSO fildyn file at Gamma",
           takes_structure=True),
    Format("abinit-ddb", "abinit", "read_ddb", "looks_like_ddb", "ABINIT derivative database (text DDB)"),
    Format("crystal", "crystal", "read_crystal_out", "looks_like_crystal", "CRYSTAL output with Born tensors"),
    Format("extxyz", "__init__", "_read_extxyz", "_looks_like_extxyz", "ipi-dipole data set (extended XYZ)"),
    Format("apt-xyz", "apt_xyz", "read_apt_xyz", "looks_like_apt_xyz",
           "XYZ frames with 9 APT components per atom (no cell)", has_cell=False),
    Format("phonopy-born", "phonopy_born", "read_born_file", "looks_like_born",
           "phonopy BORN file (+ unit cell)", takes_structure=True),
)}


def _function(fmt: Format, name: str):
    if fmt.module == "__init__":
        return globals()[name]
    return getattr(importlib.import_module(f"{__name__}.{fmt.module}"), name)


def detect_format(path: str | os.PathLike) -> str:
    """Name of the format of ``path``, from its content (first 64 kB).

    Raises
    ------
    InputError
        When no reader recognises the file; the message lists the formats.
    """
    from ._util import read_head

    path = Path(path)
    head = read_head(path)
    if not head.strip():
        raise InputError(f"{path}: empty file")
    for fmt in FORMATS.values():
        if _function(fmt, fmt.sniffer)(head):
            return fmt.name
    hint = ""
    if "Program PWSCF" in head:
        hint = " (this is a pw.x output: Born charges come from ph.x with epsil = .true.)"
    raise InputError(f"{path}: unknown format{hint}; readable: {', '.join(FORMATS)} "
                     "(name one with --format if detection failed)")


def parse_cell(values: Sequence[float] | None) -> np.ndarray | None:
    """Lattice vectors (rows, Angstrom) from 1 (cubic), 3 (orthorhombic) or 9 numbers (a, b, c rows).

    Raises
    ------
    InputError
        Wrong count, non-finite or non-positive lengths, or a degenerate cell.
    """
    if values is None:
        return None
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 1:
        cell = np.eye(3) * v[0]
    elif v.size == 3:
        cell = np.diag(v)
    elif v.size == 9:
        cell = v.reshape(3, 3)
    else:
        raise InputError(f"--cell takes 1 (cubic), 3 (orthorhombic) or 9 numbers (a, b, c vectors), got {v.size}")
    if not np.all(np.isfinite(cell)):
        raise InputError(f"--cell: non-finite value in {v.tolist()}")
    lengths = np.linalg.norm(cell, axis=1)
    if np.any(lengths <= 0) or (v.size < 9 and np.any(v <= 0)):
        raise InputError(f"--cell: lattice vectors must have positive lengths, got {v.tolist()}")
    if abs(np.linalg.det(cell)) < 1e-6 * np.prod(lengths):
        raise InputError(f"--cell: the lattice vectors {v.tolist()} are (nearly) linearly dependent")
    return cell


def read_born(path: str | os.PathLike, format: str | None = None, cell=None,
              structure: str | os.PathLike | None = None, bec_key: str | None = None) -> list[Atoms]:
    """Structures with Born charges from one file.

    Parameters
    ----------
    path : path
        A file of one of :data:`FORMATS` (compressed ``.xz``/``.gz``/``.bz2`` where the code
        writes XML or text).
    format : str, optional
        Format name; detected from the content when omitted.
    cell : array, optional
        Lattice (Angstrom): 1, 3 or 9 numbers, or a (3, 3) array of row vectors. Only for
        formats without a cell (``apt-xyz``); the structures are then periodic.
    structure : path, optional
        A structure file: the unit cell of a phonopy BORN file (looked for beside it if not
        given), or a pw.x input/output replacing a QE file's printed (rounded) structure.

    Returns
    -------
    list of ase.Atoms
        Data-set structures (see :mod:`ipi_dipole.data`).

    Raises
    ------
    InputError
        Unknown format, a file without Born charges, a damaged file, or an option that does
        not apply; the message names the file (and line where known).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if format is None:
        format = detect_format(path)
    if format not in FORMATS:
        raise InputError(f"{path}: unknown format {format!r}; known: {', '.join(FORMATS)}")
    fmt = FORMATS[format]
    kwargs = {}
    if cell is not None:
        if fmt.has_cell:
            raise InputError(f"{path}: --cell given, but a {format} file carries its own cell "
                             "(--cell is for files without one, e.g. apt-xyz)")
        c = np.asarray(cell, dtype=float)
        kwargs["cell"] = parse_cell(c.ravel() if c.shape == (3, 3) else c)
    if structure is not None:
        if not fmt.takes_structure:
            raise InputError(f"{path}: --structure applies to phonopy BORN and QE files, not to {format}")
        kwargs["structure"] = Path(structure)
    if bec_key is not None:
        if format != "extxyz":
            raise InputError(f"{path}: --bec-key applies to extended-XYZ files, not to {format}")
        kwargs["bec_key"] = bec_key
    structures = _function(fmt, fmt.reader)(path, **kwargs)
    if not structures:
        raise InputError(f"{path}: no structures with Born charges")
    return structures


def _looks_like_extxyz(head: str) -> bool:
    lines = head.splitlines()
    return len(lines) > 1 and lines[0].strip().isdigit() and "Properties=" in lines[1]


def _read_extxyz(path: Path, bec_key: str | None = None, **unused) -> list[Atoms]:
    from .. import data

    structures = [data.rename_born_key(a, bec_key, where=f"{path}: structure {k}")
                  for k, a in enumerate(data.load(path))]
    missing = [k for k, a in enumerate(structures) if data.get_born_charges(a) is None]
    if missing:
        raise InputError(f"{path}: structures {missing[:10]} have no Born-charge array "
                         f"(looked for {', '.join(data.BEC_KEYS)}; name it with --bec-key)")
    for a in structures:
        a.info.setdefault("source", str(path))
        a.info.setdefault("format", "extxyz")
    return structures
