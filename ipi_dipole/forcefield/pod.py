"""POD force fields: LAMMPS ML-POD's ``fitpod`` on our data, ``pair_style pod`` to run them.

``fitpod`` (LAMMPS 2024+) reads a parameter file (species, cutoffs, radial and angular
basis sizes) and a data file pointing at directories of extended-XYZ files. Its XYZ reader
is strict: the comment line must carry ``Lattice``, ``energy`` and ``stress`` (stress is
read even when its fitting weight is 0) and every atom line must be exactly ``symbol x y z
fx fy fz``. :func:`write_fitpod_xyz` writes that; molecules get a cubic box with no
periodicity (``pbc 0 0 0`` in the parameter file), periodic structures their own cell.

The fitted energy is ``E = sum_i E_i`` with ``E_i`` linear in one-, two-, three- (and
optionally four-) body proper orthogonal descriptors of atom ``i`` within ``rcut``; the
coefficients solve ``min w_E |A c - E/N|^2 + w_F |B c + F|^2 + reg |c|^2`` (energies per
atom). See the LAMMPS documentation of ``fitpod`` and ``pair_style pod``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms

from ..errors import InputError
from .settings import FitSettings
from .training_set import labels

PARAM_FILE = "pod_param.pod"
COEFF_FILE = "pod_coefficients.pod"
LOG_FILE = "fitpod.log"
#: fitpod's output files we keep besides the coefficients (per-structure errors)
KEPT_OUTPUTS = ("training_errors", "training_analysis", "test_errors", "test_analysis")
_BASENAME = "fit"
#: every file a fit writes into the force-field directory
OUTPUTS = (PARAM_FILE, COEFF_FILE, LOG_FILE, "fitpod_data.pod",
           *(f"fitpod_{name}.pod" for name in KEPT_OUTPUTS))
#: number of four-body angular functions for each four-body angular degree (LAMMPS eapod.cpp)
_N_ANGULAR_4 = (1, 2, 4, 7, 11, 16, 23)


@dataclass
class PODSettings(FitSettings):
    """Descriptor and fit settings of a POD force field.

    Parameters
    ----------
    cutoff : float
        Outer cutoff radius ``rcut`` (Angstrom).
    energy_weight, force_weight : float
        Least-squares weights of per-atom energies (eV) and force components (eV/A).
    regularization : float
        Ridge parameter of the least-squares fit.
    inner_cutoff : float
        Inner radius ``rin`` (Angstrom): the radial basis lives on ``(rin, rcut)``; no two
        atoms may come closer.
    bessel_degree, inverse_degree : int
        Degrees of the Bessel and inverse-power snapshot functions from which the radial
        basis is compressed.
    twobody_radial : int
        Radial basis functions of the two-body descriptors.
    threebody_radial, threebody_angular : int
        Radial functions and angular degree (<= 12) of the three-body descriptors.
    fourbody_radial, fourbody_angular : int
        Same for the four-body descriptors (0 radial functions: none); ``fourbody_radial
        <= threebody_radial`` and ``fourbody_angular <= min(threebody_angular, 6)``.
    """

    KIND = "POD"

    cutoff: float = 6.0
    energy_weight: float = 100.0
    force_weight: float = 1.0
    regularization: float = 1e-10
    inner_cutoff: float = 0.5
    bessel_degree: int = 4
    inverse_degree: int = 8
    twobody_radial: int = 8
    threebody_radial: int = 6
    threebody_angular: int = 4
    fourbody_radial: int = 0
    fourbody_angular: int = 0

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.inner_cutoff < self.cutoff:
            raise InputError(f"POD needs 0 <= inner cutoff < cutoff, got {self.inner_cutoff} "
                             f"and {self.cutoff} Angstrom")
        for name in ("bessel_degree", "inverse_degree", "twobody_radial", "threebody_radial"):
            if getattr(self, name) < 1:
                raise InputError(f"POD setting {name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.threebody_angular <= 12:
            raise InputError(f"POD three-body angular degree must be 0..12, got {self.threebody_angular}")
        if not 0 <= self.fourbody_angular <= min(6, self.threebody_angular):
            raise InputError("POD four-body angular degree must be 0..min(6, three-body degree), "
                             f"got {self.fourbody_angular}")
        if not 0 <= self.fourbody_radial <= self.threebody_radial:
            raise InputError("POD four-body radial functions must be 0..three-body radial "
                             f"functions, got {self.fourbody_radial}")

    def n_coefficients(self, n_species: int) -> int:
        """Number of fitted coefficients (global descriptors), as fitpod counts them."""
        ne = n_species
        per_element = 1 + self.twobody_radial * ne
        per_element += (self.threebody_angular + 1) * self.threebody_radial * ne * (ne + 1) // 2
        if self.fourbody_radial:
            per_element += (_N_ANGULAR_4[self.fourbody_angular] * self.fourbody_radial
                            * ne * (ne + 1) * (ne + 2) // 6)
        return ne * per_element


def default_settings() -> PODSettings:
    return PODSettings()


def param_text(species: Sequence[str], settings: PODSettings, periodic: bool) -> str:
    """The POD parameter file (shared by ``fitpod`` and ``pair_style pod``)."""
    s = settings
    p = 1 if periodic else 0
    return "\n".join([
        "# POD parameter file written by ipi-dipole train-forcefield",
        f"species {' '.join(species)}",
        f"pbc {p} {p} {p}",
        f"rin {s.inner_cutoff!r}",
        f"rcut {s.cutoff!r}",
        f"bessel_polynomial_degree {s.bessel_degree}",
        f"inverse_polynomial_degree {s.inverse_degree}",
        "onebody 1",
        f"twobody_number_radial_basis_functions {s.twobody_radial}",
        f"threebody_number_radial_basis_functions {s.threebody_radial}",
        f"threebody_angular_degree {s.threebody_angular}",
        f"fourbody_number_radial_basis_functions {s.fourbody_radial}",
        f"fourbody_angular_degree {s.fourbody_angular}",
        "fivebody_number_radial_basis_functions 0",
        "fivebody_angular_degree 0",
        "sixbody_number_radial_basis_functions 0",
        "sixbody_angular_degree 0",
        "sevenbody_number_radial_basis_functions 0",
        "sevenbody_angular_degree 0",
        "",
    ])


def data_text(settings: PODSettings, with_test: bool) -> str:
    """The fitpod data file: our own split, no shuffling, fitpod's error analysis kept."""
    return "\n".join([
        "file_format extxyz",
        "file_extension xyz",
        'path_to_training_data_set "train"',
        f'path_to_test_data_set "{"test" if with_test else "train"}"',
        f"fitting_weight_energy {settings.energy_weight!r}",
        f"fitting_weight_force {settings.force_weight!r}",
        "fitting_weight_stress 0",
        f"fitting_regularization_parameter {settings.regularization!r}",
        "fraction_training_data_set 1",
        "fraction_test_data_set 1",
        "randomize_training_data_set 0",
        "randomize_test_data_set 0",
        "error_analysis_for_training_data_set 1",
        f"error_analysis_for_test_data_set {1 if with_test else 0}",
        f"basename_for_output_files {_BASENAME}",
        "precision_for_pod_coefficients 14",
        "",
    ])


