"""Short NVE runs of a trained force field in LAMMPS, built as the driver builds it."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from ase import Atoms

from .. import lammps_runtime
from ..errors import InputError
from .files import lammps_commands, read_species


def build_lammps(ff_dir: str | os.PathLike, atoms: Atoms, log: str | os.PathLike | None = None,
                 margin: float = 20.0):
    """A LAMMPS instance holding ``atoms`` with the force field loaded.

    Box and atoms by :func:`ipi_dipole.lammps_runtime.create_box`, as the driver makes
    them (``units metal``, types in the ``# species:`` order, masses from
    :data:`ase.data.atomic_masses`), then :func:`lammps_commands`. A molecule sits in a
    fixed-boundary cube with ``margin`` Angstrom of vacuum around it (an atom that flies
    off is lost, which the NVE check counts as a failure); a periodic structure gets its
    cell, rotated to LAMMPS's lower-triangular form. Returns the instance and the rotation
    ``R`` (LAMMPS vectors are ``v @ R``).
    """
    species = read_species(ff_dir)
    unknown = sorted(set(atoms.get_chemical_symbols()) - set(species))
    if unknown:
        raise InputError(f"species {', '.join(unknown)} not in the force field {ff_dir}")
    lmp = lammps_runtime.new_lammps(log)
    try:
        box = lammps_runtime.create_box(lmp, atoms, species, header=["atom_style atomic"],
                                        molecule_margin=margin, where=str(ff_dir))
        lmp.commands_list(lammps_commands(ff_dir))
    except BaseException:
        lmp.close()
        raise
    return lmp, box.rotation


def md_check(ff_dir: str | os.PathLike, structures: Sequence[Atoms], runs: int = 4,
             steps: int = 2000, timestep_fs: float = 0.5, temperature_K: float = 300.0,
             seed: int = 0) -> dict:
    """Short NVE runs of the fitted potential in LAMMPS: does it conserve energy?

    ``runs`` structures, evenly spread over ``structures``, start with velocities drawn at
    ``temperature_K`` (zero total momentum and angular momentum); velocity Verlet with
    ``timestep_fs`` and real masses. A run fails when the total energy moves by more than
    5 % of the mean kinetic energy ``1.5 N k T`` (the fitted potential has a region the
    dynamics reaches but the data do not describe), when an atom leaves the box or when
    LAMMPS stops.

    Returns
    -------
    dict
        Settings, ``stable_runs``, and per run ``max_abs_drift_eV`` and ``steps_done``.
    """
    from ase.units import kB

    if runs <= 0 or not structures:
        return {"runs": 0}
    picks = np.unique(np.linspace(0, len(structures) - 1, runs).round().astype(int))
    chunk = 100
    results = []
    for k, index in enumerate(picks):
        atoms = structures[index]
        tolerance = 0.05 * 1.5 * len(atoms) * kB * temperature_K
        lmp, _ = build_lammps(ff_dir, atoms)
        done, drift, ok = 0, 0.0, True
        try:
            lmp.commands_list([f"velocity all create {temperature_K!r} {seed + 1000 + k} mom yes "
                               f"rot {'no' if atoms.pbc.all() else 'yes'} dist gaussian",
                               f"timestep {timestep_fs / 1000.0!r}", "fix ipidipole_nve all nve",
                               "thermo_style custom step pe ke etotal", "thermo 0",
                               "thermo_modify lost error", "run 0 post no"])
            e0 = lmp.get_thermo("etotal")
            while done < steps:
                n = min(chunk, steps - done)
                lmp.command(f"run {n} post no")
                done += n
                drift = max(drift, abs(lmp.get_thermo("etotal") - e0))
                if not np.isfinite(drift) or drift > tolerance:
                    ok = False
                    break
        except Exception:  # lost atoms, table range, ... : the run failed
            ok = False
        finally:
            lmp.close()
        results.append({"structure": int(index), "stable": ok, "steps_done": done,
                        "max_abs_drift_eV": float(drift), "tolerance_eV": float(tolerance)})
    return {"runs": len(results), "steps": steps, "timestep_fs": timestep_fs,
            "temperature_K": temperature_K, "stable_runs": sum(r["stable"] for r in results),
            "details": results}
