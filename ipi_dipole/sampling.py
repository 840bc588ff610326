"""Configurations for a training set: Langevin molecular dynamics on a heating ramp.

Molecules and crystals alike: for a crystal (pbc in all directions) the overall rotation
is not removed (a periodic cell has none), only the centre-of-mass drift; the forces come
from any ASE calculator (``calculator_from_spec``: the driver's ``ase:MODULE:CLASS[:JSON]``),
e.g. a fitted force field, at a constant temperature (t_start = t_end).

The water-dimer set of Schmiedmayer & Kresse was sampled this way: Langevin MD with the
hydrogen mass raised to 8 u, a 1.5 fs time step, and the thermostat temperature raised
linearly from 10 K to 320 K, so that the frames span the low-temperature basin up to
room-temperature distortions. Every K-th frame is appended to an extended-XYZ file (and
flushed) with the engine's energy, forces and dipole, which the dynamics computes anyway.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms, units

from . import data
from .errors import InputError


def parse_masses(specs: Sequence[str] | None, atoms: Atoms | None = None) -> dict[str, float]:
    """``["H=8", "O=16"]`` -> ``{"H": 8.0, "O": 16.0}`` (atomic mass units).

    Raises InputError for malformed entries, unknown symbols, non-positive masses, or
    symbols absent from ``atoms`` (most likely a typo).
    """
    from ase.data import atomic_numbers

    masses: dict[str, float] = {}
    for spec in specs or ():
        symbol, sep, value = str(spec).partition("=")
        symbol = symbol.strip()
        try:
            mass = float(value)
        except ValueError:
            mass = float("nan")
        if not sep or not np.isfinite(mass):
            raise InputError(f"--mass {spec!r}: expected SYMBOL=MASS, e.g. H=8")
        if symbol not in atomic_numbers:
            raise InputError(f"--mass {spec!r}: {symbol!r} is not a chemical symbol")
        if mass <= 0:
            raise InputError(f"--mass {spec!r}: the mass must be positive (atomic mass units)")
        if atoms is not None and symbol not in atoms.get_chemical_symbols():
            raise InputError(f"--mass {spec!r}: the structure has no {symbol} atom "
                             f"(it is {atoms.get_chemical_formula()})")
        masses[symbol] = mass
    return masses


def parse_assignments(specs: Sequence[str] | None, option: str) -> dict[str, str]:
    """``["O=O.pz-van_ak.UPF"]`` -> ``{"O": "O.pz-van_ak.UPF"}``, checking the symbols."""
    from ase.data import atomic_numbers

    out: dict[str, str] = {}
    for spec in specs or ():
        symbol, sep, value = str(spec).partition("=")
        symbol, value = symbol.strip(), value.strip()
        if not sep or not value:
            raise InputError(f"{option} {spec!r}: expected SYMBOL=VALUE, e.g. O=O.pz-rrkjus.UPF")
        if symbol not in atomic_numbers:
            raise InputError(f"{option} {spec!r}: {symbol!r} is not a chemical symbol")
        out[symbol] = value
    return out


def calculator_from_spec(spec: str):
    """An ASE calculator from the driver's back-end spec ``ase:MODULE:CLASS[:JSON_KWARGS]``
    (e.g. ``ase:ase.calculators.emt:EMT``); InputError for anything else."""
    from ipi_dipole.driver.backends import ASEBackend, make_backend

    if not str(spec).strip().lower().startswith("ase:"):
        raise InputError(f"--calculator {spec}: expected ase:MODULE:CLASS[:JSON_KWARGS]")
    backend = make_backend(spec)
    assert isinstance(backend, ASEBackend)
    try:
        return backend.calculator_class(**backend.kwargs)
    except Exception as exc:  # any constructor error of a third-party calculator
        raise InputError(f"--calculator {spec}: cannot create it ({type(exc).__name__}: {exc})") from exc


def ramp_temperature(step: int, steps: int, t_start: float, t_end: float) -> float:
    """Thermostat temperature (K) for ``step`` of ``steps``: linear from t_start to t_end."""
    return t_start + (t_end - t_start) * (step / steps if steps else 1.0)


def langevin_heating(atoms: Atoms, calculator, output: str | os.PathLike, steps: int,
                     timestep_fs: float = 1.5, t_start: float = 10.0, t_end: float = 320.0,
                     friction: float = 0.01, masses: dict[str, float] | None = None,
                     every: int = 10, seed: int | None = None, progress: bool = True) -> int:
    """Langevin MD with a linear temperature ramp, appending every ``every``-th frame.

    Parameters
    ----------
    atoms : ase.Atoms
        Starting structure (Angstrom); not modified.
    calculator : ase.calculators.calculator.Calculator
        Energy and forces; its ``dipole`` result is stored too when it has one.
    output : path
        Extended-XYZ trajectory, appended to and flushed frame by frame. Each frame keeps
        positions, masses (u), momenta (ASE units) and the calculator's energy (eV),
        forces (eV/Angstrom) and dipole (e*Angstrom), with ``info`` keys ``step``,
        ``time_fs``, ``target_temperature_K`` and ``temperature_K`` (instantaneous).
    steps : int
        Number of MD steps; frames are written after steps 0, every, 2*every, ...
    timestep_fs : float
        Time step in fs.
    t_start, t_end : float
        Thermostat temperature in K at the first and the last step.
    friction : float
        Langevin friction in 1/fs (0.01 = a 100 fs relaxation time).
    masses : dict, optional
        Atomic masses in u by chemical symbol (e.g. ``{"H": 8.0}``).
    every : int
        Write every ``every``-th step.
    seed : int, optional
        Seed of the initial velocities and the thermostat noise.
    progress : bool
        Show a tqdm progress bar on stderr.

    Returns
    -------
    int
        Number of frames written.
    """
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, ZeroRotation
    from tqdm import tqdm

    if steps < 0:
        raise InputError(f"--steps must be >= 0, got {steps}")
    if every < 1:
        raise InputError(f"--every must be >= 1, got {every}")
    if not timestep_fs > 0:
        raise InputError(f"the time step must be positive, got {timestep_fs} fs")
    if not (t_start >= 0 and t_end >= 0):
        raise InputError(f"temperatures must be >= 0 K, got {t_start} and {t_end}")
    if not friction >= 0:
        raise InputError(f"the friction must be >= 0 (1/fs), got {friction}")

    md_atoms = atoms.copy()
    md_atoms.calc = calculator
    symbols = np.array(md_atoms.get_chemical_symbols())
    new_masses = md_atoms.get_masses()
    for symbol, mass in (masses or {}).items():
        new_masses[symbols == symbol] = mass
    md_atoms.set_masses(new_masses)
    rng = np.random.default_rng(seed)
    _thermalize(md_atoms, t_start, rng)
    Stationary(md_atoms)
    if len(md_atoms) > 2 and not np.any(md_atoms.pbc):  # a periodic cell has no rotation to remove
        ZeroRotation(md_atoms)
    md_atoms.set_constraint(FixCom())

    dyn = Langevin(md_atoms, timestep_fs * units.fs, temperature_K=t_start,
                   friction=friction / units.fs, fixcm=False, rng=rng)
    output = Path(output)
    written = 0
    bar = tqdm(total=steps, desc="sample", unit="step", disable=not progress, file=sys.stderr,
               dynamic_ncols=True)

    def set_temperature():
        dyn.set_temperature(temperature_K=ramp_temperature(dyn.nsteps, steps, t_start, t_end))

    def write_frame():
        nonlocal written
        results = md_atoms.calc.results
        info = dict(atoms.info)
        info.update(step=dyn.nsteps, time_fs=dyn.nsteps * timestep_fs,
                    target_temperature_K=ramp_temperature(dyn.nsteps, steps, t_start, t_end),
                    temperature_K=md_atoms.get_temperature())
        frame = data.make_structure(md_atoms, dipole=results.get("dipole"), energy=results.get("energy"),
                                    forces=results.get("forces"), info=info)
        frame.set_masses(md_atoms.get_masses())
        frame.set_momenta(md_atoms.get_momenta())
        data.save(output, [frame], append=True)
        written += 1

    def advance():
        if dyn.nsteps:
            bar.update(1)

    md_atoms.get_forces()  # results of the starting frame, for write_frame at step 0
    dyn.attach(set_temperature, interval=1)
    dyn.attach(write_frame, interval=every)
    dyn.attach(advance, interval=1)
    try:
        dyn.run(steps)
    finally:
        bar.close()
    return written


def _thermalize(atoms: Atoms, temperature_K: float, rng) -> None:
    """Maxwell-Boltzmann momenta (ASE >= 3.29 renamed the function)."""
    try:
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:  # ASE < 3.29
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta
    thermalize_momenta(atoms, temperature_K=temperature_K, rng=rng)
