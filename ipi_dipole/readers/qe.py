"""Born effective charges from Quantum ESPRESSO: ph.x output and the fildyn file.

Index convention (what ph.x prints, and how it was verified)
-------------------------------------------------------------
``Effective charges (d Force / dE) in cartesian axis`` prints per atom three rows labelled
``Ex``, ``Ey``, ``Ez`` (``E*x`` ... in the sum-rule-corrected block). In QE's source
(``summarize_zeu``) row ``Ea`` is ``zstareu(a, 1:3, atom)``, the force components ``b`` on the
atom per unit field along ``a``, and QE's own non-analytic term (``rigid.f90``) contracts the
wave vector with that first index: ``row a, column b = dF_b/dE_a = Z[i, a, b]``, our
convention, stored as printed. The ``(d P / du)`` block labels rows ``Px``, ``Py``, ``Pz``: row
``a`` is again the polarization (dipole) component. The fildyn file writes
``zstareu(a, b, atom)`` row by row under ``Effective Charges E-U: Z_{alpha}{s,beta}``, the same
orientation (its numbers equal the ph.x block: checked in the tests on AlAs).

Blocks read (the last occurrence of each, i.e. ph.x's final summary):

- old format (QE <= 6.x): one ``Effective charges (d Force / dE) in cartesian axis`` block;
- new format (QE >= 6.x/7): ``... without acoustic sum rule applied (asr)`` (atom lines carry
  ``Mean Z*``), an ``Effective charges Sum`` matrix, and ``... with asr applied:`` (``E*x``
  rows), where QE spreads the residual evenly over the atoms;
- ``Effective charges (d P / du)`` (``zue = .true.``), used only when no d Force / dE block exists.

The data set gets the raw (no sum rule) charges, as ph.x computed them; the corrected block is
available from :func:`read_ph_blocks` and equals ``ipi_dipole.data.enforce_asr`` of the raw
ones (``convert --enforce-asr``). The dielectric tensor is ph.x's ``Dielectric constant in
cartesian axis`` (clamped ions). The structure is the one ph.x prints (alat from
``celldm(1)``, Cartesian positions in alat units with 5 decimals, lattice from ``ibrav`` and
``celldm`` when ``ibrav`` is 1, 2, 3, 4, 6 or 8, else from the 4-decimal ``crystal axes``);
give the pw.x input/output with ``structure=`` for all digits. Units: bohr -> Angstrom with
``ase.units.Bohr``; charges in e.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase import units
from ase.units import Bohr

from ..errors import InputError
from ._util import check_same_atoms, floats_in, read_structure_file, read_text, symbol_from_label

CODE = "quantum-espresso"
_AMU_RY = units._amu / units._me / 2  # fildyn masses are in Rydberg atomic units (911.444 per amu)
_ZEU = "Effective charges (d Force / dE) in cartesian axis"
_ZUE = "Effective charges (d P / du) in cartesian axis"
_EPS = "Dielectric constant in cartesian axis"
_ROW = re.compile(r"^\s*(E\*?|P)([xyz])\s*\((.*)\)\s*$")
_ATOM = re.compile(r"^\s*atom\s+(\d+)\s*([A-Za-z][\w-]*)?")


def looks_like_ph_out(head: str) -> bool:
    return "Program PHONON" in head


def looks_like_dyn(head: str) -> bool:
    return head.lstrip().startswith("Dynamical matrix file")


@dataclass
class PhBlocks:
    """Everything a ph.x output says about Born charges (e) and the dielectric tensor."""

    raw: np.ndarray | None = None       # d Force / dE without sum rule, (N, 3, 3)
    asr: np.ndarray | None = None       # d Force / dE with QE's sum rule, (N, 3, 3)
    dpdu: np.ndarray | None = None      # d P / du, (N, 3, 3)
    epsilon: np.ndarray | None = None   # (3, 3)
    labels: list[str] = field(default_factory=list)
    version: str | None = None


def read_ph_blocks(path: str | Path) -> PhBlocks:
    """Parse the Born-charge and dielectric blocks of a ph.x output (no structure)."""
    path = Path(path)
    lines = read_text(path).splitlines()
    nat = _header_int(lines, "number of atoms/cell", path)
    out = PhBlocks(version=_version(lines))
    for k, line in enumerate(lines):
        if _ZEU in line:
            z, labels = _charge_block(lines, k + 1, nat, path)
            if "with asr applied" in line:
                out.asr = z
            else:
                out.raw = z
            out.labels = labels
        elif _ZUE in line:
            out.dpdu, labels = _charge_block(lines, k + 1, nat, path)
            out.labels = out.labels or labels
        elif _EPS in line:
            out.epsilon = _matrix_after(lines, k + 1, path)
    return out


def read_ph_out(path: str | Path, structure: str | Path | None = None, **unused) -> list[Atoms]:
    """Born charges, dielectric tensor and structure from a ph.x output (``epsil = .true.``).

    Parameters
    ----------
    path : path
        ph.x standard output.
    structure : path, optional
        pw.x input or output (or any file ASE reads) with the same atoms in the same order,
        to replace ph.x's 5-decimal positions and 4-decimal lattice.

    Raises
    ------
    InputError
        No effective-charge block (run ph.x with ``epsil = .true.``), a truncated block (names
        the line), or a structure file that does not match.
    """
    from .. import data

    path = Path(path)
    blocks = read_ph_blocks(path)
    if blocks.raw is not None:
        z, which = blocks.raw, "d Force / dE (no sum rule)"
    elif blocks.asr is not None:
        z, which = blocks.asr, "d Force / dE (QE sum rule applied)"
    elif blocks.dpdu is not None:
        z, which = blocks.dpdu, "d P / du"
    else:
        raise InputError(f"{path}: no 'Effective charges' block: this ph.x run has no Born charges "
                         "(run ph.x at q = 0 with epsil = .true.)")
    atoms = _ph_structure(path, read_text(path).splitlines())
    if blocks.labels and any(not s.lower().startswith(t.lower()) for s, t in
                             zip(blocks.labels, atoms.get_chemical_symbols())):
        raise InputError(f"{path}: the effective-charge block lists atoms {blocks.labels}, "
                         f"the structure {atoms.get_chemical_symbols()}")
    if structure is not None:
        other = read_structure_file(structure)
        check_same_atoms(atoms, other, f"{structure} (structure for {path.name})")
        atoms = other
    atoms.pbc = True
    info = {"source": str(path), "code": CODE, "format": "qe-ph", "born_block": which}
    if blocks.version:
        info["code_version"] = blocks.version
    return [data.make_structure(atoms, z, dielectric_tensor=blocks.epsilon, info=info)]


def read_dyn(path: str | Path, structure: str | Path | None = None, **unused) -> list[Atoms]:
    """Born charges and dielectric tensor from a ph.x fildyn file at Gamma (``dynG``/``dyn1``).

    Reads ``Dielectric Tensor:`` and ``Effective Charges E-U: Z_{alpha}{s,beta}`` (last
    occurrence) and the structure in the header (``ibrav`` 0, 1, 2, 3, 4, 6, 8; else give
    ``structure=``).
    """
    from .. import data

    path = Path(path)
    lines = read_text(path).splitlines()
    if len(lines) < 4:
        raise InputError(f"{path}: too short for a ph.x dynamical-matrix file")
    try:
        head = lines[2].split()
        ntyp, nat, ibrav = int(head[0]), int(head[1]), int(head[2])
        celldm = [float(x) for x in head[3:9]]
    except (IndexError, ValueError) as exc:
        raise InputError(f"{path}, line 3: expected 'ntyp nat ibrav celldm(1..6)'") from exc
    k = 3
    axes = None
    if ibrav == 0:
        if "Basis vectors" not in lines[k]:
            raise InputError(f"{path}, line {k + 1}: ibrav = 0 but no 'Basis vectors'")
        axes = np.array([floats_in(lines[k + 1 + i])[:3] for i in range(3)])
        k += 4
    labels, masses, species = {}, {}, []
    try:
        for i in range(ntyp):
            m = re.match(r"^\s*(\d+)\s+'([^']*)'\s+(\S+)", lines[k + i])
            labels[int(m.group(1))] = m.group(2).strip()
            masses[m.group(2).strip()] = float(m.group(3)) / _AMU_RY
        k += ntyp
        tau = np.empty((nat, 3))
        for i in range(nat):
            t = lines[k + i].split()
            species.append(labels[int(t[1])])
            tau[i] = [float(x) for x in t[2:5]]
        k += nat
    except (AttributeError, IndexError, KeyError, ValueError) as exc:
        raise InputError(f"{path}, line {k + 1}: cannot read the species/atoms list of the header") from exc
    alat = celldm[0] * Bohr
    cell = _ibrav_cell(ibrav, celldm, path) if ibrav != 0 else axes * alat
    try:
        symbols = [symbol_from_label(s, mass=masses[s]) for s in species]
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from exc
    atoms = Atoms(symbols, positions=tau * alat, cell=cell, pbc=True)

    eps = z = None
    for j, line in enumerate(lines):
        if "Dielectric Tensor:" in line:
            eps = _matrix_after(lines, j + 1, path)
        elif "Effective Charges E-U" in line:
            z = np.empty((nat, 3, 3))
            p = j + 1
            for i in range(nat):
                while p < len(lines) and not lines[p].strip():
                    p += 1
                if p >= len(lines) or not re.match(rf"^\s*atom #\s*{i + 1}\s*$", lines[p]):
                    raise InputError(f"{path}, line {p + 1}: expected 'atom # {i + 1}' in the effective charges")
                rows = [floats_in(r) for r in lines[p + 1:p + 4]]
                if len(rows) != 3 or any(len(r) != 3 for r in rows):
                    raise InputError(f"{path}, line {p + 2}: effective charges of atom {i + 1} incomplete")
                z[i] = rows
                p += 4
    if z is None:
        raise InputError(f"{path}: no 'Effective Charges E-U' block: this dynamical matrix has no Born charges "
                         "(run ph.x with epsil = .true.; only the q = 0 file has them)")
    if structure is not None:
        other = read_structure_file(structure)
        check_same_atoms(atoms, other, f"{structure} (structure for {path.name})")
        atoms = other
        atoms.pbc = True
    info = {"source": str(path), "code": CODE, "format": "qe-dyn", "born_block": "E-U (d Force / dE)"}
    return [data.make_structure(atoms, z, dielectric_tensor=eps, info=info)]


# ---------------------------------------------------------------- helpers
def _version(lines: list[str]) -> str | None:
    for line in lines[:20]:
        m = re.search(r"Program PHONON v\.?\s*([\w.]+)", line)
        if m:
            return m.group(1)
    return None


def _header_int(lines: list[str], key: str, path: Path) -> int:
    for line in lines:
        if key in line:
            try:
                return int(line.split("=")[1].split()[0])
            except (IndexError, ValueError):
                break
    raise InputError(f"{path}: no '{key} =' line: not a ph.x output, or truncated before its header")


def _header_float(lines: list[str], pattern: str) -> float | None:
    for line in lines:
        m = re.search(pattern, line)
        if m:
            return float(m.group(1))
    return None


def _matrix_after(lines: list[str], start: int, path: Path) -> np.ndarray:
    """The 3x3 matrix on the first three non-blank lines from ``start`` (with or without parentheses)."""
    k = start
    while k < len(lines) and not lines[k].strip():
        k += 1
    rows = [floats_in(r) for r in lines[k:k + 3]]
    if len(rows) != 3 or any(len(r) != 3 for r in rows):
        raise InputError(f"{path}, line {k + 1}: dielectric tensor incomplete (truncated file?)")
    return np.array(rows)


def _charge_block(lines: list[str], start: int, nat: int, path: Path) -> tuple[np.ndarray, list[str]]:
    """Parse ``nat`` atoms of an effective-charge block starting after its header line."""
    z = np.empty((nat, 3, 3))
    labels = []
    k = start
    for i in range(nat):
        while k < len(lines) and not lines[k].strip():
            k += 1
        m = _ATOM.match(lines[k]) if k < len(lines) else None
        if not m or int(m.group(1)) != i + 1:
            raise InputError(f"{path}, line {k + 1}: expected 'atom {i + 1}' in the effective-charge block "
                             f"(truncated file?)")
        labels.append(m.group(2) or "")
        for a in range(3):
            row = _ROW.match(lines[k + 1 + a]) if k + 1 + a < len(lines) else None
            if not row or "xyz".index(row.group(2)) != a:
                raise InputError(f"{path}, line {k + 2 + a}: expected the E{'xyz'[a]} row of atom {i + 1}")
            values = floats_in(row.group(3))
            if len(values) != 3:
                raise InputError(f"{path}, line {k + 2 + a}: expected 3 numbers (overflow '*****'?)")
            z[i, a] = values
        k += 4
    return z, labels


def _ph_structure(path: Path, lines: list[str]) -> Atoms:
    nat = _header_int(lines, "number of atoms/cell", path)
    alat = _header_float(lines, r"celldm\(1\)=\s*([0-9.]+)")
    if not alat:
        alat = _header_float(lines, r"lattice parameter \(alat\)\s*=\s*([0-9.]+)")
    if not alat:
        raise InputError(f"{path}: no lattice parameter (alat) in the header")
    ibrav = int(_header_float(lines, r"bravais-lattice index\s*=\s*(-?\d+)") or 0)
    celldm = [alat] + [_header_float(lines, rf"celldm\({j}\)=\s*(-?[0-9.]+)") or 0.0 for j in range(2, 7)]
    cell = None
    if ibrav in _IBRAVS:
        cell = _ibrav_cell(ibrav, celldm, path)
    else:
        for k, line in enumerate(lines):
            if "crystal axes: (cart. coord. in units of alat)" in line:
                cell = np.array([floats_in(lines[k + 1 + i].split("=")[1])[:3] for i in range(3)]) * alat * Bohr
                break
        if cell is None:
            raise InputError(f"{path}: no 'crystal axes' in the header")
    for k, line in enumerate(lines):
        if "positions (alat units)" in line:
            symbols, tau = [], []
            for row in lines[k + 1:k + 1 + nat]:
                m = re.match(r"^\s*\d+\s+(\S+)\s+([0-9.]+)\s+tau\(\s*\d+\)\s*=\s*\((.*)\)", row)
                if not m:
                    raise InputError(f"{path}, line {k + 2 + len(tau)}: cannot read the atom position")
                try:
                    symbols.append(symbol_from_label(m.group(1), mass=float(m.group(2))))
                except ValueError as exc:
                    raise InputError(f"{path}: {exc}") from exc
                tau.append(floats_in(m.group(3))[:3])
            return Atoms(symbols, positions=np.array(tau) * alat * Bohr, cell=cell, pbc=True)
    raise InputError(f"{path}: no atomic positions in the header")


def _ibrav_cell(ibrav: int, celldm: list[float], path: Path) -> np.ndarray:
    """Lattice vectors (Angstrom) of QE's ``ibrav`` (pw.x documentation) from ``celldm`` (bohr)."""
    if ibrav not in _IBRAVS:
        raise InputError(f"{path}: ibrav = {ibrav} is not supported here; pass the pw.x output as "
                         "structure (convert --structure)")
    a = celldm[0] * Bohr
    return a * np.array(_IBRAVS[ibrav](celldm), dtype=float)


