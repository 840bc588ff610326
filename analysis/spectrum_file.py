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

from .quantum_corrections import DESCRIPTION as QUANTUM_CORRECTIONS
from .replicas import ReplicaAverage

COLUMNS = ("wavenumber_cm1", "alpha_n_cm1", "alpha_n_stderr_cm1",
           "alpha_n_xx_cm1", "alpha_n_yy_cm1", "alpha_n_zz_cm1",
           "alpha_n_xx_stderr_cm1", "alpha_n_yy_stderr_cm1", "alpha_n_zz_stderr_cm1")


def header_lines(result: ReplicaAverage, bands=()) -> list[str]:
    """The ``#`` lines of the CSV: formula, units, every setting and where it came from.

    Parameters
    ----------
    result : ReplicaAverage
        From :func:`ipi_dipole.analysis.pipeline.compute` (its ``info`` says what was used).
    bands : sequence of (position_cm1, height)
        Band maxima (:func:`ipi_dipole.analysis.peaks.find_bands`), wavenumbers in cm^-1.
    """
    info = result.info
    temps, vols = np.array(info["temperature_k"]), np.array(info["volume_a3"])
    lines = [
        "ipi-dipole spectrum: Green-Kubo alpha(w)*n(w) = beta/(3 V c eps0) Re int_0^T <Mdot(0).Mdot(t)> "
        "w(t) exp(-i w t) dt (SI), averaged over replicas",
        "units: wavenumber_cm1 in cm^-1 (w / 2 pi c); alpha_n_* in cm^-1; *_stderr = standard error "
        "of the replica mean (nan with one replica); xx/yy/zz = light polarised along x/y/z, "
        "isotropic = their mean",
        f"estimator: {info['estimator']}",
        f"window: {info['window']}, FWHM {info['fwhm_cm1']:g} cm^-1 (line shape in frequency)",
        f"frame spacing: {info['frame_fs']:.8g} fs; max lag: {info['max_lag_fs']:.8g} fs "
        f"({info['max_lag_frames']} frames); FFT length {info['n_fft']}; Tukey taper {info['taper']:g}",
        "Mdot convention: Z*.v with velocity-Verlet velocities of MD step "
        + ", ".join(f"{h:g}" for h in info["md_step_fs"]) + " fs (0 = exact derivative)",
        f"temperature: {temps.mean():.8g} K ({'; '.join(info['temperature_source'])})",
        f"volume: {vols.mean():.8g} A^3 ({'; '.join(info['volume_source'])})",
        f"quantum correction: {QUANTUM_CORRECTIONS[info['quantum_correction']]}",
        f"Born charges vs velocities: {info['bec_matching']}",
        f"dipole jumps removed: {info['jumps_removed']}",
        f"replicas: {result.n_replicas} ({', '.join(str(f) for f in info['frames'])} frames)",
    ] + [f"replica {k + 1}: {name}" for k, name in enumerate(info["replicas"])]
    if bands:
        lines.append("bands (cm^-1): " + ", ".join(f"{p:.1f}" for p, _ in bands))
    return lines


def write_spectrum(path, result: ReplicaAverage, bands=(), max_cm1: float | None = None) -> int:
    """Write ``result`` with its :func:`header_lines` up to ``max_cm1`` (cm^-1); returns the rows."""
    return write_csv(path, result, header_lines(result, bands), max_cm1=max_cm1)


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
