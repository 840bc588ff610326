"""``RUN_DIR/manifest.json``: the record ``ipi-dipole replicas prepare`` writes of the replicas it
made, read back by ``replicas run`` and by the spectrum's run discovery.

This module is the only one that knows the file's key paths: the others use
:class:`Manifest` and :class:`ReplicaEntry`. The JSON layout (``"format": "ipi-dipole
replicas 1"``) is one object whose keys are the fields of :class:`Manifest`, in that
order, with ``replicas`` a list of objects whose keys are the fields of
:class:`ReplicaEntry` (``note`` and ``socket`` only when set).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ipi_dipole.errors import InputError

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "ipi-dipole replicas 1"


@dataclass
class ReplicaEntry:
    """One replica as prepared.

    Attributes
    ----------
    name : str
        Also its output prefix (``replica_000``).
    directory : str
        Relative to the run directory.
    input : str
        The i-PI input in ``directory``.
    input_sha256 : str
    source : str
        The starting frame, ``file:frame``.
    source_step : int or None
        Its i-PI step (None for frames without one).
    source_time_ps : float
        Its time in the equilibration run, ps.
    seed : int
        ``<prng><seed>`` of the replica.
    velocities : str
        Where the starting velocities came from.
    kinetic_temperature_K : float
        Kinetic temperature of the starting velocities, K.
    note : str, optional
    socket : dict, optional
        ``{"address": str, "port": int or None}`` for socket force fields.
    """

    name: str
    directory: str
    input: str
    input_sha256: str
    source: str
    source_step: int | None
    source_time_ps: float
    seed: int
    velocities: str
    kinetic_temperature_K: float
    note: str | None = None
    socket: dict | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        for optional in ("note", "socket"):
            if d[optional] is None:
                del d[optional]
        return d


@dataclass
class Manifest:
    """What ``replicas prepare`` made (see the module docstring for the file).

    Attributes
    ----------
    steps : int
        NVE steps each replica runs.
    replicas : list of ReplicaEntry
    source : dict
        The equilibration run: ``trajectory``, ``velocity_trajectory``, ``properties``
        (paths), ``frames_usable``, ``timestep_fs`` (fs), ``temperature_K`` (K), ``notes``.
    driver_command : str or None
        The driver command line template for socket force fields.
    nve_timestep_fs : float or None
        The replicas' time step, fs.
    """

    created: str
    command: str
    ipi_dipole_version: str | None
    ipi_version: str | None
    run_dir: str
    template: dict
    source: dict
    selection: dict
    velocities: str
    seed: int
    steps: int
    nve_timestep_fs: float | None
    checkpoint_stride: int
    forcefield: str
    driver_command: str | None
    replicas: list = field(default_factory=list)
    log: list = field(default_factory=list)
    format: str = MANIFEST_FORMAT

    @property
    def equilibration_temperature_K(self) -> float | None:
        """Temperature (K) of the run the replicas were drawn from: the Green-Kubo beta of NVE replicas."""
        t = self.source.get("temperature_K")
        return float(t) if t else None

    def names(self) -> list[str]:
        return [r.name for r in self.replicas]

    def replica(self, name: str) -> ReplicaEntry:
        for r in self.replicas:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_dict(self) -> dict:
        d = {"format": self.format}
        for f in fields(self):
            if f.name != "format":
                d[f.name] = getattr(self, f.name)
        d["replicas"] = [r.to_dict() for r in self.replicas]
        return d

    @classmethod
    def from_dict(cls, d: dict, where="manifest") -> Manifest:
        if not isinstance(d, dict):
            raise InputError(f"{where}: not a JSON object")
        if d.get("format") != MANIFEST_FORMAT:
            raise InputError(f"{where}: unknown manifest format {d.get('format')!r}")
        names = {f.name for f in fields(cls)}
        try:
            entries = [ReplicaEntry(**r) for r in d["replicas"]]
            return cls(**{k: v for k, v in d.items() if k in names and k != "replicas"}, replicas=entries)
        except (KeyError, TypeError) as exc:
            raise InputError(f"{where}: incomplete or unknown entries ({exc})") from None


def manifest_path(run_dir) -> Path:
    return Path(run_dir) / MANIFEST


def write_manifest(run_dir, manifest: Manifest) -> Path:
    """Write ``RUN_DIR/manifest.json`` atomically (a kill leaves the old one or the new one)."""
    path = manifest_path(run_dir)
    tmp = path.with_name(MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest.to_dict(), indent=1) + "\n")
    os.replace(tmp, path)
    return path


def read_manifest(run_dir) -> Manifest:
    """Read ``RUN_DIR/manifest.json``; an :class:`InputError` naming the file when it is missing or bad."""
    path = manifest_path(run_dir)
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no manifest: prepare the run with 'ipi-dipole replicas prepare'") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    return Manifest.from_dict(d, path)
