"""Measured infrared absorption to compare with: ``alpha n`` from optical constants.

Two inputs are understood:

- a refractiveindex.info database YAML file with ``tabulated nk`` data (rows: wavelength
  in micrometre, n, k), or separate ``tabulated n`` and ``tabulated k`` blocks. The
  absorption coefficient is ``alpha = 4 pi k nu`` with ``nu = 1e4 / lambda[um]`` in cm^-1,
  and the Green-Kubo quantity to compare with is ``alpha * n`` (cm^-1);
- a CSV / whitespace text file whose first two columns are the wavenumber (cm^-1) and
  ``alpha n`` (cm^-1), e.g. a spectrum written by ``ipi-dipole spectrum``. Lines starting
  with ``#`` and a non-numeric header row are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ipi_dipole.errors import InputError


@dataclass
class MeasuredSpectrum:
    """Measured ``alpha n`` (cm^-1) on increasing wavenumbers (cm^-1), with n and k when known."""

    wavenumber_cm1: np.ndarray
    alpha_n_cm1: np.ndarray
    label: str
    n: np.ndarray | None = None
    k: np.ndarray | None = None


def _table(text: str, path: Path, what: str) -> np.ndarray:
    try:
        rows = [[float(v) for v in line.split()] for line in text.strip().splitlines() if line.strip()]
        return np.array(rows, dtype=float)
    except ValueError as exc:
        raise InputError(f"{path}: the '{what}' table is not numeric: {exc}") from None


def read_refractiveindex_yaml(path) -> MeasuredSpectrum:
    """Read a refractiveindex.info YAML file with tabulated n and k (see the module docstring)."""
    import yaml  # PyYAML comes with phonopy

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read the YAML file: {exc}") from None
    blocks = {}
    for block in (doc or {}).get("DATA", []) or []:
        blocks[str(block.get("type", "")).strip()] = block
    if "tabulated nk" in blocks:
        t = _table(blocks["tabulated nk"].get("data", ""), path, "tabulated nk")
        if t.ndim != 2 or t.shape[1] < 3:
            raise InputError(f"{path}: 'tabulated nk' rows need wavelength, n and k")
        lam, n, k = t[:, 0], t[:, 1], t[:, 2]
    elif "tabulated n" in blocks and "tabulated k" in blocks:
        tn = _table(blocks["tabulated n"].get("data", ""), path, "tabulated n")
        tk = _table(blocks["tabulated k"].get("data", ""), path, "tabulated k")
        lam = tk[:, 0]
        on = np.argsort(tn[:, 0])
        n = np.interp(lam, tn[on, 0], tn[on, 1])
        k = tk[:, 1]
        inside = (lam >= tn[:, 0].min()) & (lam <= tn[:, 0].max())
        lam, n, k = lam[inside], n[inside], k[inside]
    else:
        found = ", ".join(sorted(blocks)) or "none"
        raise InputError(f"{path}: no tabulated n,k data (found DATA types: {found}); "
                         "formula-type entries are not supported")
    if len(lam) == 0 or np.any(lam <= 0):
        raise InputError(f"{path}: wavelengths must be positive micrometres")
    order = np.argsort(1e4 / lam)
    nu = 1e4 / lam[order]
    n, k = n[order], k[order]
    return MeasuredSpectrum(wavenumber_cm1=nu, alpha_n_cm1=4.0 * np.pi * k * nu * n,
                            label=path.stem, n=n, k=k)


def read_two_column(path) -> MeasuredSpectrum:
    """Read wavenumber (cm^-1) and ``alpha n`` (cm^-1) from the first two columns of a text file."""
    path = Path(path)
    rows = []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.replace(",", " ").replace(";", " ").split()
        try:
            rows.append((float(fields[0]), float(fields[1])))
        except (ValueError, IndexError):
            if rows:
                raise InputError(f"{path}, line {number}: expected two numbers "
                                 "(wavenumber in cm^-1, alpha*n in cm^-1)") from None
            continue  # header row
    if len(rows) < 2:
        raise InputError(f"{path}: fewer than two (wavenumber, alpha*n) rows")
    t = np.array(rows)
    t = t[np.argsort(t[:, 0])]
    return MeasuredSpectrum(wavenumber_cm1=t[:, 0], alpha_n_cm1=t[:, 1], label=path.stem)


def read_experiment(path) -> MeasuredSpectrum:
    """Read measured ``alpha n``: refractiveindex.info YAML (``.yml``/``.yaml``) or a two-column table."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.suffix.lower() in (".yml", ".yaml"):
        return read_refractiveindex_yaml(path)
    return read_two_column(path)
