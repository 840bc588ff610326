"""Shared helpers of the model benchmarks (issue 3): cached data sets, metrics, timing.

Cached data live in benchmarks/_data/ (git-ignored; delete it to regenerate).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data"
FIXTURES = Path(os.environ.get("IPI_DIPOLE_FIXTURES", HERE.parent.parent / "shared" / "fixtures"))
BIN = Path(sys.executable).parent


def run(*args):
    """Run an ipi-dipole command (echoed), failing loudly."""
    cmd = [str(BIN / "ipi-dipole"), *map(str, args)]
    print("$ ipi-dipole", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True)


def dimer_sets():
    """Water-dimer training pool and test set: GFN2-xTB Langevin heating runs, labelled.

    Two independent trajectories (seeds 1 and 2) of Langevin MD as in Schmiedmayer & Kresse:
    H mass 8 u, 1.5 fs, thermostat 10 -> 320 K over 30 ps. Pool: every 20th step of run 1
    (1000 frames); test: every 100th step of run 2 (200 frames).
    """
    DATA.mkdir(exist_ok=True)
    sets = {}
    for name, seed, every in (("pool", 1, 20), ("test", 2, 100)):
        traj = DATA / f"dimer_md_{name}.extxyz"
        labelled = DATA / f"dimer_{name}.extxyz"
        if not labelled.exists() or not _complete(traj, labelled):
            if not traj.exists():
                run("sample", "water-dimer", "-o", traj, "--steps", 20000, "--mass", "H=8",
                    "--timestep-fs", 1.5, "--t-start", 10, "--t-end", 320, "--every", every,
                    "--seed", seed, "--no-progress")
            run("label", traj, "-o", labelled, "--engine", "tblite", "--no-progress")
        sets[name] = labelled
    return sets["pool"], sets["test"]


def _complete(traj, labelled):
    from ipi_dipole import data

    return traj.exists() and len(data.load(labelled)) >= len(data.load(traj))


def liquid_water_sets():
    """Schienbein liquid-water APT sets converted to extended XYZ (cell 15.6627 A)."""
    DATA.mkdir(exist_ok=True)
    src = FIXTURES / "water_apt_schienbein"
    out = {}
    for name in ("train10", "test"):
        dest = DATA / f"liquid_water_{name}.extxyz"
        if not dest.exists():
            run("convert", src / f"liquid-water_{name}.xyz", "--format", "apt-xyz", "--cell", 15.6627, "-o", dest)
        out[name] = dest
    return out["train10"], out["test"]


def errors(model, structures):
    """RMSE and RMSPE (pooled std of the reference components) of dipoles and Z*."""
    from ipi_dipole.metrics import evaluate

    return evaluate(model, structures)


def polarization_model(**options):
    """A PolarizationModel from flat options, the descriptor settings (cutoff, n_radial, ...)
    among the model's; the benchmark tables print such flat option dicts."""
    from dataclasses import fields

    from ipi_dipole import PolarizationModel
    from ipi_dipole.descriptors import DescriptorSettings

    names = {f.name for f in fields(DescriptorSettings)}
    settings = DescriptorSettings(**{k: v for k, v in options.items() if k in names})
    return PolarizationModel(descriptor=settings, **{k: v for k, v in options.items() if k not in names})


def median_time(function, repeat=7, number=1):
    """Median wall time (s) of ``function()`` over ``repeat`` runs of ``number`` calls."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            function()
        times.append((time.perf_counter() - t) / number)
    return float(np.median(times))
