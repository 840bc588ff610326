"""Reading an equilibration run (NVT/NPT) to start NVE replicas from it.

What is read, and from where:

- frames (positions, cell, step) from an i-PI xyz/pdb trajectory (``ipi.utils.io``), an
  extended-XYZ file (``ase.io``, including i-PI's ``format='ase'``), or a list of i-PI
  checkpoint files (full-precision positions and momenta: ``<checkpoint overwrite='false'>``);
- velocities from an i-PI velocity trajectory with the same steps, the ``momenta`` or
  ``velocities`` arrays of an extended-XYZ file, or the checkpoints' momenta;
- the time step and temperature from an i-PI XML (the run's input or a checkpoint) or
  the properties file beside the trajectory;
- time series for the correlation time: the ``dipole`` extras (i-PI ``#EXTRAS(dipole)#``
  files) or the potential energy column of the properties file.

Files beside the trajectory are recognised by their content, not their names.
Units inside: Angstrom, fs, Kelvin; velocities in Angstrom/fs. i-PI's atomic units are
converted here, with ``ipi.utils.units``.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError

_STEP_RE = re.compile(r"Step:\s*(\d+)")


def _au(dimension: str, unit: str, value=1.0):
    from ipi.utils.units import unit_to_internal

    return unit_to_internal(dimension, unit, value)


def bohr_per_angstrom() -> float:
    return _au("length", "angstrom")


def au_time_per_fs() -> float:
    return _au("time", "femtosecond")


def au_velocity_per_angstrom_per_fs() -> float:
    """i-PI velocity (bohr per atomic time unit) of 1 Angstrom/fs."""
    return bohr_per_angstrom() / au_time_per_fs()


def ipi_masses_dalton(symbols) -> np.ndarray:
    """Masses (Dalton) i-PI gives these labels, so that i-PI's momenta match our velocities."""
    from ipi.utils.units import Constants, Elements

    return np.array([Elements.mass(s) / Constants.amu for s in symbols])


@dataclass
class Frame:
    """One configuration of the equilibration run.

    Attributes
    ----------
    symbols : list of str
    positions : ndarray (N, 3)
        Angstrom.
    cell : ndarray (3, 3)
        Lattice vectors as rows, Angstrom (all zero: no cell).
    step : int or None
        MD step of the run, from i-PI's ``Step:`` label or the checkpoint.
    velocities : ndarray (N, 3) or None
        Angstrom/fs.
    origin : str
        ``file:frame`` for the manifest.
    """

    symbols: list
    positions: np.ndarray
    cell: np.ndarray
    step: int | None
    velocities: np.ndarray | None = None
    origin: str = ""


@dataclass
class RunInfo:
    """What the equilibration run says about itself; ``notes`` says where each value came from."""

    timestep_fs: float | None = None
    temperature_K: float | None = None
    notes: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- files

def _head(path: Path, n=4096) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(n).decode("utf-8", "replace")
    except OSError:
        return ""


def is_ipi_xml(path: Path) -> bool:
    head = _head(path).lstrip()
    return head.startswith("<") and "<simulation" in head


def is_properties(path: Path) -> bool:
    return bool(re.match(r"\s*#\s*col(umn|s\.)\s+\d+", _head(path, 400)))


def is_dipole_extras(path: Path) -> bool:
    return bool(re.match(r"\s*#EXTRAS\w*\(dipole\)#", _head(path, 200)))


def xyz_quantity(path: Path) -> str | None:
    """The i-PI quantity of an xyz trajectory (``positions``, ``velocities``, ...) from its comment line."""
    lines = _head(path, 2000).splitlines()
    if len(lines) < 2 or not lines[0].strip().isdigit():
        return None
    m = re.search(r"(\w+)\{\w*\}", re.sub(r"cell\{\w*\}", "", lines[1]))
    if m:
        return m.group(1)
    return "positions" if "CELL" in lines[1] else None


def _siblings(path: Path) -> list[Path]:
    return sorted(p for p in Path(path).resolve().parent.iterdir()
                  if p.is_file() and not p.name.startswith("#"))


