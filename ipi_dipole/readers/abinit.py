"""Born effective charges and the dielectric tensor from an ABINIT derivative database (DDB).

What the DDB stores, and the conversion (as anaddb does it)
------------------------------------------------------------
A text DDB holds second derivatives of the total energy (Hartree) as lines
``idir1 ipert1 idir2 ipert2 Re Im`` in *reduced* coordinates: ``ipert = 1..natom`` is the
displacement of an atom along a primitive vector (derivative with respect to the reduced
coordinate ``xred``), ``ipert = natom + 2`` a homogeneous electric field in ABINIT's reduced
form. anaddb turns them into Cartesian values in ``cart29``/``cart39`` and reads the charges in
``dtech9``; this module repeats exactly those steps with numpy:

- atom index: ``d/dx_b = sum_j G[b, j] d/dxred_j``, ``G`` the reciprocal vectors without 2 pi
  (``gprimd``, columns);
- field index: ``d/dE_a = sum_i R[a, i] d/dEred_i / (2 pi)``, ``R`` the primitive vectors in
  bohr (``rprimd = acell * rprim``, columns);
- ``Z[atom, a, b] = zion(atom) delta_ab + (R D G^T)[a, b] / (2 pi)`` with ``D[i, j]`` the mixed
  (field ``i``, displacement ``j``) derivative, averaged over the two orderings that the DDB
  stores (``dtech9``: ``zeff(electric field direction, atomic direction, atom)``);
- ``eps_inf = 1 - 4 pi / Omega * (R E R^T) / (2 pi)^2`` with ``E`` the field-field block and
  ``Omega`` the cell volume in bohr^3.

Row ``a`` is therefore the field direction and column ``b`` the displacement: our
``Z[i, a, b] = dM_a/dx_ib = dF_ib/dE_a``. Because the two perturbations are labelled by their
``ipert``, not by their position on the line, there is no ambiguity of order. Verified against
the values anaddb gives for ``ZnO_gamma_becs_DDB`` (quoted in the fixtures' MANIFEST from
abipy's test suite, with anaddb's ``chneut = 1`` sum rule, reproduced here by
``data.enforce_asr``): Zn ``diag(2.15646571, 2.15646571, 2.19362823)``, ``eps_inf =
diag(5.42055574, 5.42055574, 4.98835236)``.

The data set gets the raw charges (no sum rule), the clamped-ion dielectric tensor and the
structure (``xred``, ``rprimd``, ``znucl``/``typat``) in Angstrom. Only the text DDB is
read; the netCDF ``DDB.nc`` is not.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.units import Bohr

from ..errors import InputError
from ._util import fortran_float, read_text

CODE = "abinit"
_DB_START = "**** Database of total energy derivatives ****"
_NUMBER = re.compile(r"^[-+]?(?:\d|\.\d)")


def looks_like_ddb(head: str) -> bool:
    return "**** DERIVATIVE DATABASE ****" in head


def read_ddb(path: str | Path, **unused) -> list[Atoms]:
    """Born charges, dielectric tensor and structure from an ABINIT DDB (text).

    Raises
    ------
    InputError
        Missing header variables, a damaged block (names the line), or no complete set of
        mixed electric-field / displacement derivatives at q = 0 (no Born charges).
    """
    from .. import data

    path = Path(path)
    lines = read_text(path).splitlines()
    try:
        start = next(k for k, line in enumerate(lines) if _DB_START in line)
    except StopIteration:
        raise InputError(f"{path}: no '{_DB_START.strip('* ')}' section: not a DDB, or truncated") from None
    header = _header(lines[:start])
    try:
        natom = int(header["natom"][0])
        ntypat = int(header["ntypat"][0])
        acell = np.array(header.get("acell", [1.0, 1.0, 1.0]), dtype=float)
        rprim = np.array(header["rprim"], dtype=float).reshape(3, 3)  # row i = primitive vector i
        xred = np.array(header["xred"], dtype=float).reshape(natom, 3)
        typat = np.array(header["typat"], dtype=float).astype(int)
        znucl = np.array(header["znucl"], dtype=float)
        zion = np.array(header["zion"], dtype=float)
    except KeyError as exc:
        raise InputError(f"{path}: header variable {exc.args[0]!r} missing: damaged DDB?") from exc
    except ValueError as exc:
        raise InputError(f"{path}: header variables have the wrong size ({exc})") from exc
    if len(typat) != natom or len(znucl) != ntypat or len(zion) != ntypat:
        raise InputError(f"{path}: typat/znucl/zion do not match natom = {natom}, ntypat = {ntypat}")

    rprimd = rprim * acell[:, None]           # rows = primitive vectors, bohr
    R = rprimd.T                              # columns = primitive vectors
    G = np.linalg.inv(R).T                    # columns = reciprocal vectors (no 2 pi)
    volume = abs(np.linalg.det(R))

    d2 = _gamma_second_derivatives(lines, start, path)
    efield = natom + 2

    def mixed(i, p1, j, p2):
        """Real part of d2E/(d p1_i d p2_j), averaging the two stored orders (None if absent)."""
        values = [v for v in (d2.get((i, p1, j, p2)), d2.get((j, p2, i, p1))) if v is not None]
        return float(np.mean(values)) if values else None

    z = np.empty((natom, 3, 3))
    missing = []
    for atom in range(1, natom + 1):
        red = [[mixed(i, efield, j, atom) for j in (1, 2, 3)] for i in (1, 2, 3)]  # [field i][displacement j]
        if any(v is None for row in red for v in row):
            missing.append(atom)
            continue
        z[atom - 1] = zion[typat[atom - 1] - 1] * np.eye(3) + R @ np.array(red) @ G.T / (2 * np.pi)
    if missing:
        raise InputError(f"{path}: no Born effective charges: the q = 0 block lacks mixed electric-field / "
                         f"atomic-displacement derivatives (ipert = {efield} with atoms {missing[:5]}); "
                         "run the DFPT with rfelfd and rfphon at q = 0")
    eps = None
    red = [[mixed(i, efield, j, efield) for j in (1, 2, 3)] for i in (1, 2, 3)]
    if all(v is not None for row in red for v in row):
        eps = np.eye(3) - 4 * np.pi / volume * (R @ np.array(red) @ R.T) / (2 * np.pi) ** 2

    atoms = Atoms(numbers=np.rint(znucl[typat - 1]).astype(int), cell=rprimd * Bohr,
                  scaled_positions=xred, pbc=True)
    info = {"source": str(path), "code": CODE, "format": "abinit-ddb"}
    m = re.search(r"Version number\s+(\d+)", "\n".join(lines[:5]))
    if m:
        info["code_version"] = f"DDB {m.group(1)}"
    return [data.make_structure(atoms, z, dielectric_tensor=eps, info=info)]


def _header(lines: list[str]) -> dict[str, list[str]]:
    """Header variables: a line starting with a name begins a variable, number lines continue it."""
    header: dict[str, list[float]] = {}
    key = None
    for line in lines:
        if "Description of the potentials" in line:
            break
        tokens = line.split()
        if not tokens:
            continue
        if not _NUMBER.match(tokens[0]):
            key, tokens = tokens[0], tokens[1:]
            header[key] = []
        if key is None:
            continue
        try:
            header[key].extend(fortran_float(t) for t in tokens)
        except ValueError:  # a text line ("DDB file merged by ..."), not a variable
            header.pop(key, None)
            key = None
    return header


def _gamma_second_derivatives(lines: list[str], start: int, path: Path) -> dict[tuple, float]:
    """All second derivatives at q = 0 (merged over blocks): {(idir1, ipert1, idir2, ipert2): Re}."""
    d2: dict[tuple, float] = {}
    k = start
    n_lines = len(lines)
    while k < n_lines:
        line = lines[k]
        if "List of bloks" in line:
            break
        m = re.match(r"^\s*2nd derivatives.*# elements\s*:\s*(\d+)", line)
        if not m:
            k += 1
            continue
        count = int(m.group(1))
        qline = lines[k + 1] if k + 1 < n_lines else ""
        q = qline.split()
        if not q or q[0] != "qpt":
            raise InputError(f"{path}, line {k + 2}: expected 'qpt' after the block header")
        try:
            qvec = np.array([fortran_float(t) for t in q[1:4]])
        except ValueError as exc:
            raise InputError(f"{path}, line {k + 2}: cannot read the q-point") from exc
        block = lines[k + 2:k + 2 + count]
        if len(block) < count:
            raise InputError(f"{path}, line {n_lines}: block at line {k + 1} announces {count} elements, "
                             f"the file ends after {len(block)}: truncated DDB")
        if np.all(np.abs(qvec) < 1e-8):
            for offset, row in enumerate(block):
                t = row.split()
                try:
                    key = tuple(int(x) for x in t[:4])
                    d2[key] = fortran_float(t[4])
                except (IndexError, ValueError) as exc:
                    raise InputError(f"{path}, line {k + 3 + offset}: expected 'idir1 ipert1 idir2 ipert2 "
                                     "Re Im'") from exc
        k += 2 + count
    return d2
