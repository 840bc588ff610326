"""Born effective charges and the electronic dielectric tensor from VASP: OUTCAR and vasprun.xml.

Index convention (what VASP prints, and how it was verified)
-------------------------------------------------------------
VASP writes, for each ion, three rows labelled 1, 2, 3; row ``a`` is the response to an
electric field along Cartesian ``a`` and its three numbers are the force (equivalently the
displacement) components ``b``: ``row a, column b = dF_b/dE_a = dM_a/dx_b``, which is our
``Z[i, a, b]``. The rows are stored without any transpose.

Checked on the files themselves:

- ``OUTCAR`` (LEPSILON, VASP 5.4.1, alpha-quartz at a displaced, C1 geometry): for every ion
  the cumulative block's row ``a`` equals the three numbers of the table
  ``POSITION  DIRECTION a  BORN EFFECTIVE CHARGE (rigid.aug. ionic)``, which VASP writes
  right after ``PIEZOELECTRIC TENSOR FIELD DIRECTION a``, i.e. while treating the field along
  ``a``; the tensors there are far from symmetric (Si ``Z[y,z] = -0.313``, ``Z[z,y] = +0.270``),
  so a transposed reading would fail ``tests/test_readers.py``.
- ``vasprun.xml`` (VASP 6.4.1, same material and mode) stores the same orientation: its
  ``born_charges`` rows agree with the OUTCAR rows within 0.01 e while the antisymmetric
  parts are 0.6 e.
- This matches VASP's source as quoted by others (``BORN(IDIR,:,N)`` written per row with
  ``IDIR`` the field direction, linear_response.F and pead.F) and the LCALCEPS documentation.

Headers read: the old ``BORN EFFECTIVE CHARGES (in e, cummulative output)`` (VASP <= 5.4.1),
the newer ``BORN EFFECTIVE CHARGES (including local field effects) (in |e|, cummulative
output)`` (5.4.4, 6.x), and the LCALCEPS ``BORN EFFECTIVE CHARGES (including local field
effects)``; a block ``(excluding local field effects)`` is used only when no other exists.
Not verified with a file: OUTCARs of IBRION = 7/8 runs, for which a VASP-forum post (2024)
says the rows are the displacement direction; the reader warns for those.

The dielectric tensor is the clamped-ion ``MACROSCOPIC STATIC DIELECTRIC TENSOR (including
local field effects in DFT)`` (vasprun: ``<varray name="epsilon">``); the ionic contribution
is not included. Structures come from ASE (OUTCAR) and phonopy's vasprun parser: the last
ionic step, or the first (undisplaced) one for phonon runs (IBRION 5-8). Born charges and
tensors are in e, positions and cell in Angstrom.
"""

from __future__ import annotations

import re
import warnings
import xml.parsers.expat
from pathlib import Path

import numpy as np
from ase import Atoms

from ..errors import InputError
from ._util import floats_in, open_binary, read_head, read_text

CODE = "vasp"
_BEC_HEADER = re.compile(r"^\s*BORN EFFECTIVE CHARGES\b")  # not the per-direction "... CHARGE (rigid"
_EPS_HEADER = "MACROSCOPIC STATIC DIELECTRIC TENSOR"


def looks_like_outcar(head: str) -> bool:
    first = head.lstrip()[:200]
    return first.startswith("vasp.") or ("NIONS" in head and "POTCAR:" in head)


def looks_like_vasprun(head: str) -> bool:
    return "<modeling>" in head and "<generator>" in head


def read_outcar(path: str | Path, **unused) -> list[Atoms]:
    """Born charges, dielectric tensor and structure from a VASP OUTCAR (LEPSILON or LCALCEPS).

    Returns
    -------
    list of ase.Atoms
        One structure (the last ionic step; the first for IBRION 5-8), pbc True, with
        ``born_charges`` ``Z[i, a, b] = dM_a/dx_ib`` (e) and the ``dielectric_tensor`` result
        when printed.

    Raises
    ------
    InputError
        No complete Born-charge block (names the file and the line of a truncated block).
    """
    import ase.io

    from .. import data

    path = Path(path)
    lines = read_text(path).splitlines()
    version = lines[0].split()[0].replace("vasp.", "") if lines and lines[0].strip().startswith("vasp.") else None
    nions = None
    ibrion = None
    for line in lines:
        if nions is None and "NIONS" in line:
            m = re.search(r"NIONS\s*=\s*(\d+)", line)
            nions = int(m.group(1)) if m else None
        if ibrion is None and re.match(r"^\s*IBRION\s*=", line):
            m = re.search(r"IBRION\s*=\s*(-?\d+)", line)
            ibrion = int(m.group(1)) if m else None
        if nions is not None and ibrion is not None:
            break
    if nions is None:
        raise InputError(f"{path}: no 'NIONS =' line: not a VASP OUTCAR, or truncated before the header")

    blocks = []  # (line number, header text, tensor or None if incomplete)
    for k, line in enumerate(lines):
        if _BEC_HEADER.match(line):
            blocks.append((k + 1, line.strip(), _outcar_bec_block(lines, k + 1, nions)))
    if not blocks:
        raise InputError(f"{path}: no 'BORN EFFECTIVE CHARGES' block: run VASP with LEPSILON = .TRUE. "
                         "or LCALCEPS = .TRUE. to get Born charges")
    complete = [b for b in blocks if b[2] is not None]
    if not complete:
        raise InputError(f"{path}, line {blocks[-1][0]}: the 'BORN EFFECTIVE CHARGES' block is incomplete "
                         f"(expected {nions} ions x 3 rows of 3 numbers): truncated file?")
    with_lfe = [b for b in complete if "excluding" not in b[1]]
    _, header, z = (with_lfe or complete)[-1]
    _warn_ibrion(path, ibrion)

    eps = _outcar_epsilon(lines)
    try:
        # phonon runs (IBRION 5-8) displace atoms after the reference step the charges belong to
        atoms = ase.io.read(path, format="vasp-out", index=0 if ibrion in _PHONON_RUNS else -1)
    except Exception as exc:  # ASE raises many types for damaged OUTCARs
        raise InputError(f"{path}: ASE cannot read the structure from this OUTCAR ({type(exc).__name__}: {exc})") from exc
    if len(atoms) != nions:
        raise InputError(f"{path}: structure has {len(atoms)} atoms but NIONS = {nions}")
    atoms.pbc = True
    info = {"source": str(path), "code": CODE, "format": "vasp-outcar", "born_block": header}
    if version:
        info["code_version"] = version
    return [data.make_structure(atoms, z, dielectric_tensor=eps, info=info)]