def _prefix(path: Path) -> str:
    return Path(path).name.split(".")[0]


def _prefer_same_prefix(path: Path, candidates: list[Path]) -> list[Path]:
    same = [c for c in candidates if _prefix(c) == _prefix(path)]
    return same or candidates


# ---------------------------------------------------------------------------- frames

def read_frames(paths: list[Path]) -> list[Frame]:
    """Frames of an equilibration trajectory, or of a list of i-PI checkpoints."""
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.is_file():
            raise InputError(f"{p}: no such file")
    if all(is_ipi_xml(p) for p in paths):
        frames = [read_checkpoint_frame(p) for p in paths]
        return sorted(frames, key=lambda f: f.step)
    if len(paths) > 1:
        raise InputError(f"{paths[1]}: give one trajectory file, or several i-PI checkpoint files")
    path = paths[0]
    if is_ipi_xml(path):
        return [read_checkpoint_frame(path)]
    suffix = path.suffix.lower()
    if suffix == ".pdb":
        return _read_ipi_frames(path, "pdb")
    if suffix in (".xyz", ".extxyz"):
        head = _head(path, 2000).splitlines()
        if len(head) > 1 and "CELL" in head[1] and "Properties=" not in head[1]:
            return _read_ipi_frames(path, "xyz")
        return _read_ase_frames(path)
    return _read_ase_frames(path)


def _xyz_index(path: Path) -> list[tuple[int, int | None]]:
    """(byte offset, step) of every frame of an xyz file, without parsing atoms."""
    index = []
    with open(path, "rb") as f:
        while True:
            offset = f.tell()
            line = f.readline()
            if not line:
                break
            if not line.strip():
                continue
            try:
                natoms = int(line)
            except ValueError:
                raise InputError(f"{path}: expected an atom count at byte {offset}, got {line[:40]!r}")
            comment = f.readline().decode("utf-8", "replace")
            m = _STEP_RE.search(comment)
            for _ in range(natoms):
                if not f.readline():
                    return index  # a last frame cut short is left out
            index.append((offset, int(m.group(1)) if m else None))
    return index


def _read_ipi_frames(path: Path, mode: str, only: set | None = None) -> list[Frame]:
    from ipi.utils.io import iter_file, read_file

    a2b = bohr_per_angstrom()
    frames = []
    if mode == "xyz":
        entries = [(o, s) for o, s in _xyz_index(path) if only is None or s in only]
        with open(path, "rb") as raw:
            for i, (offset, step) in enumerate(entries):
                raw.seek(offset)
                text = io.TextIOWrapper(raw, encoding="utf-8")
                try:
                    d = read_file("xyz", text)
                finally:
                    text.detach()
                frames.append(_frame_from_ipi(d, a2b, step, f"{path}:{step}"))
        return frames
    with open(path) as f:
        for i, d in enumerate(iter_file(mode, f)):
            m = _STEP_RE.search(d.get("comment", "") or "")
            step = int(m.group(1)) if m else None
            if only is None or step in only:
                frames.append(_frame_from_ipi(d, a2b, step, f"{path}:{i}"))
    return frames


def _frame_from_ipi(d, a2b, step, origin) -> Frame:
    atoms, cell = d["atoms"], d["cell"]
    q = np.asarray(atoms.q, float).reshape(-1, 3) / a2b
    h = np.asarray(cell.h, float) / a2b
    if np.allclose(np.abs(h), np.eye(3) / a2b):  # i-PI's placeholder when no cell is given
        h = np.zeros((3, 3))
    return Frame(list(atoms.names), q, h.T.copy(), step, None, origin)


