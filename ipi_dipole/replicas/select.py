"""Choosing replica starting points: correlation time, frame selection, thermal velocities."""

from __future__ import annotations

import numpy as np

from ipi_dipole.analysis.correlation import autocorrelation
from ipi_dipole.errors import InputError


def normalised_autocorrelation(x: np.ndarray) -> np.ndarray:
    """``rho[t] = <dx(0) dx(t)> / <dx^2>`` of a series with its mean removed (``rho[0] = 1``).

    The unbiased FFT estimate of :func:`ipi_dipole.analysis.correlation.autocorrelation`
    over all lags, divided by its lag-0 value; a constant series gives zeros.

    Parameters
    ----------
    x : ndarray (T,) or (T, K)
        Evenly spaced samples; columns are separate series.

    Returns
    -------
    ndarray (T,) or (T, K)
    """
    x = np.asarray(x, float)
    one = x.ndim == 1
    x = x.reshape(len(x), -1)
    acf = autocorrelation(x - x.mean(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        acf = np.where(acf[0] > 0, acf / acf[0], 0.0)
    return acf[:, 0] if one else acf


def integrated_time(x: np.ndarray, c: float = 5.0) -> tuple[float, bool]:
    """Integrated absolute autocorrelation time ``tau = 1/2 + sum_{t>=1} |rho(t)|`` in samples.

    Sokal's automatic window: the sum stops at the first lag ``M >= c * tau(M)``.
    For ``rho = exp(-t/tau0)`` sampled densely this gives ``tau ~ tau0``. The absolute
    value keeps fast oscillations (bond vibrations in the dipole or the energy) from
    cancelling in the sum and hiding a slowly decaying envelope.

    Returns
    -------
    tau : float
        Samples (the largest over the columns of ``x``).
    reliable : bool
        False when the series is too short for the window (fewer than ~``50 tau`` samples).
    """
    rho = normalised_autocorrelation(x)
    rho = rho.reshape(len(rho), -1)
    taus, reliable = [], True
    for k in range(rho.shape[1]):
        tau_m = np.cumsum(np.abs(rho[:, k])) - 0.5
        window = np.arange(len(tau_m)) >= c * tau_m
        if window.any():
            m = int(np.argmax(window))
        else:
            m, reliable = len(tau_m) - 1, False
        taus.append(max(float(tau_m[m]), 0.5))
        if len(rho) < 50 * taus[-1]:
            reliable = False
    return max(taus), reliable


class NotEnoughFrames(InputError):
    """Fewer frames fit at the requested separation than replicas were asked for."""

    def __init__(self, fit: int, n: int, separation: float):
        super().__init__(f"only {fit} frame(s) fit at {separation:g} ps apart; need {n}")
        self.fit, self.n, self.separation = fit, n, separation


def spread_selection(times: np.ndarray, n: int, min_separation: float) -> np.ndarray:
    """Indices of ``n`` frames at least ``min_separation`` apart, spread over the whole run.

    ``times`` must be increasing. The separation actually used is the largest one that
    still fits ``n`` frames (found by bisection), so the frames cover the run evenly
    instead of bunching together; frames are taken from the end of the run backwards,
    so any slack is left at its start, the least equilibrated part.

    Raises
    ------
    NotEnoughFrames
        When fewer than ``n`` frames fit; ``fit`` says how many do.
    """
    times = np.asarray(times, float)
    if n < 1:
        raise InputError("the number of replicas must be at least 1")

    def greedy(sep):
        picked, last = [], np.inf
        for i in range(len(times) - 1, -1, -1):
            if last - times[i] >= sep - 1e-9 * max(1.0, abs(sep)):
                picked.append(i)
                last = times[i]
        return picked[::-1]

    fit = greedy(min_separation)
    if len(fit) < n:
        raise NotEnoughFrames(len(fit), n, min_separation)
    if n == 1:
        return np.array([len(times) - 1])
    lo, hi = min_separation, (times[-1] - times[0]) / (n - 1)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if len(greedy(mid)) >= n:
            lo = mid
        else:
            hi = mid
    return np.array(greedy(lo)[-n:])


def maxwell_boltzmann(masses_dalton: np.ndarray, temperature_K: float,
                      rng: np.random.Generator) -> np.ndarray:
    """Velocities (Angstrom/fs) drawn at ``temperature_K`` with zero total momentum.

    Parameters
    ----------
    masses_dalton : ndarray (N,)
        Dalton.
    temperature_K : float
        Kelvin.
    """
    from ase import units

    m = np.asarray(masses_dalton, float)
    sigma = np.sqrt(units.kB * temperature_K / m)  # Angstrom per ASE time unit
    v = rng.normal(size=(len(m), 3)) * sigma[:, None]
    return remove_total_momentum(v, m) * units.fs


def remove_total_momentum(velocities: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Velocities with the centre-of-mass velocity subtracted (any consistent units)."""
    m = np.asarray(masses, float)[:, None]
    v = np.asarray(velocities, float)
    return v - (m * v).sum(axis=0) / m.sum()


def kinetic_temperature(velocities: np.ndarray, masses_dalton: np.ndarray, fixed_com: bool = True) -> float:
    """Instantaneous temperature (K) of velocities in Angstrom/fs."""
    from ase import units

    v = np.asarray(velocities) / units.fs
    ke = 0.5 * (np.asarray(masses_dalton)[:, None] * v ** 2).sum()
    dof = 3 * len(v) - (3 if fixed_com else 0)
    return 2 * ke / (dof * units.kB)
