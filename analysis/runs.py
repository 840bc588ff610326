"""Find the replicas of a run directory by file content, and load each into memory.

A replica is the set of i-PI files sharing one directory and one output prefix
(``<output prefix='...'>``; files are named ``PREFIX.FILENAME...``). Directories are
searched recursively; files are recognised by their content (:func:`ipi_dipole.ipi_io.sniff`),
not their names: ``#EXTRAS(dipole)#`` and ``#EXTRAS(BEC)#`` trajectories, i-PI xyz
trajectories (velocities, momenta, positions), properties files and i-PI XML inputs or
checkpoints. i-PI's backups (``#name#N#``) are ignored. The prefix of a file is the
longest prefix declared by an i-PI XML in its directory that the name starts with, else
the name up to its first dot.

Users of other MD codes give plain arrays instead (:func:`replica_from_arrays`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ipi_dipole import ipi_io
from ipi_dipole.errors import InputError
from ipi_dipole.ipi_io import Series

log = logging.getLogger("ipi_dipole.analysis")


@dataclass
class RunFiles:
    """The files of one replica."""

    directory: Path
    prefix: str
    dipole: Path | None = None
    bec: Path | None = None
    velocities: Path | None = None
    positions: Path | None = None
    properties: Path | None = None
    inputs: list = field(default_factory=list)
    ignored: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.directory / self.prefix) if self.prefix else str(self.directory)

    def describe(self) -> str:
        parts = [f"{k}={getattr(self, k).name}" for k in ("dipole", "bec", "velocities", "properties")
                 if getattr(self, k) is not None]
        parts += [f"input={p.name}" for p in self.inputs[:1]]
        return ", ".join(parts)


def _prefix_of(name: str, declared: list[str]) -> str:
    for p in sorted(declared, key=len, reverse=True):
        if p and name.startswith(p + "."):
            return p
    return name.split(".", 1)[0] if "." in name else ""


def _set(run: RunFiles, attr: str, path: Path):
    old = getattr(run, attr)
    if old is not None and old != path:
        raise InputError(f"{run.name}: two {attr} files, {old.name} and {path.name} (several beads or "
                         "trajectories?); pass the files of one replica explicitly")
    setattr(run, attr, path)


def find_runs(paths) -> list[RunFiles]:
    """Group the i-PI files under ``paths`` (directories, searched recursively, or files) into replicas.

    Returns
    -------
    list of RunFiles
        One per (directory, prefix) holding a dipole, BEC or velocity trajectory, sorted by name.
    """
    files = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for root, dirs, names in os.walk(p):
                dirs.sort()
                files += [Path(root) / n for n in sorted(names) if not n.startswith("#")]
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"{p}: no such file or directory")
    kinds = {}
    for f in files:
        kind = ipi_io.sniff(f)
        if kind is not None:
            kinds[f] = kind
    declared = {}
    for f, (kind, _) in kinds.items():
        if kind == "ipi-xml":
            try:
                declared.setdefault(f.parent, []).append(ipi_io.read_ipi_input(f).prefix)
            except InputError as exc:
                log.info(f"ignored {f}: {exc}")
    runs: dict[tuple, RunFiles] = {}
    xmls = []
    for f, (kind, detail) in kinds.items():
        if kind == "ipi-xml":
            xmls.append(f)
            continue
        prefix = _prefix_of(f.name, declared.get(f.parent, []))
        run = runs.setdefault((f.parent, prefix), RunFiles(directory=f.parent, prefix=prefix))
        if kind == "extras" and detail.lower() == "dipole":
            _set(run, "dipole", f)
        elif kind == "extras" and detail.lower() == "bec":
            _set(run, "bec", f)
        elif kind == "xyz" and detail in ("velocities", "momenta"):
            _set(run, "velocities", f)
        elif kind == "xyz" and detail == "positions":
            _set(run, "positions", f)
        elif kind == "properties":
            _set(run, "properties", f)
        else:
            run.ignored.append(f)
    for f in xmls:
        try:
            inp = ipi_io.read_ipi_input(f)
        except InputError:
            continue
        for (directory, prefix), run in runs.items():
            if directory == f.parent and (prefix == inp.prefix or len(set(declared.get(directory, []))) == 1):
                run.inputs.append(f)
    found = [r for r in runs.values() if r.dipole or r.bec or r.velocities]
    for r in found:
        # inputs (with units) before checkpoints
        r.inputs.sort(key=lambda p: (ipi_io.read_ipi_input(p).is_checkpoint, p.name))
    return sorted(found, key=lambda r: r.name)


@dataclass
class Replica:
    """One trajectory's data in ipi-dipole units, ready for the estimators.

    Attributes
    ----------
    name : str
    dipole : Series, optional
        (T, 3) e*Angstrom.
    bec : Series, optional
        (T, N, 3, 3) e, ``Z[t, i, a, b] = dM_a/dx_ib``.
    velocities : Series, optional
        (T, N, 3) Angstrom/fs.
    step_fs : float, optional
        Time per i-PI step (or per frame for plain arrays) in fs.
    step_source : str
    temperature_k, volume_a3 : float, optional
        From the run's files (None when they do not say).
    temperature_source, volume_source : str
    kinetic_temperature_k : float, optional
        Mean of the properties file's temperature column.
    cell : array (3, 3), optional
        Angstrom, lattice vectors as rows (from the xyz trajectory).
    symbols : list of str, optional
    """

    name: str
    dipole: Series | None = None
    bec: Series | None = None
    velocities: Series | None = None
    step_fs: float | None = None
    step_source: str = ""
    temperature_k: float | None = None
    temperature_source: str = ""
    volume_a3: float | None = None
    volume_source: str = ""
    kinetic_temperature_k: float | None = None
    cell: np.ndarray | None = None
    symbols: list | None = None
    notes: list = field(default_factory=list)

    @property
    def n_atoms(self) -> int | None:
        for s in (self.velocities, self.bec):
            if s is not None:
                return s.values.shape[1]
        return None


def _fixed_com_factor(n_atoms: int | None, fixcom: bool) -> float:
    """i-PI's NVE ``temperature`` is 2K/(3N kB) even with the centre of mass fixed (its
    correction needs an ensemble temperature): 3N/(3N-3) makes it 2K/(n_dof kB)."""
    if not fixcom or not n_atoms or n_atoms < 2:
        return 1.0
    return 3.0 * n_atoms / (3.0 * n_atoms - 3.0)


def _manifest_temperature(run: RunFiles) -> tuple[float | None, str]:
    """The equilibration temperature recorded by ``ipi-dipole replicas prepare``, if any.

    NVE replicas carry no ensemble temperature, and the canonical temperature they were
    drawn from is the beta of the Green-Kubo formula.
    """
    for directory in list(run.directory.parents)[:2]:
        path = ipi_io.manifest_path(directory)
        if path.is_file():
            try:
                temperature = ipi_io.read_manifest(directory).equilibration_temperature_K
            except InputError:
                continue
            if temperature:
                return temperature, f"{path} (temperature of the equilibration run)"
    return None, ""


def load_replica(run: RunFiles, masses_da=None) -> Replica:
    """Read the files of one replica (units converted, steps deduplicated)."""
    rep = Replica(name=run.name)
    if run.dipole:
        rep.dipole = ipi_io.read_extras(run.dipole, "dipole")
    if run.bec:
        rep.bec = ipi_io.read_extras(run.bec, "BEC")
    if run.velocities:
        rep.velocities = ipi_io.read_xyz_trajectory(run.velocities, masses_da=masses_da)
        rep.symbols = rep.velocities.symbols
        rep.cell = rep.velocities.cells.mean(axis=0)
        if not np.any(rep.cell):
            rep.cell = None  # the comment lines give no cell
    if rep.bec is not None and rep.velocities is not None:
        nb, nv = rep.bec.values.shape[1], rep.velocities.values.shape[1]
        if nb != nv:
            raise InputError(f"{run.bec}: Born charges for {nb} atoms but {run.velocities} has {nv} atoms")
    fixcom = True
    for inp_path in run.inputs:
        inp = ipi_io.read_ipi_input(inp_path)
        fixcom = fixcom and inp.fixcom
        if rep.step_fs is None and inp.timestep_fs:
            rep.step_fs, rep.step_source = inp.timestep_fs, f"{inp_path.name} <timestep>"
        if rep.temperature_k is None and inp.temperature_k:
            rep.temperature_k, rep.temperature_source = inp.temperature_k, inp.temperature_source
        if inp.nbeads and inp.nbeads > 1:
            raise InputError(f"{inp_path}: {inp.nbeads} beads: ring-polymer runs are not supported "
                             "(the Green-Kubo formula here is classical)")
    if run.properties:
        props = ipi_io.read_properties(run.properties)
        temp = props.get("temperature", "temperature", "kelvin")
        if temp is not None and len(temp):
            rep.kinetic_temperature_k = float(np.mean(temp)) * _fixed_com_factor(rep.n_atoms, fixcom)
        vol = props.get("volume", "volume", "angstrom3")
        if vol is not None and len(vol):
            rep.volume_a3, rep.volume_source = float(np.mean(vol)), f"{run.properties.name} volume column (mean)"
        if rep.step_fs is None and props.timestep_fs():
            rep.step_fs, rep.step_source = props.timestep_fs(), f"{run.properties.name} time column"
    if rep.temperature_k is None:
        rep.temperature_k, rep.temperature_source = _manifest_temperature(run)
    if rep.volume_a3 is None and rep.cell is not None:
        rep.volume_a3, rep.volume_source = abs(float(np.linalg.det(rep.cell))), f"{run.velocities.name} cell"
    return rep


def replica_from_arrays(name: str, timestep_fs: float | None, dipole=None, velocities=None, bec=None,
                        cell=None) -> Replica:
    """A replica from plain arrays (other MD codes), every frame ``timestep_fs`` apart.

    Parameters
    ----------
    dipole : array (T, 3), optional
        Cell dipole in e*Angstrom.
    velocities : array (T, N, 3) or (T, 3N), optional
        Angstrom/fs.
    bec : array (T, N, 3, 3), (T, N, 9) or (T, 9N), optional
        Born charges in e, ``Z[t, i, a, b] = dM_a/dx_ib`` (row-major: dipole component first).
    cell : array (3, 3), optional
        Lattice vectors as rows, Angstrom.
    """
    rep = Replica(name=name, step_fs=timestep_fs, step_source="--timestep-fs",
                  cell=None if cell is None else np.asarray(cell, dtype=float))
    if dipole is not None:
        d = np.asarray(dipole, dtype=float)
        if d.ndim != 2 or d.shape[1] != 3:
            raise InputError(f"{name}: the dipole array must be shaped (frames, 3), got {d.shape}")
        rep.dipole = Series(np.arange(len(d)), d, Path(name), "dipole")
    if velocities is not None:
        v = np.asarray(velocities, dtype=float)
        if v.ndim == 2 and v.shape[1] % 3 == 0:
            v = v.reshape(len(v), -1, 3)
        if v.ndim != 3 or v.shape[2] != 3:
            raise InputError(f"{name}: velocities must be shaped (frames, N, 3) or (frames, 3N), got {v.shape}")
        rep.velocities = Series(np.arange(len(v)), v, Path(name), "velocities")
    if bec is not None:
        z = np.asarray(bec, dtype=float)
        if z.ndim == 2 and z.shape[1] % 9 == 0:
            z = z.reshape(len(z), -1, 9)
        if z.ndim == 3 and z.shape[2] == 9:
            z = z.reshape(len(z), -1, 3, 3)
        if z.ndim != 4 or z.shape[2:] != (3, 3):
            raise InputError(f"{name}: Born charges must be shaped (frames, N, 3, 3), (frames, N, 9) "
                             f"or (frames, 9N), got {np.asarray(bec).shape}")
        rep.bec = Series(np.arange(len(z)), z, Path(name), "BEC")
    if rep.bec is not None and rep.velocities is not None:
        if rep.bec.values.shape[1] != rep.velocities.values.shape[1]:
            raise InputError(f"{name}: Born charges for {rep.bec.values.shape[1]} atoms, velocities for "
                             f"{rep.velocities.values.shape[1]}")
    if rep.cell is not None:
        if rep.cell.shape != (3, 3):
            raise InputError(f"{name}: the cell must be 3x3, got {rep.cell.shape}")
        rep.volume_a3, rep.volume_source = abs(float(np.linalg.det(rep.cell))), "--cell"
    return rep


def load_array(path) -> np.ndarray:
    """A numpy ``.npy`` / ``.npz`` (first array) or whitespace text array from ``path``."""
    path = Path(path)
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return z[z.files[0]]
        return np.loadtxt(path, ndmin=2)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the array: {exc}") from None