def _read_ase_frames(path: Path) -> list[Frame]:
    import ase.io
    from ase import units

    try:
        images = ase.io.read(path, index=":")
    except Exception as exc:  # ase raises many types for unreadable files
        raise InputError(f"{path}: cannot read as a trajectory ({exc})") from exc
    frames = []
    for i, a in enumerate(images):
        step = a.info.get("step")
        if step is None:
            m = _STEP_RE.search(str(a.info.get("ipi_comment", "")))
            step = int(m.group(1)) if m else None
        vel = None
        if "momenta" in a.arrays:
            vel = a.get_velocities() * units.fs
        elif "velocities" in a.arrays:
            vel = np.asarray(a.arrays["velocities"], float)  # taken as Angstrom/fs
        cell = a.cell.array.copy() if a.cell.rank == 3 else np.zeros((3, 3))
        frames.append(Frame(a.get_chemical_symbols(), a.positions.copy(), cell,
                            None if step is None else int(step), vel, f"{path}:{i}"))
    return frames


def read_checkpoint_frame(path: Path) -> Frame:
    """Centroid positions and velocities, cell and step of an i-PI checkpoint (full precision)."""
    from ipi.utils.io.inputs.io_xml import read_array

    try:
        root = ET.parse(path).getroot()
        beads = root.find("system/beads")
        nbeads = int(beads.get("nbeads", "1"))
        q = read_array(float, beads.find("q").text).reshape(nbeads, -1, 3).mean(axis=0)
        p = read_array(float, beads.find("p").text).reshape(nbeads, -1, 3).mean(axis=0)
        m = read_array(float, beads.find("m").text)
        names = [str(n) for n in read_array(str, beads.find("names").text)]
        h = read_array(float, root.find("system/cell").text).reshape(3, 3)
        step_el = root.find("step")  # i-PI leaves it out at step 0
        step = int(step_el.text) if step_el is not None and (step_el.text or "").strip() else 0
    except (ET.ParseError, AttributeError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: not a readable i-PI checkpoint ({exc})") from exc
    a2b = bohr_per_angstrom()
    vel = (p / m[:, None]) / au_velocity_per_angstrom_per_fs()
    return Frame(names, q / a2b, (h / a2b).T.copy(), step, vel, f"{path}")


def find_velocity_trajectory(path: Path, natoms: int) -> Path | None:
    """An i-PI velocity trajectory beside ``path`` with the same atom count (content-detected)."""
    found = []
    for p in _siblings(path):
        if p.suffix.lower() not in (".xyz", ".extxyz") or p.resolve() == Path(path).resolve():
            continue
        if xyz_quantity(p) == "velocities":
            head = _head(p, 100).split()
            if head and head[0] == str(natoms):
                found.append(p)
    found = _prefer_same_prefix(path, found)
    return found[0] if len(found) == 1 else None


def read_velocity_frames(path: Path, steps: set | None = None) -> dict[int, np.ndarray]:
    """Velocities (Angstrom/fs) of an i-PI velocity trajectory, by step."""
    if xyz_quantity(path) != "velocities":
        raise InputError(f"{path}: not an i-PI velocity trajectory (no 'velocities{{...}}' in its comment line)")
    out = {}
    a2b = au_velocity_per_angstrom_per_fs()
    for fr in _read_ipi_frames(path, "xyz", only=steps):
        if fr.step is None:
            raise InputError(f"{path}: frames carry no 'Step:' label; cannot match them to positions")
        # _frame_from_ipi divided by the length factor; undo it and convert velocity units
        out[fr.step] = fr.positions * bohr_per_angstrom() / a2b
    return out


# ------------------------------------------------------------------------- run info

def _xml_quantity(el, dimension):
    if el is None or not (el.text or "").strip():
        return None
    return _au(dimension, el.get("units", "atomic_unit"), float(el.text))


def _round(x: float) -> float:
    """Drop the digits that i-PI's 9-digit files and unit round trips make up."""
    return float(f"{x:.8g}")


def read_xml_info(path: Path) -> RunInfo:
    """Time step and thermostat temperature of an i-PI input or checkpoint."""
    info = RunInfo()
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return info
    dt = _xml_quantity(root.find("system/motion/dynamics/timestep"), "time")
    if dt:
        info.timestep_fs = _round(dt / au_time_per_fs())
        info.notes["timestep"] = f"{path} <timestep>"
    t = _xml_quantity(root.find("system/ensemble/temperature"), "temperature")
    if t and t > 0:
        info.temperature_K = _round(t / _au("temperature", "kelvin"))
        info.notes["temperature"] = f"{path} <ensemble><temperature>"
    return info


@dataclass
class Properties:
    path: Path
    columns: dict  # name -> (index, unit)
    data: np.ndarray

    def column(self, name):
        if name not in self.columns:
            return None, None
        i, unit = self.columns[name]
        return self.data[:, i], unit


def read_properties(path: Path) -> Properties:
    """An i-PI properties file: columns by name (with their units) and the numbers."""
    columns = {}
    with open(path) as f:
        for line in f:
            if not line.startswith("#"):
                break
            m = re.match(r"#\s*col(?:umn|s\.)\s+(\d+)(?:-(\d+))?\s+-->\s*([\w\(\)\.]+)(?:\{(\w+)\})?", line)
            if m:
                columns[m.group(3)] = (int(m.group(1)) - 1, m.group(4) or "atomic_unit")
    try:
        data = np.loadtxt(path, comments="#", ndmin=2)
    except ValueError:
        # a last line cut short by a kill: read the complete ones
        rows = [l.split() for l in open(path) if not l.startswith("#") and l.strip()]
        n = len(rows[0]) if rows else 0
        data = np.array([[float(x) for x in r] for r in rows if len(r) == n], float).reshape(-1, n)
    return Properties(Path(path), columns, data)


def find_properties(path: Path) -> Path | None:
    found = [p for p in _siblings(path) if is_properties(p)]
    found = _prefer_same_prefix(path, found)
    return found[0] if found else None


def find_dipole_extras(path: Path) -> Path | None:
    found = [p for p in _siblings(path) if is_dipole_extras(p)]
    found = _prefer_same_prefix(path, found)
    return found[0] if found else None


def find_run_xml(path: Path) -> list[Path]:
    """i-PI inputs and checkpoints beside ``path``: those sharing its prefix first."""
    found = [p for p in _siblings(path) if is_ipi_xml(p)]
    same = [p for p in found if _prefix(p) == _prefix(path)]
    return same + [p for p in found if p not in same]


def run_info(trajectory: Path, properties: Properties | None, xml_files: list[Path]) -> RunInfo:
    """Time step and temperature of the equilibration run, from XML first, then the properties."""
    info = RunInfo()
    for x in xml_files:
        part = read_xml_info(x)
        if info.timestep_fs is None and part.timestep_fs:
            info.timestep_fs, info.notes["timestep"] = part.timestep_fs, part.notes["timestep"]
        if info.temperature_K is None and part.temperature_K:
            info.temperature_K, info.notes["temperature"] = part.temperature_K, part.notes["temperature"]
    if properties is not None:
        step, _ = properties.column("step")
        time, unit = properties.column("time")
        if info.timestep_fs is None and step is not None and time is not None and len(step) > 1:
            dstep = step[-1] - step[0]
            if dstep > 0:
                info.timestep_fs = _round(_au("time", unit, (time[-1] - time[0]) / dstep) / au_time_per_fs())
                info.notes["timestep"] = f"{properties.path} time/step columns"
        temp, unit = properties.column("temperature")
        if info.temperature_K is None and temp is not None and len(temp):
            info.temperature_K = _au("temperature", unit, float(np.mean(temp))) / _au("temperature", "kelvin")
            info.notes["temperature"] = f"{properties.path} mean of the temperature column"
    return info


def read_dipole_series(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Steps and dipoles (i-PI units) of a ``#EXTRAS(dipole)#`` file."""
    steps, values = [], []
    current = None
    with open(path) as f:
        for line in f:
            if "#EXTRAS" in line:
                m = _STEP_RE.search(line)
                current = int(m.group(1)) if m else None
                continue
            fields = line.split()
            if current is not None and len(fields) >= 3:
                try:
                    values.append([float(x) for x in fields[:3]])
                except ValueError:
                    continue
                steps.append(current)
                current = None
    return np.array(steps, int), np.array(values, float).reshape(-1, 3)
