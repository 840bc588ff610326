"""Readers of i-PI 3 trajectories (extras, xyz, extended XYZ), returning ipi-dipole's units
(Angstrom, fs, e), and the full-precision one-frame xyz writer for i-PI's ``<initialize><file>``.

What i-PI writes (checked against the sources of i-PI 3.3, ``ipi/engine/outputs.py``):

- ``<trajectory filename='dipole' extra_type='dipole'> extras </trajectory>`` writes
  ``PREFIX.dipole_0`` (one file per bead, no extension): for each output step a line
  `` #EXTRAS(dipole)# Step:  N`` and then the values as the force field sent them. Our
  driver sends atomic units: the dipole in e*bohr (3 numbers), the Born charges ``BEC``
  in e as a (3N, 3) block whose row ``3i+b`` is d/dx_ib and column is the dipole
  component. A trajectory with ``extra_type='dipole,BEC'`` crashes i-PI: two files.
- ``<trajectory filename='vel'> velocities </trajectory>`` writes ``PREFIX.vel_0.xyz``:
  i-PI xyz frames whose comment line carries ``CELL(abcABC): a b c alpha beta gamma``,
  ``Step: N``, ``velocities{atomic_unit}`` and ``cell{atomic_unit}`` (the units given
  with ``units=`` / ``cell_units=``). Values are printed with 6 significant digits.
- Steps are labelled identically in all files, so frames are matched by step. A run
  restarted from a checkpoint appends to the same files and may repeat steps written
  after the checkpoint: every reader keeps the last copy of each step, in step order.
  An incomplete last frame (a killed run) is dropped.

Properties files are read by :mod:`.properties`, input XMLs by :mod:`.inputs`; the unit
factors and the BEC layout are :mod:`.units`'.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ipi_dipole.errors import InputError

from .units import bec_from_ipi, convert, dipole_from_ipi, to_atomic_units, velocity_to_angstrom_per_fs

#: the readers' notes (dropped frames, repeated steps) are printed by ``ipi-dipole spectrum``,
#: which listens to this logger
log = logging.getLogger("ipi_dipole.analysis")

#: the line before each frame of an extras trajectory: groups (extra type, step)
EXTRAS_HEADER = re.compile(r"^[ \t]*#EXTRAS\w*\(([^)]*)\)#[ \t]*Step:[ \t]*(\d+)[^\n]*(?:\n|$)", re.M)
_STEP = re.compile(r"Step:\s*(\d+)")
#: the cell ``ipi.utils.io`` returns for an xyz comment line without ``CELL(...)``
_NO_CELL = -np.eye(3)
#: ``quantity{unit}`` tags of an xyz comment line
QUANTITY_TAG = re.compile(r"(\w+)\{([^}]*)\}")


# ----------------------------------------------------------------------------- steps

def keep_last_of_each_step(steps: np.ndarray) -> np.ndarray:
    """Indices that keep the last occurrence of every step, sorted by step.

    A restarted i-PI run appends the steps after its checkpoint again; the later copy is
    the one continued by the rest of the file.
    """
    steps = np.asarray(steps)
    order = np.argsort(steps, kind="stable")
    s = steps[order]
    last = np.ones(len(s), dtype=bool)
    last[:-1] = s[1:] != s[:-1]
    return order[last]


@dataclass
class Series:
    """A per-step quantity read from one file.

    Attributes
    ----------
    steps : array (T,) of int
        i-PI step labels, increasing, unique.
    values : array (T, ...)
        The quantity per step, in ipi-dipole units (see the reader).
    path : Path
        The file it came from.
    symbols : list of str, optional
        Atom names (xyz trajectories).
    cells : array (T, 3, 3), optional
        Cell per frame in Angstrom, lattice vectors as rows (xyz trajectories); all zero
        for a frame whose comment line gives no cell.
    kind : str
        What the values are (``dipole``, ``BEC``, ``velocities``, ``positions``, ...).
    steps_labelled : bool
        False when the frames carry no ``Step:`` label and ``steps`` are frame indices.
    """

    steps: np.ndarray
    values: np.ndarray
    path: Path
    kind: str
    symbols: list | None = None
    cells: np.ndarray | None = None
    notes: list = field(default_factory=list)
    steps_labelled: bool = True

    def __len__(self):
        return len(self.steps)

    def stride(self) -> int:
        """The step spacing between frames (raises when it is not constant)."""
        if len(self.steps) < 2:
            raise InputError(f"{self.path}: fewer than 2 frames")
        gaps = np.diff(self.steps)
        stride = int(gaps.min())
        if np.any(gaps != stride):
            bad = int(np.argmax(gaps != stride))
            raise InputError(f"{self.path}: frames are not evenly spaced: step {self.steps[bad]} is "
                             f"followed by step {self.steps[bad + 1]} (stride {stride} elsewhere); "
                             "frames are missing")
        return stride


# ----------------------------------------------------------------------------- extras

def read_extras(path, expect: str | None = None) -> Series:
    """Read an i-PI extras trajectory (``#EXTRAS(name)# Step: N`` blocks).

    Parameters
    ----------
    path : path-like
        File written by ``<trajectory extra_type='dipole'|'BEC'> extras </trajectory>``.
    expect : str, optional
        The extra type the file must hold (case-insensitive), e.g. ``"dipole"``.

    Returns
    -------
    Series
        ``kind`` is the extra type as written. For ``dipole`` the values are (T, 3) in
        e*Angstrom; for ``BEC`` they are (T, N, 3, 3) in e with ``Z[t, i, a, b] = dM_a/dx_ib``
        (converted from i-PI's (3N, 3) layout). Other extra types are returned as (T, ...)
        in the units the force field sent.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    heads = list(EXTRAS_HEADER.finditer(text))
    if not heads:
        raise InputError(f"{path}: no '#EXTRAS(...)# Step:' header: not an i-PI extras file")
    names = {h.group(1) for h in heads}
    if len(names) > 1:
        raise InputError(f"{path}: mixes extra types {sorted(names)}")
    name = heads[0].group(1)
    if name == "raw" or "," in name:
        raise InputError(f"{path}: extra_type '{name}' is not supported: write one trajectory with "
                         "extra_type='dipole' and another with extra_type='BEC'")
    if expect is not None and name.lower() != expect.lower():
        raise InputError(f"{path}: holds extras '{name}', expected '{expect}'")

    bodies = [text[h.end(): (heads[k + 1].start() if k + 1 < len(heads) else len(text))]
              for k, h in enumerate(heads)]
    rows = [body.count("\n") for body in bodies]
    frames = []
    for k, body in enumerate(bodies):
        try:
            vals = np.array(body.split(), dtype=float)
        except ValueError:
            if k == len(bodies) - 1 and k > 0 and not body.endswith("\n"):
                vals = np.empty(0)  # a number cut by a kill
            else:
                line = text.count("\n", 0, heads[k].start()) + 1
                raise InputError(f"{path}, line {line}: extras '{name}' at step {heads[k].group(2)} "
                                 "are not numbers") from None
        frames.append(vals)
    size = len(frames[0])
    notes = []
    if len(frames) > 1 and (len(frames[-1]) != size or not bodies[-1].endswith("\n")):
        notes.append(f"{path}: dropped the incomplete last frame (step {heads[-1].group(2)})")
        frames, rows, heads = frames[:-1], rows[:-1], heads[:-1]
    for k, vals in enumerate(frames):
        if len(vals) != size:
            line = text.count("\n", 0, heads[k].start()) + 1
            raise InputError(f"{path}, line {line}: step {heads[k].group(2)} has {len(vals)} numbers, "
                             f"the first frame has {size}")
    steps = np.array([int(h.group(2)) for h in heads])
    values = np.array(frames)
    if rows[0] > 1 and size % rows[0] == 0:
        values = values.reshape(len(frames), rows[0], size // rows[0])
    keep = keep_last_of_each_step(steps)
    if len(keep) < len(steps):
        notes.append(f"{path}: {len(steps) - len(keep)} repeated steps (restart): kept the last copy")
    steps, values = steps[keep], values[keep]

    if name.lower() == "dipole":
        if values.ndim != 2 or values.shape[1] != 3:
            raise InputError(f"{path}: a dipole needs 3 numbers per step, found {values.shape[1:]}")
        values = dipole_from_ipi(values)  # e*bohr -> e*Angstrom
    elif name.lower() == "bec":
        if values.ndim == 2:  # the (3N, 3) block written on one line per step
            values = values.reshape(len(values), -1, 3) if values.shape[1] % 9 == 0 else values[:, None]
        values = bec_from_ipi(values, path)
    for n in notes:
        log.info(n)
    return Series(steps=steps, values=values, path=path, kind=name, notes=notes)


# ----------------------------------------------------------------------------- xyz

def read_xyz_trajectory(path, masses_da: np.ndarray | None = None) -> Series:
    """Read an i-PI xyz trajectory (positions, velocities or momenta) with :mod:`ipi.utils.io`.

    Parameters
    ----------
    path : path-like
        File written by ``<trajectory format='xyz'> velocities </trajectory>`` (or positions,
        momenta); the units are read from the ``quantity{unit}`` and ``cell{unit}`` tags of
        the comment line (atomic units when absent, as i-PI assumes).
    masses_da : array (N,), optional
        Masses in Da, needed only to turn momenta into velocities (default: i-PI's element
        masses from the atom names).

    Returns
    -------
    Series
        ``kind`` is ``positions`` (values in Angstrom), ``velocities`` (Angstrom/fs; also
        for a momenta file), or the quantity named in the file (atomic units). Values are
        (T, N, 3); ``cells`` (T, 3, 3) in Angstrom with lattice vectors as rows; ``symbols``.
    """
    from ipi.engine.properties import Trajectories
    from ipi.utils.io import iter_file_raw

    path = Path(path)
    with open(path, "rb") as fh:
        n_lines = fh.read().count(b"\n")
    with open(path) as fh:
        first = fh.readline()
        second = fh.readline()
    if "Properties=" in second:
        return read_extxyz_trajectory(path, masses_da)
    try:
        n_atoms = int(first.split()[0])
    except (ValueError, IndexError):
        raise InputError(f"{path}, line 1: not an xyz file (no atom count)") from None
    n_frames = n_lines // (n_atoms + 2)
    notes = []
    if n_lines % (n_atoms + 2):
        notes.append(f"{path}: dropped the incomplete last frame")
    if n_frames == 0:
        raise InputError(f"{path}: no complete frame")

    data = np.empty((n_frames, n_atoms, 3))
    cells = np.empty((n_frames, 3, 3))
    steps = np.empty(n_frames, dtype=int)
    comment = ""
    labelled = True
    k = 0
    with open(path) as fh:
        try:
            for k, frame in enumerate(iter_file_raw("xyz", fh)):
                if k == n_frames:
                    break
                if frame["natoms"] != n_atoms:
                    raise InputError(f"{path}: frame {k} has {frame['natoms']} atoms, the first has {n_atoms}")
                data[k] = np.reshape(frame["data"], (n_atoms, 3))
                cells[k] = np.asarray(frame["cell"]).T
                if np.array_equal(cells[k], _NO_CELL):
                    cells[k] = 0.0  # i-PI's reader puts this in, in the file's units, when no CELL is given
                m = _STEP.search(frame["comment"])
                steps[k] = int(m.group(1)) if m else k
                labelled = labelled and m is not None
                if k == 0:
                    comment = frame["comment"]
                    symbols = [str(s) for s in frame["names"]]
                    ipi_masses = np.asarray(frame["masses"], dtype=float)
        except (ValueError, IndexError) as exc:
            raise InputError(f"{path}: cannot read frame {k}: {exc}") from None

    # the quantity{unit} tags, parsed here: i-PI's own auto_units misses units with a '/' (m/s)
    tags = dict(QUANTITY_TAG.findall(comment))
    what = next((w for w in tags if w != "cell"), "positions")
    known = Trajectories().traj_dict
    dimension = known[what]["dimension"] if what in known else "undefined"
    units = tags.get(what) or "atomic_unit"
    cell_units = tags.get("cell") or "atomic_unit"
    cells = cells * convert(1.0, "length", cell_units, "angstrom")
    if dimension == "length":
        values, kind = data * convert(1.0, "length", units, "angstrom"), "positions"
    elif dimension == "velocity":
        values, kind = data * velocity_to_angstrom_per_fs(units), "velocities"
    elif dimension == "momentum":
        if masses_da is None:
            masses_au = ipi_masses
        else:
            masses_au = np.asarray(masses_da, dtype=float) * to_atomic_units("mass", "dalton")
            if masses_au.shape != (n_atoms,):
                raise InputError(f"{path}: {n_atoms} atoms but {masses_au.size} masses")
        if np.any(masses_au <= 0):
            raise InputError(f"{path}: unknown mass for atoms {sorted(set(np.array(symbols)[masses_au <= 0]))}: "
                             "give --masses")
        velocity_au = data * to_atomic_units("momentum", units) / masses_au[None, :, None]
        values, kind = velocity_au * velocity_to_angstrom_per_fs("atomic_unit"), "velocities"
        notes.append(f"{path}: velocities from momenta / masses")
    else:
        values, kind = data, what
    keep = keep_last_of_each_step(steps)
    if len(keep) < len(steps):
        notes.append(f"{path}: {len(steps) - len(keep)} repeated steps (restart): kept the last copy")
    for n in notes:
        log.info(n)
    return Series(steps=steps[keep], values=values[keep], path=path, kind=kind, symbols=symbols,
                  cells=cells[keep], notes=notes, steps_labelled=labelled)


def read_extxyz_trajectory(path, masses_da: np.ndarray | None = None) -> Series:
    """Read an i-PI ``format='ase'`` trajectory (extended XYZ) with :mod:`ase.io`.

    i-PI stores the quantity as a per-atom array named after it (``velocities``, ...) or as
    the positions, in the units of the ``quantity{unit}`` tag of its ``ipi_comment`` (``ase``
    by default: Angstrom and Angstrom per ASE time unit). Returns what
    :func:`read_xyz_trajectory` returns.
    """
    import ase.io

    path = Path(path)
    frames = []
    try:
        for atoms in ase.io.iread(path, index=":", format="extxyz"):
            frames.append(atoms)
    except Exception as exc:  # a frame cut by a kill: keep the complete ones
        if not frames:
            raise InputError(f"{path}: cannot read the extended XYZ file: {exc}") from None
        log.info(f"{path}: dropped the incomplete last frame")
    comment = str(frames[0].info.get("ipi_comment", ""))
    tags = dict(QUANTITY_TAG.findall(comment))
    what = next((w for w in tags if w != "cell"), "positions")
    units = tags.get(what) or "ase"
    if what == "positions":
        values = np.array([a.positions for a in frames]) * convert(1.0, "length", units, "angstrom")
        kind = "positions"
    elif what in frames[0].arrays:
        data = np.array([a.arrays[what] for a in frames])
        if what == "velocities":
            values, kind = data * velocity_to_angstrom_per_fs(units), "velocities"
        elif what == "momenta":
            if masses_da is None:
                masses_da = frames[0].get_masses()
            velocity_au = (data * to_atomic_units("momentum", units)
                           / (np.asarray(masses_da, dtype=float) * to_atomic_units("mass", "dalton"))[None, :, None])
            values, kind = velocity_au * velocity_to_angstrom_per_fs("atomic_unit"), "velocities"
        else:
            values, kind = data, what
    else:
        raise InputError(f"{path}: no per-atom array '{what}' in the extended XYZ frames")
    steps, labelled = [], True
    for k, a in enumerate(frames):
        m = _STEP.search(str(a.info.get("ipi_comment", "")))
        steps.append(int(m.group(1)) if m else k)
        labelled = labelled and m is not None
    steps = np.array(steps)
    cells = np.array([a.cell.array for a in frames])
    keep = keep_last_of_each_step(steps)
    return Series(steps=steps[keep], values=values[keep], path=path, kind=kind,
                  symbols=frames[0].get_chemical_symbols(), cells=cells[keep], steps_labelled=labelled)


def write_ipi_xyz(path, symbols, values, h_angstrom, quantity: str, comment: str = ""):
    """Write one frame in i-PI's xyz format, at full precision, for ``<file mode='xyz'>``.

    i-PI's own writer (:func:`ipi.utils.io.print_file`) prints the cell as ``CELL(abcABC)``
    with 5 decimals and the values with 6 significant digits: enough for a trajectory,
    not for a starting frame whose energy must be conserved from its first step. i-PI's
    reader takes the ``CELL(H)`` form written here as it is.

    Parameters
    ----------
    symbols : list of str
    values : array (N, 3)
        In the unit named by ``quantity``.
    h_angstrom : array (3, 3)
        i-PI's cell matrix in Angstrom: lattice vectors as columns, upper triangular
        (see :func:`ipi_dipole.replicas.prepare.to_ipi_cell`).
    quantity : str
        The quantity and its unit as i-PI tags them, e.g. ``"positions{angstrom}"``.
    comment : str
        Appended to the comment line (e.g. ``Step: N``).
    """
    h = " ".join(f"{x:.12f}" for x in np.asarray(h_angstrom).ravel())
    with open(path, "w") as f:
        f.write(f"{len(symbols)}\n")
        f.write(f"# CELL(H): {h}  {quantity}  cell{{angstrom}}  {comment}\n")
        for s, (x, y, z) in zip(symbols, np.asarray(values)):
            f.write(f"{s:>4s} {x: .12e} {y: .12e} {z: .12e}\n")


