r"""The harmonic IR spectrum, in the units of the Green-Kubo ``alpha n`` (cm^-1 vs cm^-1).

For a classical harmonic system with mass-weighted normal coordinates ``Q_k`` and dipole
derivatives ``d_k = dM/dQ_k`` (e/sqrt(amu)), ``Mdot = sum_k d_k P_k`` and equipartition gives
``<Mdot_a(0) Mdot_a(t)> = kT sum_k d_ka^2 cos(w_k t)``. Put into the Green-Kubo formula of
:mod:`.green_kubo` (per component, window ``w(t)``),

.. math::

    \alpha n_{aa}(\omega) = \frac{\beta}{V c \varepsilon_0} \int_0^\infty kT \sum_k d_{ka}^2
        \cos(\omega_k t) \cos(\omega t)\, w(t)\, dt
      = \frac{\pi}{2 V c \varepsilon_0} \sum_k d_{ka}^2 \,[g(\omega - \omega_k) + g(\omega + \omega_k)],

with ``g`` the unit-area line shape (in omega) whose Fourier transform is the window: a
Gaussian or Lorentzian of the chosen FWHM, as in ``ipi-dipole spectrum``. ``kT`` cancels:
the harmonic spectrum does not depend on temperature (the classical ``alpha n`` of a
harmonic system, which is also what the "harmonic" quantum correction leaves unchanged).
Each mode's band area over wavenumber (isotropic) is ``|d_k|^2 / (12 V c^2 eps0)``, so
``area * N_A * V`` is its intensity in km/mol.

The volume is the one ``spectrum`` divides by: the cell the dipole belongs to (the primitive
cell of a crystal, whose Gamma modes carry the whole dipole), or for a gas-phase molecule
the volume per molecule one means (``--volume``; the demo uses its 20 A box).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import units

from ipi_dipole.errors import InputError

from .green_kubo import Spectrum, alpha_n_prefactor, angular_frequency

#: temperature used inside the prefactor, in K; it cancels against kT
_T_REF = 300.0
MODE_COLUMNS = ("mode", "wavenumber_cm1", "irrep", "ir_active", "intensity_km_mol",
                "dmdq2_e2_amu", "dmdq_x_e_amu12", "dmdq_y_e_amu12", "dmdq_z_e_amu12", "band_area_cm2")


def _kt_velocity_scale() -> float:
    """``kT / amu`` in (Angstrom/fs)^2 at :data:`_T_REF`: turns ``kT d^2`` into (e A/fs)^2."""
    return units.kB * _T_REF * units.fs ** 2


def line_shape(kind: str, fwhm_cm1: float, omega_offset) -> np.ndarray:
    """Unit-area line shape in omega (fs per rad) at ``omega_offset`` (rad/fs).

    ``kind`` is ``"gaussian"`` or ``"lorentzian"``; its FWHM is ``fwhm_cm1`` (cm^-1), the same
    definition as :func:`ipi_dipole.analysis.green_kubo.window_function`.
    """
    x = np.asarray(omega_offset, dtype=float)
    delta = angular_frequency(fwhm_cm1)
    if not delta > 0:
        raise InputError(f"the line width must be > 0 cm^-1, got {fwhm_cm1}")
    if kind == "gaussian":
        sigma = delta / (2.0 * np.sqrt(2.0 * np.log(2.0)))
        return np.exp(-0.5 * (x / sigma) ** 2) / (sigma * np.sqrt(2.0 * np.pi))
    if kind == "lorentzian":
        half = 0.5 * delta
        return half / np.pi / (x ** 2 + half ** 2)
    raise InputError(f"line shape must be gaussian or lorentzian, got {kind!r}")


def band_areas_cm2(dmdq, volume_a3: float) -> np.ndarray:
    """Band area of each mode, ``int alpha n d(wavenumber)`` in cm^-2, per component (K, 3).

    ``dmdq`` (K, 3) in e/sqrt(amu); ``volume_a3`` in Angstrom^3.
    """
    d2 = np.abs(np.asarray(dmdq, dtype=float)) ** 2
    per_omega = 0.5 * np.pi * alpha_n_prefactor(_T_REF, volume_a3) * _kt_velocity_scale() * d2
    return per_omega / angular_frequency(1.0)  # d(omega) = 2 pi c d(wavenumber)


def harmonic_spectrum(wavenumber_cm1, dmdq, volume_a3: float, fwhm_cm1: float = 20.0,
                      window: str = "gaussian", grid_cm1=None, max_cm1: float = 6000.0,
                      resolution_cm1: float | None = None) -> Spectrum:
    """Broadened harmonic ``alpha n`` (cm^-1) per polarisation, as ``spectrum`` computes it.

    Parameters
    ----------
    wavenumber_cm1 : array (K,)
        Mode wavenumbers, cm^-1 (imaginary modes, < 0, are left out).
    dmdq : array (K, 3)
        Dipole derivatives, e/sqrt(amu).
    volume_a3 : float
        Volume the dipole refers to, Angstrom^3.
    fwhm_cm1 : float
        FWHM of the line shape, cm^-1.
    window : {"gaussian", "lorentzian"}
    grid_cm1 : array, optional
        Wavenumbers to evaluate at; default 0..max_cm1 every ``resolution_cm1``
        (default ``min(1, fwhm/8)``, as ``spectrum``).
    """
    nu = np.asarray(wavenumber_cm1, dtype=float)
    d = np.asarray(dmdq, dtype=float)
    keep = nu > 0
    if grid_cm1 is None:
        res = resolution_cm1 or min(1.0, fwhm_cm1 / 8.0)
        grid_cm1 = np.arange(0.0, max_cm1 + 0.5 * res, res)
    grid = np.asarray(grid_cm1, dtype=float)
    omega, omega_k = angular_frequency(grid), angular_frequency(nu[keep])
    shapes = (line_shape(window, fwhm_cm1, omega[:, None] - omega_k[None, :])
              + line_shape(window, fwhm_cm1, omega[:, None] + omega_k[None, :]))
    weight = 0.5 * np.pi * alpha_n_prefactor(_T_REF, volume_a3) * _kt_velocity_scale()
    components = weight * shapes @ (d[keep] ** 2)
    info = {"estimator": "harmonic", "window": window, "fwhm_cm1": float(fwhm_cm1),
            "volume_a3": float(volume_a3), "modes": int(keep.sum())}
    return Spectrum(wavenumber_cm1=grid, components=components, info=info)


def as_replica_average(spectrum: Spectrum):
    """The harmonic spectrum as a one-'replica' average, for the spectrum CSV writer and plot."""
    from .replicas import ReplicaAverage

    nan = np.full_like(spectrum.components, np.nan)
    return ReplicaAverage(wavenumber_cm1=spectrum.wavenumber_cm1, components=spectrum.components,
                          components_stderr=nan, isotropic=spectrum.isotropic,
                          isotropic_stderr=nan[:, 0].copy(), spectra=[spectrum], info=dict(spectrum.info))


def write_modes_csv(path, modes, volume_a3: float | None, comments=()) -> None:
    """The modes table (see :data:`MODE_COLUMNS`): one row per mode, ``#`` lines with units.

    ``modes`` is a :class:`ipi_dipole.harmonic.NormalModes` with its dipole derivatives.
    """
    nu = modes.wavenumber_cm1
    d = modes.dmdq
    area = band_areas_cm2(d, volume_a3).mean(axis=1) if volume_a3 else np.full(len(nu), np.nan)
    lines = list(comments) + [
        "units: wavenumber_cm1 in cm^-1 (negative = imaginary); intensity_km_mol = "
        "N_A |dM/dQ|^2 / (12 eps0 c^2) in km/mol; dmdq* = dM/dQ_k in e/sqrt(amu) (Q mass-weighted, "
        "sqrt(amu) A), dmdq2 its square (e^2/amu); band_area_cm2 = int alpha n d(wavenumber) of the "
        "isotropic harmonic spectrum in cm^-2 for the volume below; ir_active from the irreps "
        "(1 = transforms like x, y or z)",
        f"point group: {modes.point_group or 'unknown (ir_active from nonzero dM/dQ)'}",
        f"volume: {volume_a3:.8g} A^3" if volume_a3 else "volume: none given (band_area_cm2 = nan)",
    ]
    try:
        with open(Path(path), "w") as fh:
            for line in lines:
                fh.write(f"# {line}\n")
            fh.write(",".join(MODE_COLUMNS) + "\n")
            for k in range(len(nu)):
                label = modes.irreps[k] or ""
                fh.write(f"{k + 1},{nu[k]:.6f},{label},{int(bool(modes.ir_active[k]))},"
                         f"{modes.intensity_km_per_mol[k]:.8g},{modes.intensity_e2_per_amu[k]:.8g},"
                         f"{d[k, 0]:.8g},{d[k, 1]:.8g},{d[k, 2]:.8g},{area[k]:.8g}\n")
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc}") from None


def read_modes_csv(path) -> dict:
    """A modes CSV back: ``{column: array}`` (``irrep`` as a list of str) and ``"comments"``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    comments, header, rows = [], None, []
    with open(path) as fh:
        for n, line in enumerate(fh, 1):
            if line.startswith("#"):
                comments.append(line[1:].strip())
            elif header is None:
                header = line.strip().split(",")
            elif line.strip():
                fields = line.strip().split(",")
                if len(fields) != len(header):
                    raise InputError(f"{path}, line {n}: {len(fields)} fields, the header has {len(header)}")
                rows.append(fields)
    if header is None or "wavenumber_cm1" not in header:
        raise InputError(f"{path}: not a harmonic modes CSV (no wavenumber_cm1 column)")
    out = {"comments": comments}
    for k, name in enumerate(header):
        col = [r[k] for r in rows]
        out[name] = col if name == "irrep" else np.array(col, dtype=float)
    return out


