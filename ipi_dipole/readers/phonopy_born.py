"""Born effective charges from a phonopy ``BORN`` file and its unit cell.

A BORN file holds a comment or unit factor (line 1), the dielectric tensor (line 2, 9 numbers)
and one 9-number line per *symmetry-independent* atom of the unit cell (``xx xy xz yx ... zz``).
The charges of the other atoms are generated with phonopy's own reader
(``phonopy.file_IO.parse_BORN_from_strings``: spglib symmetry of the unit cell,
``Z_i = R Z_j R^T`` for the operation ``R`` taking the independent atom ``j`` to ``i``), so
the expansion is exactly the one ``phonopy --nac`` uses. A BORN file that lists every atom of
the cell (as for a cell without symmetry, ``--nosym``) is taken as it is.

Index convention: row ``a`` of each tensor is the electric-field direction. phonopy's
non-analytic correction contracts the wave vector with that first index
(``DynamicalMatrixWang._get_charge_sum``: ``np.dot(q, born)``), as Gonze and Lee's
``(q . Z*)_b`` requires, and ``phonopy-vasp-born`` / ``phonopy-qe-born`` copy VASP's and QE's
field-major rows unchanged; so ``row a, column b = Z[i, a, b] = dM_a/dx_ib``, our
convention, stored as printed. The tests check the expanded set against the unit cell's
symmetry (``Z_j = R Z_i R^T``) with tensors that are not symmetric (Al2O3).

The unit cell is given explicitly (``structure=``) or found beside the BORN file:
``POSCAR-unitcell``, ``POSCAR``, ``phonopy_disp.yaml``, ``phonopy.yaml`` for ``BORN``, and the
same names with the suffix for ``BORN_<tag>`` (``POSCAR-unitcell_<tag>``, ``POSCAR_<tag>``,
``phonopy_disp_<tag>.yaml``). A BORN file does not name its atoms: like phonopy, the reader
trusts that the unit cell is the right one, refusing a count of tensors that fits neither the independent atoms
nor all atoms, and warning when phonopy's first line ``# epsilon and Z* of atoms i j ...``
names other atoms than the cell's independent ones. Charges in
e, cell in Angstrom, pbc True.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
from ase import Atoms

from ..errors import InputError
from ._util import read_structure_file, read_text

CODE = "phonopy"
SYMPREC = 1e-5  # phonopy's default symmetry tolerance (Angstrom)


def looks_like_born(head: str) -> bool:
    lines = [line for line in head.splitlines() if line.strip()]
    if len(lines) < 3:
        return False
    try:
        return all(len([float(x) for x in line.split()]) == 9 for line in lines[1:])
    except ValueError:
        return False


def candidate_cells(path: Path) -> list[Path]:
    """Unit-cell files that conventionally sit beside a BORN file."""
    names = ["POSCAR-unitcell", "POSCAR", "phonopy_disp.yaml", "phonopy.yaml"]
    m = re.match(r"^BORN[_-](.+)$", path.name)
    if m:
        tag = m.group(1)
        names = [f"POSCAR-unitcell_{tag}", f"POSCAR-unitcell-{tag}", f"POSCAR_{tag}", f"POSCAR-{tag}",
                 f"phonopy_disp_{tag}.yaml", f"phonopy_{tag}.yaml"]
    return [path.parent / n for n in names if (path.parent / n).is_file()]


def read_born_file(path: str | Path, structure: str | Path | None = None, **unused) -> list[Atoms]:
    """Born charges of every atom of the unit cell, and the dielectric tensor, from a BORN file.

    Parameters
    ----------
    path : path
        The BORN file.
    structure : path, optional
        Its unit cell (POSCAR, phonopy yaml, any file ASE reads); looked for beside the BORN
        file when not given.

    Raises
    ------
    InputError
        No unit cell, a malformed line (named), or a number of tensors that matches neither the
        symmetry-independent atoms nor all atoms of the cell.
    """
    from phonopy.exception import BORNFileParseError
    from phonopy.file_IO import parse_BORN_from_strings
    from phonopy.structure.atoms import PhonopyAtoms
    from phonopy.structure.symmetry import Symmetry

    from .. import data

    path = Path(path)
    text = read_text(path)
    numbered = [(k, line) for k, line in enumerate(text.splitlines(), start=1) if line.strip()]
    lines = [line for _, line in numbered]
    for position, (k, line) in enumerate(numbered[1:], start=2):
        try:
            values = [float(x) for x in line.split()]
        except ValueError:
            values = []
        if len(values) != 9:
            what = "the dielectric tensor" if position == 2 else "a Born-charge tensor"
            raise InputError(f"{path}, line {k}: expected 9 numbers ({what}), got {line.strip()[:60]!r}")
    if len(lines) < 3:
        raise InputError(f"{path}: a BORN file needs a first line, the dielectric tensor and at least one "
                         "Born-charge line")
    n_tensors = len(lines) - 2

    if structure is None:
        found = candidate_cells(path)
        if not found:
            raise InputError(f"{path}: a BORN file holds no structure; give its unit cell with --structure "
                             "(none of POSCAR-unitcell, POSCAR, phonopy_disp.yaml found beside it)")
        structure = found[0]
    structure = Path(structure)
    cell_atoms = read_structure_file(structure)
    unitcell = PhonopyAtoms(symbols=cell_atoms.get_chemical_symbols(), cell=cell_atoms.cell.array,
                            scaled_positions=cell_atoms.get_scaled_positions(wrap=False))
    symmetry = Symmetry(unitcell, symprec=SYMPREC)
    independent = symmetry.get_independent_atoms()
    listed = re.match(r"^#.*atoms\s+([\d\s]+)$", lines[0].strip())
    if listed and n_tensors == len(independent):
        numbers = [int(x) for x in listed.group(1).split()]
        if numbers != [int(i) + 1 for i in independent]:
            # phonopy's own comment names the atoms of the cell the file was written for; another
            # setting of the same crystal is fine, another crystal is not: say so, loudly
            warnings.warn(f"{path}: its first line lists atoms {' '.join(map(str, numbers))}, but the "
                          f"symmetry-independent atoms of the unit cell {structure} are "
                          f"{' '.join(str(i + 1) for i in independent)}: make sure it is the same crystal "
                          "(wrong unit cell?)")
    if n_tensors == len(independent):
        is_symmetry = True
    elif n_tensors == len(unitcell):
        is_symmetry = False  # every atom listed: take them as they are
    else:
        raise InputError(f"{path}: {n_tensors} Born-charge lines, but the unit cell {structure} has "
                         f"{len(independent)} symmetry-independent atoms (numbers "
                         f"{', '.join(str(i + 1) for i in independent)}) and {len(unitcell)} atoms: wrong unit cell?")
    try:
        nac = parse_BORN_from_strings("\n".join(lines) + "\n", unitcell, symprec=SYMPREC, is_symmetry=is_symmetry)
    except (BORNFileParseError, ValueError) as exc:
        raise InputError(f"{path}: {exc}") from exc
    atoms = Atoms(cell_atoms.numbers, positions=cell_atoms.positions, cell=cell_atoms.cell, pbc=True)
    info = {"source": str(path), "code": CODE, "format": "phonopy-born", "structure_source": str(structure),
            "born_expanded": bool(is_symmetry and n_tensors < len(unitcell))}
    return [data.make_structure(atoms, np.asarray(nac["born"]), dielectric_tensor=np.asarray(nac["dielectric"]),
                                info=info)]