_IBRAVS = {
    1: lambda c: [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
    2: lambda c: [[-0.5, 0, 0.5], [0, 0.5, 0.5], [-0.5, 0.5, 0]],
    3: lambda c: [[0.5, 0.5, 0.5], [-0.5, 0.5, 0.5], [-0.5, -0.5, 0.5]],
    4: lambda c: [[1, 0, 0], [-0.5, np.sqrt(3) / 2, 0], [0, 0, c[2]]],
    6: lambda c: [[1, 0, 0], [0, 1, 0], [0, 0, c[2]]],
    8: lambda c: [[1, 0, 0], [0, c[1], 0], [0, 0, c[2]]],
}


# ---------------------------------------------------------------- pw.x output
#: pw.x's own words for an SCF that ran out of iterations
PW_NOT_CONVERGED = "convergence NOT achieved"
_QE_ERROR = re.compile(r"%{20,}\s*\n\s*Error in routine\s+(\S+)\s*\(\s*-?\d+\s*\):\s*\n(.*?)\n\s*%{20,}",
                       re.DOTALL)
_WALL = re.compile(r"^\s*(PWSCF|PHONON)\s*:.*?CPU\s+(.*?)\s*WALL\s*$", re.MULTILINE)


def qe_error(text: str) -> str | None:
    """The message of the last ``Error in routine`` block of a QE output, as one line
    (``"readpp: file .../Mg.UPF not found"``), or None when there is none."""
    found = _QE_ERROR.findall(text)
    if not found:
        return None
    routine, message = found[-1]
    return f"{routine}: {' '.join(message.split())}"


def qe_job_done(text: str) -> bool:
    """True when a pw.x/ph.x output ran to its end (``JOB DONE.``)."""
    return "JOB DONE." in text


def qe_wall_time(text: str) -> float | None:
    """The final wall time (s) that pw.x (``PWSCF :``) or ph.x (``PHONON :``) prints, parsing
    QE's ``1h 2m``, ``1m36.00s`` and ``13.07s`` forms; None when absent."""
    found = _WALL.findall(text)
    if not found:
        return None
    value = found[-1][1].replace(" ", "")
    m = re.fullmatch(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:([0-9.]+)s)?", value)
    if not m or not any(m.groups()):
        return None
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60 + s


def pw_band_edges(text: str) -> tuple[float | None, float | None]:
    """Highest occupied and lowest unoccupied levels (eV) of the last SCF in a pw.x output
    (``None`` when not printed: pw.x prints the lowest unoccupied level only when it has
    more bands than occupied ones)."""
    homo = lumo = None
    for line in text.splitlines():
        if "highest occupied, lowest unoccupied level" in line:
            values = floats_in(line.split(":", 1)[1])
            homo, lumo = values[0], values[1]
        elif "highest occupied level" in line:
            homo, lumo = floats_in(line.split(":", 1)[1])[0], None
    return homo, lumo


def read_pw_out(path: str | Path) -> Atoms:
    """Structure, energy (eV) and forces (eV/Angstrom) of the last SCF in a pw.x output.

    ASE's ``espresso-out`` reader does the reading and the Ry -> eV, Ry/bohr -> eV/Angstrom
    conversion; this function first checks the text so that a run that stopped or did not
    converge is a clear InputError rather than an assertion deep inside ASE.

    Raises
    ------
    InputError
        pw.x stopped with an error (its message is quoted), the SCF did not converge, the
        output is truncated, or it has no forces (run with ``tprnfor = .true.``).
    """
    import ase.io

    path = Path(path)
    text = read_text(path)
    error = qe_error(text)
    if error:
        raise InputError(f"{path}: pw.x stopped with an error: {error}")
    if PW_NOT_CONVERGED in text:
        m = re.search(rf"{PW_NOT_CONVERGED} after\s+(\d+)\s+iterations", text)
        after = f" after {m.group(1)} iterations" if m else ""
        raise InputError(f"{path}: the pw.x SCF did not converge{after}")
    if "Program PWSCF" not in text:
        raise InputError(f"{path}: not a pw.x output")
    if "!    total energy" not in text:
        raise InputError(f"{path}: no converged total energy ('!    total energy'): pw.x output truncated?")
    if "Forces acting on atoms" not in text:
        raise InputError(f"{path}: no forces: run pw.x with tprnfor = .true.")
    try:
        atoms = ase.io.read(path, index=-1, format="espresso-out")
    except Exception as exc:  # ASE's reader raises many types on odd files
        raise InputError(f"{path}: ASE cannot read this pw.x output ({type(exc).__name__}: {exc})") from exc
    return atoms
