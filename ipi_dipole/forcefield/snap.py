"""SNAP force fields: bispectrum descriptors from LAMMPS ``compute snap``, linear least
squares in numpy (the FitSNAP recipe without FitSNAP), ``pair_style snap`` to run them.

For every structure LAMMPS computes (``compute snap``, ``bzeroflag 1``) the per-type sums
of the bispectrum components ``B_k`` and their position derivatives. The SNAP energy
``E = sum_t beta0_t N_t + sum_(t,k) beta_(t,k) sum_(i of type t) B_k(i)`` is linear in the
coefficients, as are the forces, so the coefficients solve a weighted linear least-squares
problem on per-atom energies and force components (columns scaled to unit norm, a small
ridge term). The neighbour cutoff between any two atoms is ``cutoff`` (``rcutfac`` with
all element radii 0.5); all element weights are 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms

from .. import lammps_runtime
from ..errors import InputError
from .settings import FitSettings
from .training_set import labels

COEFF_FILE = "snap.snapcoeff"
PARAM_FILE = "snap.snapparam"
LOG_FILE = "fitsnap.log"
#: every file a fit writes into the force-field directory
OUTPUTS = (COEFF_FILE, PARAM_FILE, LOG_FILE)
#: rfac0 of LAMMPS's examples and FitSNAP's defaults
RFAC0 = 0.99363


@dataclass
class SNAPSettings(FitSettings):
    """Descriptor and fit settings of a SNAP force field.

    Parameters
    ----------
    cutoff : float
        Neighbour cutoff (Angstrom), the same for all pairs of elements.
    twojmax : int
        Band limit ``2 J_max`` of the bispectrum (even, 2..12); 6 gives 30 components
        per element, 8 gives 55, 10 gives 91.
    energy_weight, force_weight : float
        Least-squares weights of per-atom energies (eV) and force components (eV/A).
    regularization : float
        Ridge parameter, relative to the unit-norm columns of the design matrix.
    """

    KIND = "SNAP"
    FEWER_COEFFICIENTS = "lower --twojmax"

    cutoff: float = 4.0
    energy_weight: float = 10.0
    force_weight: float = 1.0
    regularization: float = 1e-8
    twojmax: int = 8

    def __post_init__(self):
        super().__post_init__()
        if self.twojmax < 2 or self.twojmax % 2 or self.twojmax > 12:
            raise InputError(f"SNAP twojmax must be even and in 2..12, got {self.twojmax}")

    def n_bispectrum(self) -> int:
        """Bispectrum components per element (``compute snap`` without chemflag)."""
        j = self.twojmax / 2
        return int(round((j + 1) * (j + 2) * (j + 1.5) / 3))

    def n_coefficients(self, n_species: int) -> int:
        return n_species * (1 + self.n_bispectrum())


def default_settings() -> SNAPSettings:
    return SNAPSettings()


def _compute_command(species: Sequence[str], s: SNAPSettings) -> str:
    radii = " ".join("0.5" for _ in species)
    weights = " ".join("1.0" for _ in species)
    return (f"compute ipidipole_snap all snap {s.cutoff!r} {RFAC0} {s.twojmax} {radii} {weights} "
            "rmin0 0.0 bzeroflag 1 switchflag 1")


class DescriptorCalculator:
    """Per-structure SNAP design-matrix rows from LAMMPS ``compute snap``."""

    #: empty space (Angstrom) around a molecule in its fixed-boundary box
    MARGIN = 10.0

    def __init__(self, species: Sequence[str], settings: SNAPSettings, log: str | os.PathLike | None):
        self.species = list(species)
        self.settings = settings
        self.lmp = lammps_runtime.new_lammps(log)

    def rows(self, atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
        """Design rows of one structure.

        Returns
        -------
        energy_row : array (n_coeff,)
            ``[N_t, sum_i B_k(i) for type t]`` for each type t: the total energy is its dot
            product with the coefficients.
        force_rows : array (3N, n_coeff)
            The forces (ASE frame, atom-major) as linear functions of the coefficients.
        """
        lmp = self.lmp
        lmp.command("clear")
        n = len(atoms)
        box = lammps_runtime.create_box(lmp, atoms, self.species, header=["atom_style atomic"],
                                        molecule_margin=self.MARGIN, where="SNAP descriptors")
        lmp.commands_list([f"pair_style zero {self.settings.cutoff!r}", "pair_coeff * *",
                           _compute_command(self.species, self.settings),
                           "thermo_style custom step c_ipidipole_snap[1][1]", "run 0 post no"])
        arr = np.array(lammps_runtime.global_compute(lmp, "ipidipole_snap", "array"), dtype=float)
        types = [self.species.index(s) + 1 for s in atoms.get_chemical_symbols()]
        nb = self.settings.n_bispectrum()
        nt = len(self.species)
        counts = np.bincount(np.array(types) - 1, minlength=nt)
        energy_row = np.zeros(nt * (1 + nb))
        force_rows = np.zeros((3 * n, nt * (1 + nb)))
        for t in range(nt):
            cols = slice(t * (1 + nb) + 1, (t + 1) * (1 + nb))
            energy_row[t * (1 + nb)] = counts[t]
            energy_row[cols] = arr[0, t * nb:(t + 1) * nb]
            # compute snap's force rows hold -dB/dr (LAMMPS frame, ordered by atom ID)
            f = arr[1:1 + 3 * n, t * nb:(t + 1) * nb].reshape(n, 3, nb)
            f = np.einsum("nak,ba->nbk", f, box.rotation)  # back to the ASE frame
            force_rows[:, cols] = f.reshape(3 * n, nb)
        return energy_row, force_rows

    def close(self):
        self.lmp.close()


def fit(train_set: Sequence[Atoms], test_set: Sequence[Atoms], species: Sequence[str],
        settings: SNAPSettings, ff_dir: Path, source: str = "<structures>") -> dict:
    """Fit SNAP coefficients to ``train_set``; write the potential files into ``ff_dir``."""
    n_equations = settings.check_enough_data(train_set, len(species), source)
    log = ff_dir / LOG_FILE
    calc = DescriptorCalculator(species, settings, log)
    rows, targets, weights = [], [], []
    we, wf = np.sqrt(settings.energy_weight), np.sqrt(settings.force_weight)
    try:
        for atoms in train_set:
            energy, forces = labels(atoms)
            e_row, f_rows = calc.rows(atoms)
            n = len(atoms)
            rows.append(e_row[None, :] / n)
            targets.append([energy / n])
            weights.append([we])
            rows.append(f_rows)
            targets.append(forces.ravel())
            weights.append(np.full(3 * n, wf))
    finally:
        calc.close()
    a = np.vstack(rows) * np.concatenate(weights)[:, None]
    b = np.concatenate(targets) * np.concatenate(weights)
    scale = np.linalg.norm(a, axis=0)
    scale[scale == 0] = 1.0
    a /= scale
    if settings.regularization > 0:
        a = np.vstack([a, np.sqrt(settings.regularization) * np.eye(a.shape[1])])
        b = np.concatenate([b, np.zeros(a.shape[1])])
    solution, _, rank, _ = np.linalg.lstsq(a, b, rcond=None)
    beta = solution / scale
    fitted = _fit_errors(np.vstack(rows) @ beta, np.concatenate(targets), train_set)
    if not np.all(np.isfinite(beta)):
        raise RuntimeError("SNAP least-squares fit produced non-finite coefficients")
    _write_files(ff_dir, species, settings, beta)
    return {
        "pair_style": "snap",
        "pair_coeff": f"${{ffdir}}/{COEFF_FILE} ${{ffdir}}/{PARAM_FILE} {' '.join(species)}",
        "probe": COEFF_FILE,
        "description": f"SNAP, twojmax {settings.twojmax}, {len(beta)} coefficients, "
                       f"cutoff {settings.cutoff} A",
        "program": "LAMMPS compute snap + numpy least squares",
        "n_coefficients": len(beta),
        "n_equations": n_equations,
        "rank": int(rank),
        "fitter_train_errors": fitted,
        "files": [COEFF_FILE, PARAM_FILE],
    }


def _fit_errors(predicted: np.ndarray, target: np.ndarray, structures: Sequence[Atoms]) -> dict:
    """Training errors as the least-squares fit sees them (rows: E/N, then 3N forces)."""
    de, df, k = [], [], 0
    for atoms in structures:
        n = len(atoms)
        de.append(predicted[k] - target[k])
        df.append(predicted[k + 1:k + 1 + 3 * n] - target[k + 1:k + 1 + 3 * n])
        k += 1 + 3 * n
    de, df = np.array(de), np.concatenate(df)
    return {"n": len(structures), "energy_rmse_eV_per_atom": float(np.sqrt(np.mean(de ** 2))),
            "force_rmse_eV_per_A": float(np.sqrt(np.mean(df ** 2)))}


def _write_files(ff_dir: Path, species: Sequence[str], s: SNAPSettings, beta: np.ndarray) -> None:
    nb = s.n_bispectrum()
    lines = ["# SNAP coefficients written by ipi-dipole train-forcefield", "",
             f"{len(species)} {nb + 1}"]
    for t, sym in enumerate(species):
        lines.append(f"{sym} 0.5 1.0")
        lines += [f"{c:.16e}" for c in beta[t * (nb + 1):(t + 1) * (nb + 1)]]
    (ff_dir / COEFF_FILE).write_text("\n".join(lines) + "\n")
    (ff_dir / PARAM_FILE).write_text("\n".join([
        "# SNAP parameters written by ipi-dipole train-forcefield",
        f"rcutfac {s.cutoff!r}", f"twojmax {s.twojmax}", f"rfac0 {RFAC0}", "rmin0 0.0",
        "bzeroflag 1", "quadraticflag 0", "switchflag 1", ""]))
