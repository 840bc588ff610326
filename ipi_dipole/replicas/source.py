"""Reading an equilibration run (NVT/NPT) to start NVE replicas from it.

What is read, and from where:

- frames (positions, cell, step) from an i-PI xyz trajectory or ``format='ase'`` extended
  XYZ (:func:`ipi_dipole.ipi_io.read_xyz_trajectory`), an i-PI pdb trajectory
  (``ipi.utils.io``), any other extended-XYZ or ASE-readable file (``ase.io``), or a list
  of i-PI checkpoint files (full-precision positions and momenta: ``<checkpoint
  overwrite='false'>``);
- velocities from an i-PI velocity (or momentum) trajectory with the same steps, the
  ``momenta`` or ``velocities`` arrays of an extended-XYZ file, or the checkpoints' momenta;
- the time step and temperature from an i-PI XML (the run's input or a checkpoint) or
  the properties file beside the trajectory;
- time series for the correlation time: the ``dipole`` extras or the potential energy
  column of the properties file.

Files beside the trajectory are recognised by their content
(:func:`ipi_dipole.ipi_io.sniff`), not their names. i-PI's files are read,
and its atomic units converted, by :mod:`ipi_dipole.ipi_io`; what is left
here is choosing the files of the run and turning them into frames.
Units inside: Angstrom, fs, Kelvin; velocities in Angstrom/fs.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ipi_dipole import ipi_io
from ipi_dipole.errors import InputError

_STEP_RE = re.compile(r"Step:\s*(\d+)")


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

def _kind(path: Path) -> tuple[str | None, str | None]:
    """What i-PI file ``path`` is (:func:`ipi_io.sniff`); ``(None, None)`` for anything else."""
    return ipi_io.sniff(path) or (None, None)


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
    if all(_kind(p)[0] == "ipi-xml" for p in paths):
        frames = [read_checkpoint_frame(p) for p in paths]
        return sorted(frames, key=lambda f: f.step)
    if len(paths) > 1:
        raise InputError(f"{paths[1]}: give one trajectory file, or several i-PI checkpoint files")
    path = paths[0]
    kind, quantity = _kind(path)
    if kind == "xyz":
        return _read_ipi_xyz_frames(path, quantity)
    if path.suffix.lower() == ".pdb":
        return _read_ipi_pdb_frames(path)
    return _read_ase_frames(path)


def _read_ipi_xyz_frames(path: Path, quantity: str) -> list[Frame]:
    """Frames of an i-PI positions trajectory (xyz, or extended XYZ from ``format='ase'``)."""
    if quantity != "positions":
        raise InputError(f"{path}: an i-PI trajectory of {quantity}, not of positions: give the positions "
                         f"trajectory (the {quantity} are found beside it)")
    traj = ipi_io.read_xyz_trajectory(path)
    steps = [int(s) if traj.steps_labelled else None for s in traj.steps]
    return [Frame(list(traj.symbols), traj.values[k], traj.cells[k], step, None,
                  f"{path}:{step if traj.steps_labelled else k}")
            for k, step in enumerate(steps)]


def _read_ipi_pdb_frames(path: Path) -> list[Frame]:
    from ipi.utils.io import iter_file

    bohr = ipi_io.angstrom_per_bohr()
    frames = []
    with open(path) as f:
        for i, d in enumerate(iter_file("pdb", f)):
            m = _STEP_RE.search(d.get("comment", "") or "")
            h = np.asarray(d["cell"].h, float) * bohr
            if np.allclose(np.abs(h), np.eye(3) * bohr):  # i-PI's placeholder when no cell is given
                h = np.zeros((3, 3))
            q = np.asarray(d["atoms"].q, float).reshape(-1, 3) * bohr
            frames.append(Frame(list(d["atoms"].names), q, h.T.copy(), int(m.group(1)) if m else None,
                                None, f"{path}:{i}"))
    return frames


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
    except (ET.ParseError, AttributeError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: not a readable i-PI checkpoint ({exc})") from exc
    step = ipi_io.ipi_input_from_root(root, path).step
    bohr = ipi_io.angstrom_per_bohr()
    vel = (p / m[:, None]) * ipi_io.velocity_to_angstrom_per_fs()
    return Frame(names, q * bohr, (h * bohr).T.copy(), step, vel, f"{path}")


def find_velocity_trajectory(path: Path, natoms: int) -> Path | None:
    """An i-PI velocity trajectory beside ``path`` with the same atom count (content-detected)."""
    found = []
    for p in _siblings(path):
        if p.suffix.lower() not in (".xyz", ".extxyz") or p.resolve() == Path(path).resolve():
            continue
        if _kind(p) == ("xyz", "velocities"):
            with open(p, "rb") as f:
                count = f.readline().split()
            if count and count[0] == str(natoms).encode():
                found.append(p)
    found = _prefer_same_prefix(path, found)
    return found[0] if len(found) == 1 else None


def read_velocity_frames(path: Path) -> dict[int, np.ndarray]:
    """Velocities (Angstrom/fs) of an i-PI velocity (or momentum) trajectory, by step."""
    if _kind(path)[0] != "xyz":
        raise InputError(f"{path}: not an i-PI velocity trajectory (no 'velocities{{...}}' in its comment line)")
    traj = ipi_io.read_xyz_trajectory(path)
    if traj.kind != "velocities":
        raise InputError(f"{path}: not an i-PI velocity trajectory (it holds {traj.kind})")
    if not traj.steps_labelled:
        raise InputError(f"{path}: frames carry no 'Step:' label; cannot match them to positions")
    return {int(s): v for s, v in zip(traj.steps, traj.values)}


# ------------------------------------------------------------------------- run info

def find_properties(path: Path) -> Path | None:
    found = [p for p in _siblings(path) if _kind(p)[0] == "properties"]
    found = _prefer_same_prefix(path, found)
    return found[0] if found else None


def find_dipole_extras(path: Path) -> Path | None:
    found = [p for p in _siblings(path) if _kind(p)[0] == "extras" and _kind(p)[1].lower() == "dipole"]
    found = _prefer_same_prefix(path, found)
    return found[0] if found else None


def find_run_xml(path: Path) -> list[Path]:
    """i-PI inputs and checkpoints beside ``path``: those sharing its prefix first."""
    found = [p for p in _siblings(path) if _kind(p)[0] == "ipi-xml"]
    same = [p for p in found if _prefix(p) == _prefix(path)]
    return same + [p for p in found if p not in same]


def run_info(trajectory: Path, properties: ipi_io.Properties | None, xml_files: list[Path]) -> RunInfo:
    """Time step and temperature of the equilibration run, from XML first, then the properties.

    Only a thermostat's temperature (``<ensemble><temperature>``) is taken from an XML: the
    temperature an NVE run drew its first velocities at is not the one it runs at, and
    the properties' mean temperature is then the better estimate.
    """
    info = RunInfo()
    for x in xml_files:
        try:
            part = ipi_io.read_ipi_input(x)
        except InputError:
            continue
        if info.timestep_fs is None and part.timestep_fs:
            info.timestep_fs, info.notes["timestep"] = part.timestep_fs, f"{x} <timestep>"
        if info.temperature_K is None and part.ensemble_temperature_k:
            info.temperature_K = part.ensemble_temperature_k
            info.notes["temperature"] = f"{x} <ensemble><temperature>"
    if properties is not None:
        if info.timestep_fs is None and properties.timestep_fs():
            info.timestep_fs = properties.timestep_fs()
            info.notes["timestep"] = f"{properties.path} time/step columns"
        temp = properties.get("temperature", "temperature", "kelvin")
        if info.temperature_K is None and temp is not None and len(temp):
            info.temperature_K = float(np.mean(temp))
            info.notes["temperature"] = f"{properties.path} mean of the temperature column"
    return info