def molecule_box(structures: Sequence[Atoms], cutoff: float) -> float:
    """Edge (Angstrom) of the cubic box given to molecules: no image within the cutoff."""
    extent = max(float(np.ptp(a.positions, axis=0).max()) for a in structures)
    return 10.0 * np.ceil((extent + 2 * cutoff + 10.0) / 10.0)


def fitpod_periodic_form(atoms: Atoms, energy: float, forces: np.ndarray, cutoff: float):
    """A periodic structure as fitpod can read it without missing periodic images.

    fitpod adds ``ceil(rcut / L[i, i])`` image layers along cell vector ``i``, which is
    right only for a lower-triangular cell whose widths reach the cutoff. So the cell is
    Minkowski-reduced, made right-handed, rotated to lower-triangular form (positions and
    forces rotated with it), and repeated along any direction whose width (distance
    between opposite faces) is below ``cutoff``; the energy is scaled with the copies.

    Returns
    -------
    cell (3, 3), positions (M, 3), forces (M, 3), energy, repeats (3,)
        Angstrom, eV/Angstrom, eV; ``M = N * prod(repeats)``.
    """
    from ase.cell import Cell

    reduced, _ = atoms.cell.minkowski_reduce()
    cell = np.array(reduced)
    if np.linalg.det(cell) < 0:
        cell[2] = -cell[2]
    lower, q = Cell(cell).standard_form()
    cell = np.array(lower)
    pos = atoms.positions @ q.T
    frc = np.asarray(forces) @ q.T
    volume = abs(np.linalg.det(cell))
    widths = np.array([volume / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3]))
                       for i in range(3)])
    reps = np.maximum(1, np.ceil(cutoff / widths - 1e-9).astype(int))
    if np.any(reps > 1):
        shifts = np.array([[i, j, k] for i in range(reps[0]) for j in range(reps[1])
                           for k in range(reps[2])]) @ cell
        pos = (pos[None, :, :] + shifts[:, None, :]).reshape(-1, 3)
        frc = np.tile(frc, (len(shifts), 1))
        cell = cell * reps[:, None]
        energy = energy * len(shifts)
    # wrap into the cell: fitpod's images are taken around the home cell
    frac = np.linalg.solve(cell.T, pos.T).T
    pos = (frac - np.floor(frac)) @ cell
    return cell, pos, frc, energy, reps


