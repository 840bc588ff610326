"""Born charges from a CRYSTAL (14/17) output with ``INTENS`` / CPHF (``ATOMIC BORN CHARGE TENSOR``).

Reads the last ``DIRECT LATTICE VECTORS CARTESIAN COMPONENTS (ANGSTROM)`` and
``CARTESIAN COORDINATES - PRIMITIVE CELL`` of the output, the Born tensors of every atom, and
the electronic dielectric tensor from the CPHF table (``XX XY XZ YY YZ ZZ`` rows, EPSILON
column; CRYSTAL17 and CRYSTAL14 layouts, as ``phonopy-crystal-born`` reads them).

Index convention: NOT verified. The tensors are stored as printed (row ``a`` taken as the
field/dipole component), which is what ``phonopy-crystal-born`` does; the only fixture (NaCl)
is cubic, where both readings agree. The reader warns when a tensor is not symmetric, since
then the orientation matters.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from ..errors import InputError
from ._util import floats_in, read_text, symbol_from_label

CODE = "crystal"


def looks_like_crystal(head: str) -> bool:
    return bool(re.search(r"\*\s+CRYSTAL(?:\d\d)?\s+\*", head)) and "EEEEEEEEEE STARTING" in head


def read_crystal_out(path: str | Path, **unused) -> list[Atoms]:
    """Born charges, dielectric tensor and primitive cell from a CRYSTAL output."""
    from .. import data

    path = Path(path)
    lines = read_text(path).splitlines()
    born_at = [k for k, line in enumerate(lines) if "ATOMIC BORN CHARGE TENSOR" in line]
    if not born_at:
        raise InputError(f"{path}: no 'ATOMIC BORN CHARGE TENSOR': run CRYSTAL's FREQCALC with INTENS "
                         "(INTCPHF) to get Born charges")
    end = born_at[-1]
    cell = positions = symbols = None
    for k in range(end):
        if "DIRECT LATTICE VECTORS CARTESIAN COMPONENTS (ANGSTROM)" in lines[k]:
            cell = np.array([floats_in(lines[k + 2 + i])[:3] for i in range(3)])
        elif "CARTESIAN COORDINATES - PRIMITIVE CELL" in lines[k]:
            symbols, positions = [], []
            p = k + 4
            while p < len(lines) and lines[p].strip() and not lines[p].lstrip().startswith("*"):
                t = lines[p].split()
                try:
                    number = int(t[1]) % 100  # CRYSTAL adds 100s to the atomic number for other basis sets
                    symbols.append(chemical_symbols[number] if 0 < number < len(chemical_symbols)
                                   else symbol_from_label(t[2]))
                    positions.append([float(x) for x in t[3:6]])
                except (IndexError, ValueError) as exc:
                    raise InputError(f"{path}, line {p + 1}: cannot read the atom") from exc
                p += 1
    if cell is None or not symbols:
        raise InputError(f"{path}: no primitive cell / Cartesian coordinates before the Born charges")
    n = len(symbols)
    z = np.empty((n, 3, 3))
    p = end + 1
    for i in range(n):
        while p < len(lines) and not re.match(rf"^\s*ATOM\s+{i + 1}\s+\S+\s+DYNAMIC CHARGE", lines[p]):
            p += 1
        if p >= len(lines):
            raise InputError(f"{path}: Born charge of atom {i + 1} missing (truncated file?)")
        rows = []
        q = p + 1
        while len(rows) < 3 and q < len(lines):
            t = lines[q].split()
            if len(t) == 4 and t[0] == str(len(rows) + 1):
                rows.append([float(x) for x in t[1:]])
            q += 1
        if len(rows) != 3:
            raise InputError(f"{path}, line {p + 1}: Born charge of atom {i + 1} incomplete")
        z[i] = rows
        p = q
    eps = None
    for k, line in enumerate(lines):
        col = 4 if "FR.(eV) COMP." in line and "EPSILON" in line else (
            3 if "COMPONENT" in line and "EPSILON" in line and "ALPHA" in line else None)
        if col is None:
            continue
        try:
            v = [float(lines[k + 1 + j].split()[col]) for j in range(6)]
        except (IndexError, ValueError):
            continue
        eps = np.array([[v[0], v[1], v[2]], [v[1], v[3], v[4]], [v[2], v[4], v[5]]])
    asym = np.abs(z - z.transpose(0, 2, 1)).max()
    if asym > 1e-3:
        warnings.warn(f"{path}: Born tensors are not symmetric (by {asym:.3g} e) and the row/column "
                      "orientation of CRYSTAL's printout is not verified: check Z[a, b] = dM_a/dx_b")
    atoms = Atoms(symbols, positions=positions, cell=cell, pbc=True)
    info = {"source": str(path), "code": CODE, "format": "crystal"}
    return [data.make_structure(atoms, z, dielectric_tensor=eps, info=info)]