_PHONON_RUNS = (5, 6, 7, 8)


def _warn_ibrion(path: Path, ibrion: int | None) -> None:
    if ibrion in (7, 8):
        warnings.warn(f"{path}: IBRION = {ibrion}; the Born-charge rows were verified to be the field "
                      "direction only for IBRION = -1/0 LEPSILON and LCALCEPS runs: check the orientation "
                      "(a VASP-forum post says IBRION = 7/8 prints the displacement direction per row)")


def _outcar_bec_block(lines: list[str], start: int, nions: int) -> np.ndarray | None:
    """Parse ``nions`` ion blocks after a header line (index ``start`` is the line after it)."""
    k = start
    while k < len(lines) and (not lines[k].strip() or set(lines[k].strip()) <= {"-"}):
        k += 1
    z = np.empty((nions, 3, 3))
    for i in range(nions):
        if k + 3 >= len(lines):
            return None
        head = lines[k].split()
        if len(head) < 2 or head[0] != "ion" or not head[1].isdigit() or int(head[1]) != i + 1:
            return None
        for a in range(3):
            tokens = lines[k + 1 + a].split()
            if len(tokens) != 4 or tokens[0] != str(a + 1):
                return None
            try:
                z[i, a] = [float(t) for t in tokens[1:]]
            except ValueError:
                return None
        k += 4
    return z if np.all(np.isfinite(z)) else None


def _outcar_epsilon(lines: list[str]) -> np.ndarray | None:
    """The last clamped-ion dielectric tensor, preferring the one with DFT local-field effects."""
    found = {}
    for k, line in enumerate(lines):
        if _EPS_HEADER in line and "IONIC" not in line and "HEAD OF" not in line:
            rows = []
            for row in lines[k + 2:k + 5]:
                values = floats_in(row)
                if len(values) != 3:
                    break
                rows.append(values)
            if len(rows) == 3:
                found["excluding" not in line] = np.array(rows)
    return found.get(True, found.get(False))


def read_vasprun(path: str | Path, **unused) -> list[Atoms]:
    """Born charges, dielectric tensor and structure from a vasprun.xml (plain or compressed).

    Uses phonopy's expat parser of vasprun.xml (the one behind ``phonopy-vasp-born``) and keeps
    every atom's full tensor, unsymmetrised.

    Raises
    ------
    InputError
        Unparsable XML (names the line) or no ``born_charges`` array.
    """
    from phonopy.interface.vasp import VasprunxmlExpat

    from .. import data

    path = Path(path)
    with open_binary(path) as fh:
        parser = VasprunxmlExpat(fh)
        try:
            parser.parse()
        except xml.parsers.expat.ExpatError as exc:
            raise InputError(f"{path}, line {exc.lineno}: broken XML ({xml.parsers.expat.ErrorString(exc.code)}): "
                             "truncated vasprun.xml?") from exc
        except Exception as exc:  # truncated/corrupt compression (EOFError, LZMAError, ...), bad numbers
            raise InputError(f"{path}: cannot read this vasprun.xml ({type(exc).__name__}: {exc})") from exc
    born = parser.born
    try:
        cell = parser.cell
    except Exception as exc:  # no structure at all
        raise InputError(f"{path}: no structure in this vasprun.xml") from exc
    n = len(cell.symbols)
    if born.size == 0:
        raise InputError(f"{path}: no <array name=\"born_charges\">: run VASP with LEPSILON = .TRUE. "
                         "or LCALCEPS = .TRUE. to get Born charges")
    if born.shape != (n, 3, 3):
        raise InputError(f"{path}: born_charges has shape {born.shape}, expected ({n}, 3, 3)")
    eps = parser.epsilon if parser._epsilon else None
    if eps is not None and eps.shape != (3, 3):
        raise InputError(f"{path}: dielectric tensor has shape {eps.shape}, expected (3, 3)")
    m = re.search(r'name="IBRION">\s*(-?\d+)', read_head(path, 400_000))
    ibrion = int(m.group(1)) if m else None
    _warn_ibrion(path, ibrion)
    step = 0 if ibrion in _PHONON_RUNS else -1  # the reference structure of a phonon run is the first
    atoms = Atoms(cell.symbols, cell=parser.lattice[step], scaled_positions=parser.points[step], pbc=True)
    info = {"source": str(path), "code": CODE, "format": "vasp-xml"}
    if parser.version:
        info["code_version"] = parser.version.strip()
    return [data.make_structure(atoms, born, dielectric_tensor=eps, info=info)]