def write_fitpod_xyz(path: str | os.PathLike, structures: Sequence[Atoms], periodic: bool,
                     box: float, cutoff: float) -> int:
    """Write structures in the extended-XYZ dialect that fitpod reads.

    Molecules are centred in a cubic ``box`` (Angstrom); periodic structures go through
    :func:`fitpod_periodic_form`. Returns the number of periodic structures that had to
    be repeated.
    """
    repeated = 0
    with open(path, "w") as fh:
        for atoms in structures:
            energy, forces = labels(atoms)
            symbols = atoms.get_chemical_symbols()
            if periodic:
                cell, pos, forces, energy, reps = fitpod_periodic_form(atoms, energy, forces, cutoff)
                symbols = symbols * int(np.prod(reps))
                repeated += int(np.any(reps > 1))
            else:
                cell = np.eye(3) * box
                pos = atoms.positions - atoms.positions.mean(axis=0) + 0.5 * box
            lattice = " ".join(f"{x:.10f}" for x in cell.ravel())
            pbc = "T T T" if periodic else "F F F"
            fh.write(f"{len(symbols)}\n")
            fh.write(f'Lattice="{lattice}" Properties=species:S:1:pos:R:3:forces:R:3 '
                     f'energy={energy:.10f} stress="0 0 0 0 0 0 0 0 0" pbc="{pbc}"\n')
            for sym, r, f in zip(symbols, pos, forces):
                fh.write(f"{sym} {r[0]:.10f} {r[1]:.10f} {r[2]:.10f} "
                         f"{f[0]:.10f} {f[1]:.10f} {f[2]:.10f}\n")
    return repeated


_FITPOD_SCRIPT = """
import sys
from ipi_dipole.lammps_runtime import new_lammps
lmp = new_lammps(log=sys.argv[1])
try:
    lmp.command("fitpod %s data.pod")
except Exception as exc:
    sys.exit(str(exc))
lmp.close()
""" % PARAM_FILE

#: environment variables through which an MPI launcher talks to its processes; a child
#: that inherits them would try to join the parent's MPI job
_MPI_ENV_PREFIXES = ("PMI_", "PMIX_", "HYDRA_", "MPIR_", "OMPI_", "I_MPI_")


def run_fitpod(work: Path, log: Path) -> None:
    """Run ``fitpod`` on the inputs in ``work`` in a fresh Python process.

    A separate process, because fitpod in LAMMPS 2025.7.22 reads an uninitialised
    counter (``neighborstruct::natom_max``; later LAMMPS versions initialise it): in a
    process whose heap has been used before it asks for absurd amounts of memory.
    ``MALLOC_PERTURB_=255`` makes glibc hand out zero-filled memory, which fixes the value
    at 0 as intended. The child also runs in ``work`` (fitpod reads and writes relative to
    the current directory; its word-splitting reader cannot take paths with blanks), on
    one OpenMP thread, and without the parent's MPI launcher variables.
    """
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(_MPI_ENV_PREFIXES)}
    env.setdefault("OMP_NUM_THREADS", "1")
    env["MALLOC_PERTURB_"] = "255"
    proc = subprocess.run([sys.executable, "-c", _FITPOD_SCRIPT, str(log)], cwd=work, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        message = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"LAMMPS fitpod failed: {message} (log: {log})")


