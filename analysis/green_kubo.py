r"""Green-Kubo infrared absorption from dipole time-correlation functions.

The quantity computed is the absorption coefficient times the refractive index,

.. math::

    \alpha(\omega) n(\omega) = \frac{\beta}{3 V c \varepsilon_0}
        \,\mathrm{Re}\int_0^T \langle \dot M(0) \cdot \dot M(t) \rangle\, w(t)\, e^{-i\omega t}\, dt ,

in SI units, reported in cm^-1 against the wavenumber ``omega / (2 pi c)`` in cm^-1.
``w(t)`` is the broadening window. Per component ``aa`` the same formula without the 1/3
and with ``<Mdot_a(0) Mdot_a(t)>`` is given (absorption of light polarised along ``a``);
the isotropic value is the mean of the three.

The time integral is the trapezoid rule on the frames, ``dt [C_0/2 + sum_k C_k w_k cos(w k dt)]``,
evaluated by a real FFT of the zero-padded correlation. On the FFT grid from 0 to the
Nyquist frequency this makes the classical sum rule exact:
``int_0^{pi/dt} alpha n d(omega) = pi beta <Mdot.Mdot> / (6 V c eps0)``.

Broadening windows (``fwhm_cm1`` is the full width at half maximum of the line shape they
give in the frequency domain, in cm^-1; ``Delta = 2 pi c FWHM`` in rad/fs):

- ``gaussian`` (the paper's choice): ``w(t) = exp(-t^2 / (2 s^2))``, ``s = 2 sqrt(2 ln 2) / Delta``:
  each line becomes a Gaussian of that FWHM.
- ``lorentzian``: ``w(t) = exp(-Delta t / 2)``: each line becomes a Lorentzian of that FWHM.
- ``none``: the correlation is only truncated at the maximum lag.

Estimators of the ``Mdot``-``Mdot`` spectrum, all with the same prefactor:

- from ``Mdot`` directly (``Z* . v`` or a finite difference of ``M``),
- ``w2``: ``omega^2`` times the spectrum of the ``M``-``M`` correlation (``M`` minus its
  mean), evaluated as the transform of ``-d^2/dt^2 <M(0) M(t)>`` so that the window acts
  on the same ``Mdot``-``Mdot`` correlation as in the other estimators;
- ``cross``: ``-omega`` times the sine transform of the ``M``-``Mdot`` correlation, since
  ``<M(0) Mdot(t)> = d/dt <M(0) M(t)>`` (plus the window-derivative term that makes the
  window act on ``Mdot``-``Mdot``).

Each series is tapered before it is correlated (:mod:`.correlation`); the correlation
is truncated at the maximum lag, where the default window has fallen below 1e-6.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import constants, fft

from ipi_dipole.errors import InputError

from .correlation import antisymmetric_cross_correlation, autocorrelation, check_max_lag, longest_lag
from .correlation import taper as tukey_taper

#: speed of light in cm/fs
C_CM_PER_FS = constants.c * 100.0 * 1e-15
WINDOWS = ("gaussian", "lorentzian", "none")
#: the window value below which longer lags are not worth computing
WINDOW_CUTOFF = 1e-6


def angular_frequency(wavenumber_cm1):
    """Angular frequency in rad/fs of a wavenumber in cm^-1."""
    return 2.0 * np.pi * C_CM_PER_FS * np.asarray(wavenumber_cm1, dtype=float)


def wavenumber(omega_rad_per_fs):
    """Wavenumber in cm^-1 of an angular frequency in rad/fs."""
    return np.asarray(omega_rad_per_fs, dtype=float) / (2.0 * np.pi * C_CM_PER_FS)


def window_function(kind: str, fwhm_cm1: float, times_fs) -> np.ndarray:
    """The broadening window ``w(t)`` (see the module docstring) at ``times_fs``."""
    t = np.asarray(times_fs, dtype=float)
    if kind == "none" or fwhm_cm1 is None or fwhm_cm1 <= 0:
        return np.ones_like(t)
    delta = angular_frequency(fwhm_cm1)  # FWHM in rad/fs
    if kind == "gaussian":
        sigma_t = 2.0 * np.sqrt(2.0 * np.log(2.0)) / delta
        return np.exp(-0.5 * (t / sigma_t) ** 2)
    if kind == "lorentzian":
        return np.exp(-0.5 * delta * np.abs(t))
    raise ValueError(f"window must be one of {WINDOWS}, got {kind!r}")


def window_derivative(kind: str, fwhm_cm1: float, times_fs) -> np.ndarray:
    """``dw/dt`` (1/fs) of :func:`window_function` for t >= 0."""
    t = np.asarray(times_fs, dtype=float)
    w = window_function(kind, fwhm_cm1, t)
    if kind == "none" or fwhm_cm1 is None or fwhm_cm1 <= 0:
        return np.zeros_like(t)
    delta = angular_frequency(fwhm_cm1)
    if kind == "gaussian":
        sigma_t = 2.0 * np.sqrt(2.0 * np.log(2.0)) / delta
        return -t / sigma_t ** 2 * w
    return -0.5 * delta * w


def window_length_fs(kind: str, fwhm_cm1: float) -> float:
    """Time after which the window is below :data:`WINDOW_CUTOFF` (inf without a window)."""
    if kind == "none" or fwhm_cm1 is None or fwhm_cm1 <= 0:
        return np.inf
    delta = angular_frequency(fwhm_cm1)
    if kind == "gaussian":
        return 2.0 * np.sqrt(2.0 * np.log(2.0)) / delta * np.sqrt(-2.0 * np.log(WINDOW_CUTOFF))
    return -2.0 * np.log(WINDOW_CUTOFF) / delta


def alpha_n_prefactor(temperature_k: float, volume_a3: float) -> float:
    """``beta / (V c eps0)`` turning ``int C dt`` into ``alpha n`` in cm^-1.

    Parameters
    ----------
    temperature_k : float
        Temperature in K.
    volume_a3 : float
        Volume in Angstrom^3.

    Returns
    -------
    float
        Factor for a correlation in (e*Angstrom/fs)^2 integrated over time in fs
        (no 1/3: that belongs to the isotropic average).
    """
    if not temperature_k > 0:
        raise InputError(f"the temperature must be positive, got {temperature_k} K")
    if not volume_a3 > 0:
        raise InputError(f"the volume must be positive, got {volume_a3} A^3")
    beta = 1.0 / (constants.k * temperature_k)                     # 1/J
    volume = volume_a3 * 1e-30                                     # m^3
    mdot_unit = constants.e * 1e-10 / 1e-15                        # (e A/fs) in C m/s
    per_m = beta / (volume * constants.c * constants.epsilon_0) * mdot_unit ** 2 * 1e-15
    return per_m / 100.0                                           # 1/m -> 1/cm


@dataclass
class SpectrumSettings:
    """How correlations become spectra (shared by all replicas so their grids agree).

    Attributes
    ----------
    window : {"gaussian", "lorentzian", "none"}
    fwhm_cm1 : float
        Line width the window gives, FWHM in cm^-1.
    max_lag_fs : float, optional
        Longest correlation time; default: where the window falls below 1e-6, but at most
        half the shortest replica (lags near the full length average few pairs).
    resolution_cm1 : float, optional
        Spacing of the output grid (zero padding of the correlation); default
        ``min(1, fwhm/8)`` cm^-1.
    taper : float
        Fraction of each series in the cosine ramps of the Tukey taper applied before
        correlating (see :mod:`.correlation`); 0 for the plain ``N - k`` estimator.
    """

    window: str = "gaussian"
    fwhm_cm1: float = 20.0
    max_lag_fs: float | None = None
    resolution_cm1: float | None = None
    taper: float = 0.1

    def __post_init__(self):
        if self.window not in WINDOWS:
            raise InputError(f"window must be one of {', '.join(WINDOWS)}, got {self.window!r}")
        if self.fwhm_cm1 is not None and self.fwhm_cm1 < 0:
            raise InputError(f"the window width must be >= 0 cm^-1, got {self.fwhm_cm1}")
        if self.max_lag_fs is not None and not self.max_lag_fs > 0:
            raise InputError(f"the maximum lag must be > 0 fs, got {self.max_lag_fs}")
        if not 0 <= self.taper <= 1:
            raise InputError(f"the taper fraction must be between 0 and 1, got {self.taper}")
        if self.resolution_cm1 is not None and not self.resolution_cm1 > 0:
            raise InputError(f"the resolution must be > 0 cm^-1, got {self.resolution_cm1}")

    def max_lag(self, timestep_fs: float, n_frames: int) -> int:
        """Largest lag in frames for a series of ``n_frames`` frames ``timestep_fs`` apart."""
        if self.max_lag_fs is not None:
            lag = int(np.ceil(self.max_lag_fs / timestep_fs))
        else:
            limit = window_length_fs(self.window, self.fwhm_cm1)
            lag = n_frames // 2 if not np.isfinite(limit) else min(int(np.ceil(limit / timestep_fs)), n_frames // 2)
        return check_max_lag(n_frames, max(1, min(lag, longest_lag(n_frames, self.taper))))

    def n_fft(self, timestep_fs: float, max_lag: int) -> int:
        """FFT length: at least twice the correlation, and fine enough for the resolution."""
        res = self.resolution_cm1
        if res is None:
            res = min(1.0, self.fwhm_cm1 / 8.0) if self.fwhm_cm1 else 1.0
        needed = int(np.ceil(1.0 / (C_CM_PER_FS * timestep_fs * res)))
        return fft.next_fast_len(max(2 * (max_lag + 1), needed), real=True)

    def weights(self, n_frames: int) -> np.ndarray | None:
        """The taper for a series of ``n_frames`` frames (None without one)."""
        return tukey_taper(n_frames, self.taper)

    def window_at(self, time_fs: float) -> float:
        """Window value at ``time_fs``: how much a correlation truncated there still matters."""
        return float(window_function(self.window, self.fwhm_cm1, np.array([time_fs]))[0])

    def fwhm_for(self, time_fs: float) -> float:
        """Smallest FWHM (cm^-1) whose window falls below 1e-6 by ``time_fs``."""
        ref = window_length_fs(self.window, 1.0)
        return ref / time_fs if np.isfinite(ref) else np.inf


@dataclass
class Spectrum:
    """``alpha n`` per Cartesian component on a wavenumber grid.

    Attributes
    ----------
    wavenumber_cm1 : array (F,)
    components : array (F, 3)
        ``alpha n`` for light polarised along x, y, z, in cm^-1.
    info : dict
        Settings and provenance (estimator, window, temperature, volume, ...).
    """

    wavenumber_cm1: np.ndarray
    components: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def isotropic(self) -> np.ndarray:
        """``alpha n`` of an isotropic sample: the mean of the three components, cm^-1."""
        return self.components.mean(axis=1)

    @property
    def omega(self) -> np.ndarray:
        """Angular frequency grid in rad/fs."""
        return angular_frequency(self.wavenumber_cm1)

    def integrated(self, lo_cm1: float = 0.0, hi_cm1: float = np.inf, angular: bool = False) -> float:
        """Trapezoid integral of the isotropic ``alpha n`` over a wavenumber range.

        In cm^-2 (over wavenumber) or, with ``angular``, in cm^-1 rad/fs (over omega).
        """
        sel = (self.wavenumber_cm1 >= lo_cm1) & (self.wavenumber_cm1 <= hi_cm1)
        x = self.omega[sel] if angular else self.wavenumber_cm1[sel]
        return float(np.trapezoid(self.isotropic[sel], x))


def _grid(timestep_fs: float, n_fft: int) -> np.ndarray:
    return 2.0 * np.pi * np.fft.rfftfreq(n_fft, d=timestep_fs)  # rad/fs


def cosine_transform(corr: np.ndarray, timestep_fs: float, window: np.ndarray, n_fft: int) -> np.ndarray:
    """``dt [C_0/2 + sum_k C_k w_k cos(w k dt)]`` on the rfft grid, per column."""
    a = corr * window[:, None]
    a[0] *= 0.5
    return timestep_fs * fft.rfft(a, n=n_fft, axis=0).real


def sine_transform(corr: np.ndarray, timestep_fs: float, window: np.ndarray, n_fft: int) -> np.ndarray:
    """``dt sum_k C_k w_k sin(w k dt)`` on the rfft grid, per column."""
    a = corr * window[:, None]
    return -timestep_fs * fft.rfft(a, n=n_fft, axis=0).imag


def _finish(integrand, omega, temperature_k, volume_a3, info) -> Spectrum:
    return Spectrum(wavenumber_cm1=wavenumber(omega),
                    components=integrand * alpha_n_prefactor(temperature_k, volume_a3),
                    info=dict(info, temperature_k=temperature_k, volume_a3=volume_a3))


def _lag_and_size(settings, timestep_fs, n_frames, max_lag, n_fft):
    lag = settings.max_lag(timestep_fs, n_frames) if max_lag is None else check_max_lag(n_frames, max_lag)
    size = settings.n_fft(timestep_fs, lag) if n_fft is None else n_fft
    w = window_function(settings.window, settings.fwhm_cm1, np.arange(lag + 1) * timestep_fs)
    return lag, size, w, _grid(timestep_fs, size)


def spectrum_from_mdot(mdot, timestep_fs: float, temperature_k: float, volume_a3: float,
                       settings: SpectrumSettings, max_lag: int | None = None,
                       n_fft: int | None = None, factor=None) -> Spectrum:
    """``alpha n`` from ``Mdot`` (T, 3) in e*Angstrom/fs sampled every ``timestep_fs`` fs.

    ``max_lag`` (frames) and ``n_fft`` default to ``settings``; ``factor``, a function of
    omega (rad/fs), multiplies the spectrum (e.g. a finite-difference response correction).
    """
    mdot = np.asarray(mdot, dtype=float)
    lag, size, w, omega = _lag_and_size(settings, timestep_fs, len(mdot), max_lag, n_fft)
    corr = autocorrelation(mdot, lag, settings.weights(len(mdot)))
    integrand = cosine_transform(corr, timestep_fs, w, size)
    if factor is not None:
        integrand = integrand * factor(omega)[:, None]
    return _finish(integrand, omega, temperature_k, volume_a3, {"max_lag_frames": lag})


def spectrum_from_dipole_w2(dipole, timestep_fs: float, temperature_k: float, volume_a3: float,
                            settings: SpectrumSettings, max_lag: int | None = None,
                            n_fft: int | None = None, factor=None) -> Spectrum:
    """``alpha n`` as ``omega^2`` times the spectrum of the ``M``-``M`` correlation.

    ``dipole`` (T, 3) in e*Angstrom, continuous (jumps removed); its mean is subtracted.
    Evaluated as the transform of ``-d^2/dt^2 <M(0) M(t)>`` (``omega^2`` times the ``M``-``M``
    spectrum), the second derivative taken as the centred second difference in lag with
    its response ``sinc^2(omega dt / 2)`` divided out. The window then multiplies the
    ``Mdot``-``Mdot`` correlation as in the other estimators; windowing ``M``-``M`` before
    the ``omega^2`` instead adds ``<dM^2> / s^2`` of spurious far-IR intensity (``s`` the
    window's time width), percents for a rotating molecule.
    ``factor(omega)`` multiplies the result.
    """
    m = np.asarray(dipole, dtype=float)
    m = m - m.mean(axis=0)
    lag, size, w, omega = _lag_and_size(settings, timestep_fs, len(m), max_lag, n_fft)
    corr = autocorrelation(m, min(lag + 1, len(m) - 1), settings.weights(len(m)))
    if len(corr) < lag + 2:  # the last lag has no right neighbour: stop one short
        lag, w = lag - 1, w[:-1]
    padded = np.concatenate([corr[1:2], corr[: lag + 2]])  # C(-1) = C(1)
    cdd = -(padded[2:] - 2.0 * padded[1:-1] + padded[:-2]) / timestep_fs ** 2
    response = np.sinc(omega * timestep_fs / (2.0 * np.pi)) ** 2
    integrand = cosine_transform(cdd, timestep_fs, w, size) / response[:, None]
    if factor is not None:
        integrand = integrand * factor(omega)[:, None]
    return _finish(integrand, omega, temperature_k, volume_a3, {"max_lag_frames": lag})


def spectrum_from_dipole_mdot(dipole, mdot, timestep_fs: float, temperature_k: float, volume_a3: float,
                              settings: SpectrumSettings, max_lag: int | None = None,
                              n_fft: int | None = None, factor=None) -> Spectrum:
    """``alpha n`` from the ``M``-``Mdot`` cross-correlation ``C_x(t) = <M(0) Mdot(t)>``.

    ``<Mdot(0) Mdot(t)> = -dC_x/dt``, so the windowed transform is
    ``-omega sin-transform[w C_x] + cos-transform[(dw/dt) C_x]`` (integration by parts; the
    second term keeps the window acting on ``Mdot``-``Mdot`` as in the other estimators).
    ``dipole`` (T, 3) e*Angstrom (continuous) and ``mdot`` (T, 3) e*Angstrom/fs at the same
    frames; ``factor(omega)`` multiplies the result.
    """
    m = np.asarray(dipole, dtype=float)
    md = np.asarray(mdot, dtype=float)
    if m.shape != md.shape:
        raise InputError(f"dipole {m.shape} and Mdot {md.shape} must be on the same frames")
    m = m - m.mean(axis=0)
    lag, size, w, omega = _lag_and_size(settings, timestep_fs, len(m), max_lag, n_fft)
    corr = antisymmetric_cross_correlation(m, md, lag, settings.weights(len(m)))
    dw = window_derivative(settings.window, settings.fwhm_cm1, np.arange(lag + 1) * timestep_fs)
    integrand = (-omega[:, None] * sine_transform(corr, timestep_fs, w, size)
                 + cosine_transform(corr, timestep_fs, dw, size))
    if factor is not None:
        integrand = integrand * factor(omega)[:, None]
    return _finish(integrand, omega, temperature_k, volume_a3, {"max_lag_frames": lag})
