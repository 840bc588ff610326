"""The spectrum CSV: ``#`` lines with units and settings, one header row, then numbers.

Columns: ``wavenumber_cm1, alpha_n_cm1`` (isotropic mean), ``alpha_n_stderr_cm1``
(standard error of the replica mean; ``nan`` with one replica), ``alpha_n_xx_cm1``,
``alpha_n_yy_cm1``, ``alpha_n_zz_cm1`` and their standard errors. ``alpha n`` is the
absorption coefficient times the refractive index, in cm^-1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ipi_dipole.errors import InputError

from .replicas import ReplicaAverage

COLUMNS = ("wavenumber_cm1", "alpha_n_cm1", "alpha_n_stderr_cm1",
           "alpha_n_xx_cm1", "alpha_n_yy_cm1", "alpha_n_zz_cm1",
           "alpha_n_xx_stderr_cm1", "alpha_n_yy_stderr_cm1", "alpha_n_zz_stderr_cm1")


def write_csv(path, result: ReplicaAverage, comments: list[str], max_cm1: float | None = None) -> int:
    """Write ``result`` up to ``max_cm1`` (all when None); returns the number of rows."""
    sel = np.ones(len(result.wavenumber_cm1), dtype=bool)
    if max_cm1:
        sel = result.wavenumber_cm1 <= max_cm1
    table = np.column_stack([result.wavenumber_cm1, result.isotropic, result.isotropic_stderr,
                             result.components, result.components_stderr])[sel]
    path = Path(path)
    try:
        with open(path, "w") as fh:
            for line in comments:
                fh.write(f"# {line}\n")
            fh.write(",".join(COLUMNS) + "\n")
            np.savetxt(fh, table, delimiter=",", fmt="%.8g")
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc}") from None
    return int(sel.sum())


def read_csv(path) -> dict:
    """Read a spectrum CSV back: ``{column name: array}`` plus ``"comments"`` (list of str)."""
    path = Path(path)
    comments, header = [], None
    with open(path) as fh:
        for line in fh:
            if line.startswith("#"):
                comments.append(line[1:].strip())
            else:
                header = line.strip().split(",")
                break
        data = np.loadtxt(fh, delimiter=",", ndmin=2)
    if header is None:
        raise InputError(f"{path}: no header row")
    out = {name: data[:, k] for k, name in enumerate(header)}
    out["comments"] = comments
    return out