def read_fitpod_errors(path: Path) -> dict | None:
    """fitpod's own summary errors (``All files`` row): per-atom energy, force component."""
    if not path.is_file():
        return None
    for line in path.read_text().splitlines():
        if line.startswith("All files"):
            v = [float(x) for x in line.split()[2:]]
            return {"n": int(v[0]), "energy_mae_eV_per_atom": v[2], "energy_rmse_eV_per_atom": v[3],
                    "force_mae_eV_per_A": v[4], "force_rmse_eV_per_A": v[5]}
    return None


def fit(train_set: Sequence[Atoms], test_set: Sequence[Atoms], species: Sequence[str],
        settings: PODSettings, ff_dir: Path, source: str = "<structures>") -> dict:
    """Run ``fitpod`` on ``train_set``; write the potential files into ``ff_dir``.

    fitpod's own error analysis (training and, if any, test set) is kept in
    ``ff_dir/fitpod.log`` and the ``fitpod_*.pod`` files; the returned dict summarises it,
    with the ``pair_style`` and ``pair_coeff`` arguments that run the potential.

    Raises
    ------
    InputError
        When the training set gives fewer equations than there are coefficients.
    RuntimeError
        When fitpod fails (the message names the log).
    """
    n_equations = settings.check_enough_data(train_set, len(species), source)
    periodic = bool(train_set[0].pbc.all())
    box = molecule_box(list(train_set) + list(test_set), settings.cutoff)
    log = ff_dir / LOG_FILE
    param = param_text(species, settings, periodic)
    with tempfile.TemporaryDirectory(prefix="fitpod-") as tmp:
        work = Path(tmp)
        (work / "train").mkdir()
        repeated = write_fitpod_xyz(work / "train" / "train.xyz", train_set, periodic, box,
                                    settings.cutoff)
        if test_set:
            (work / "test").mkdir()
            write_fitpod_xyz(work / "test" / "test.xyz", test_set, periodic, box, settings.cutoff)
        (work / PARAM_FILE).write_text(param)
        (work / "data.pod").write_text(data_text(settings, bool(test_set)))
        run_fitpod(work, log)
        coeff = work / f"{_BASENAME}_coefficients.pod"
        if not coeff.is_file():
            raise RuntimeError(f"LAMMPS fitpod wrote no coefficient file (log: {log})")
        shutil.copyfile(coeff, ff_dir / COEFF_FILE)
        (ff_dir / PARAM_FILE).write_text(param)
        (ff_dir / "fitpod_data.pod").write_text(data_text(settings, bool(test_set)))
        for name in KEPT_OUTPUTS:
            out = work / f"{_BASENAME}_{name}.pod"
            if out.is_file():
                shutil.copyfile(out, ff_dir / f"fitpod_{name}.pod")
    coefficients = _read_coefficients(ff_dir / COEFF_FILE)
    if not np.all(np.isfinite(coefficients)):
        raise RuntimeError(f"fitpod produced non-finite coefficients (log: {log})")
    return {
        "pair_style": "pod",
        "pair_coeff": f"${{ffdir}}/{PARAM_FILE} ${{ffdir}}/{COEFF_FILE} {' '.join(species)}",
        "probe": PARAM_FILE,
        "description": f"POD, {len(coefficients)} coefficients, cutoff {settings.cutoff} A",
        "program": "LAMMPS fitpod",
        "n_coefficients": len(coefficients),
        "n_equations": n_equations,
        "molecule_box_A": None if periodic else box,
        "repeated_small_cells": repeated,
        "files": [PARAM_FILE, COEFF_FILE],
        "fitter_train_errors": read_fitpod_errors(ff_dir / "fitpod_training_errors.pod"),
        "fitter_test_errors": read_fitpod_errors(ff_dir / "fitpod_test_errors.pod"),
    }


def _read_coefficients(path: Path) -> np.ndarray:
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    header = re.match(r"model_coefficients:\s+(\d+)", lines[0])
    if not header:
        raise RuntimeError(f"{path}: unexpected first line {lines[0]!r}")
    n = int(header.group(1))
    return np.array([float(x) for x in lines[1:1 + n]])