def is_modes_csv(path) -> bool:
    """Whether ``path`` is a modes table (else, presumably, a spectrum CSV)."""
    try:
        with open(path) as fh:
            for line in fh:
                if not line.startswith("#"):
                    return line.startswith("mode,")
    except OSError:
        return False
    return False


class HarmonicOverlay:
    """A harmonic reference to draw over a spectrum: a curve, sticks, or both.

    Attributes
    ----------
    wavenumber_cm1, alpha_n_cm1 : array or None
        The broadened harmonic ``alpha n`` (cm^-1), from a harmonic ``spectrum.csv``.
    stick_cm1, stick_height_cm1 : array or None
        Mode positions and heights (cm^-1), from a ``modes.csv``: the peak an isolated band of
        the plotted spectrum's line shape would reach (band area times the line shape's maximum).
    label : str
    """

    def __init__(self, label, wavenumber_cm1=None, alpha_n_cm1=None, stick_cm1=None, stick_height_cm1=None):
        self.label = label
        self.wavenumber_cm1, self.alpha_n_cm1 = wavenumber_cm1, alpha_n_cm1
        self.stick_cm1, self.stick_height_cm1 = stick_cm1, stick_height_cm1


def load_overlay(path, window: str = "gaussian", fwhm_cm1: float = 20.0) -> HarmonicOverlay:
    """Read ``ipi-dipole harmonic``'s ``spectrum.csv`` (a curve) or ``modes.csv`` (sticks).

    ``window`` and ``fwhm_cm1`` are those of the spectrum the sticks are drawn on.
    """
    from . import spectrum_file

    path = Path(path)
    if not path.is_file():
        raise InputError(f"--harmonic {path}: no such file")
    if is_modes_csv(path):
        table = read_modes_csv(path)
        if "band_area_cm2" not in table or not np.all(np.isfinite(table["band_area_cm2"])):
            raise InputError(f"--harmonic {path}: no band areas (the harmonic run had no volume)")
        keep = (table["wavenumber_cm1"] > 0) & (table["ir_active"] > 0)
        if window in ("gaussian", "lorentzian") and fwhm_cm1 and fwhm_cm1 > 0:
            peak = line_shape(window, fwhm_cm1, 0.0) * angular_frequency(1.0)  # per cm^-1
        else:
            peak = 1.0  # no line shape: heights are the areas (cm^-2 per cm^-1 of width)
        return HarmonicOverlay(f"harmonic modes ({path.name})", stick_cm1=table["wavenumber_cm1"][keep],
                               stick_height_cm1=table["band_area_cm2"][keep] * peak)
    table = spectrum_file.read_csv(path)
    if "wavenumber_cm1" not in table or "alpha_n_cm1" not in table:
        raise InputError(f"--harmonic {path}: neither a harmonic modes.csv nor a spectrum CSV")
    return HarmonicOverlay(f"harmonic ({path.name})", wavenumber_cm1=table["wavenumber_cm1"],
                           alpha_n_cm1=table["alpha_n_cm1"])
