"""Training a force field: split, fit (POD or SNAP), guard walls, snippet, errors, NVE check."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Sequence

from ase import Atoms

from .. import __version__
from .. import data as dataset
from ..errors import InputError
from . import pod, snap
from .calculator import evaluate
from .files import REPORT, SNIPPET, check_path_for_lammps, write_snippet
from .guard import (GUARD_ENERGY, GUARD_FACTOR, GUARD_TABLE, GUARD_WIDTH, guard_commands,
                    guarded_pair_commands, pair_minima)
from .nve import md_check
from .training_set import check_training_set, split


def consistency_warnings(ours: dict, fitter: dict | None) -> list[str]:
    """Compare the training errors of the fitting program with LAMMPS's own evaluation.

    Both evaluate the same potential on the same structures; a difference means that the
    fitter saw other descriptors than ``pair_style`` computes (e.g. missed periodic images).
    The fitter's numbers are printed with 6 decimals, hence the absolute tolerance.
    """
    if not fitter or not ours.get("n"):
        return []
    out = []
    for key, unit in (("force_rmse_eV_per_A", "eV/A"), ("energy_rmse_eV_per_atom", "eV/atom")):
        a, b = ours[key], fitter[key]
        if abs(a - b) > max(2e-6, 0.02 * abs(a)):
            out.append(f"training {key}: fitter reports {b:.6f} {unit}, LAMMPS pair style gives "
                       f"{a:.6f} {unit}; the fit may not describe what LAMMPS runs")
    return out


#: the fitting modules of the force-field kinds that ``train`` knows
KINDS = {"pod": pod, "snap": snap}


def _remove_previous_outputs(ff_dir: Path) -> None:
    # a POD run after a SNAP run (or the reverse) must not leave stale potential files
    names = {SNIPPET, REPORT, GUARD_TABLE}.union(*(kind.OUTPUTS for kind in KINDS.values()))
    for name in names:
        (ff_dir / name).unlink(missing_ok=True)


def train(data: str | os.PathLike | Sequence[Atoms], ff_dir: str | os.PathLike, *,
          kind: str = "pod", test_fraction: float = 0.1, seed: int = 0,
          species: Sequence[str] | None = None, settings=None, guard: bool = True,
          check_runs: int = 4, check_steps: int = 2000, check_temperature_K: float = 300.0) -> dict:
    """Fit a force field to the energies and forces of a data set; write ``ff_dir``.

    Parameters
    ----------
    data : path or list of ase.Atoms
        Extended-XYZ data set (:mod:`ipi_dipole.data` format) with energies (eV) and forces
        (eV/Angstrom), or the structures themselves.
    ff_dir : path
        Output directory (created; our files in it are overwritten).
    kind : {"pod", "snap"}
        Descriptor family: LAMMPS ML-POD (``fitpod``) or ML-SNAP (bispectrum, linear
        least squares on ``compute snap``).
    test_fraction : float
        Fraction of structures held out (seeded split) for the reported errors.
    seed : int
        Seed of the split.
    species : list of str, optional
        LAMMPS atom-type order; default: order of first appearance in the data.
    settings : PODSettings or SNAPSettings, optional
        Descriptor and fit settings; defaults of the chosen kind when None.
    guard : bool
        Add repulsive walls below the shortest distances of each species pair in the
        training set (see :func:`guard_commands`): zero on the data, they keep MD out of
        the holes that a linear potential can have where it extrapolates.
    check_runs, check_steps, check_temperature_K : int, int, float
        The NVE check (:func:`md_check`, 0.5 fs steps) from held-out structures (training
        structures when none are held out); ``check_runs=0`` skips it.

    Returns
    -------
    dict
        The report also written to ``ff_dir/report.json``.
    """
    if kind not in KINDS:
        raise InputError(f"unknown force-field kind {kind!r}; choose one of {', '.join(KINDS)}")
    if check_runs < 0 or (check_runs and (check_steps < 1 or not check_temperature_K > 0)):
        raise InputError("the NVE check needs runs >= 0, steps >= 1 and a positive temperature, got "
                         f"{check_runs}, {check_steps} and {check_temperature_K} K")
    if isinstance(data, (str, os.PathLike)):
        source = str(data)
        structures = dataset.load(data)
    else:
        source = "<structures>"
        structures = list(data)
    species = check_training_set(structures, source, species)
    train_idx, test_idx = split(len(structures), test_fraction, seed)
    ff_dir = check_path_for_lammps(ff_dir)
    ff_dir.mkdir(parents=True, exist_ok=True)
    _remove_previous_outputs(ff_dir)
    train_set = [structures[i] for i in train_idx]
    test_set = [structures[i] for i in test_idx]

    backend = KINDS[kind]
    settings = settings if settings is not None else backend.default_settings()
    t0 = time.perf_counter()
    fit_info = backend.fit(train_set, test_set, species, settings, ff_dir, source=source)
    t_fit = time.perf_counter() - t0
    style, coeff = fit_info.pop("pair_style"), fit_info.pop("pair_coeff")
    guard_info = None
    minima = pair_minima(train_set, species, settings.cutoff) if guard else {}
    guard = bool(minima)  # no pair within the cutoff anywhere: nothing to guard
    if guard:
        walls, guard_info = guard_commands(ff_dir, species, minima)
        commands = guarded_pair_commands(style, coeff, walls)
    else:
        (ff_dir / GUARD_TABLE).unlink(missing_ok=True)
        commands = [f"pair_style {style}", f"pair_coeff * * {coeff}"]
    write_snippet(ff_dir, species, commands, probe=fit_info.pop("probe"), comments=[
        f"ipi-dipole train-forcefield: {fit_info['description']}, trained on {source} "
        f"(n_train={len(train_set)})"] + ([
        f"with guard walls ({GUARD_TABLE}) below {GUARD_FACTOR} x the shortest training distance "
        "of each species pair"] if guard else []))
    t0 = time.perf_counter()
    test_errors = evaluate(ff_dir, test_set)
    train_errors = evaluate(ff_dir, train_set)
    t_eval = time.perf_counter() - t0
    warnings = consistency_warnings(train_errors, fit_info.get("fitter_train_errors"))
    t0 = time.perf_counter()
    check = md_check(ff_dir, test_set or train_set, runs=check_runs, steps=check_steps,
                     temperature_K=check_temperature_K, seed=seed)
    t_check = time.perf_counter() - t0
    if check["runs"] and check["stable_runs"] < check["runs"]:
        bad = [r for r in check["details"] if not r["stable"]]
        worst = max(bad, key=lambda r: r["max_abs_drift_eV"])
        warnings.append(
            f"NVE check: {len(bad)} of {check['runs']} runs at {check_temperature_K:g} K lost energy "
            f"conservation (|dE| {worst['max_abs_drift_eV']:.3g} eV after {worst['steps_done']} steps "
            f"of 0.5 fs from structure {worst['structure']}): the dynamics reaches configurations "
            "the training data do not cover; add such structures (sample with this potential, "
            "label, retrain) or try a larger --cutoff")

    report = {
        "kind": kind,
        "data": os.path.abspath(source) if source != "<structures>" else source,
        "species": list(species),
        "n_structures": len(structures),
        "n_train": len(train_idx),
        "n_test": len(test_idx),
        "test_fraction": test_fraction,
        "seed": seed,
        "test_indices": test_idx.tolist(),
        "energy_rmse_eV_per_atom": test_errors["energy_rmse_eV_per_atom"],
        "force_rmse_eV_per_A": test_errors["force_rmse_eV_per_A"],
        "test": test_errors,
        "train": train_errors,
        "settings": settings.as_dict(),
        "guard": None if not guard else {"energy_eV": GUARD_ENERGY, "width_A": GUARD_WIDTH,
                                         "factor": GUARD_FACTOR, "pairs": guard_info},
        "fit": fit_info,
        "md_check": check,
        "warnings": warnings,
        "seconds": {"fit": round(t_fit, 3), "evaluate": round(t_eval, 3), "md_check": round(t_check, 3)},
        "units": {"energy": "eV", "force": "eV/Angstrom", "length": "Angstrom"},
        "ipi_dipole_version": __version__,
    }
    with open(ff_dir / REPORT, "w") as fh:
        json.dump(report, fh, indent=2)
    return report
