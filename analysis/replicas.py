"""Average spectra of independent replicas, with the standard error per frequency.

Every replica enters with the same weight (they are independent trajectories started
from uncorrelated configurations). The standard error of the mean is
``std(ddof=1) / sqrt(R)`` per frequency and component; with one replica it is undefined
(NaN). All spectra must share one wavenumber grid: compute them with the same time step,
maximum lag and FFT length (:func:`common_lag`), whatever each replica's length.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ipi_dipole.errors import InputError

from .green_kubo import Spectrum


@dataclass
class ReplicaAverage:
    """Mean spectrum of R replicas and its standard error.

    Attributes
    ----------
    wavenumber_cm1 : array (F,)
    components : array (F, 3)
        Mean ``alpha n`` per component, cm^-1.
    components_stderr : array (F, 3)
        Standard error of the mean per component, cm^-1.
    isotropic : array (F,)
        Mean isotropic ``alpha n``, cm^-1.
    isotropic_stderr : array (F,)
        Its standard error (from the replicas' isotropic spectra), cm^-1.
    spectra : list of Spectrum
        The replicas' own spectra.
    info : dict
    """

    wavenumber_cm1: np.ndarray
    components: np.ndarray
    components_stderr: np.ndarray
    isotropic: np.ndarray
    isotropic_stderr: np.ndarray
    spectra: list
    info: dict = field(default_factory=dict)

    @property
    def n_replicas(self) -> int:
        return len(self.spectra)

    def integrated(self, lo_cm1: float = 0.0, hi_cm1: float = np.inf) -> tuple[float, float]:
        """Integral of the isotropic mean over a wavenumber range (cm^-2) and its standard error."""
        sel = (self.wavenumber_cm1 >= lo_cm1) & (self.wavenumber_cm1 <= hi_cm1)
        each = np.array([np.trapezoid(s.isotropic[sel], s.wavenumber_cm1[sel]) for s in self.spectra])
        err = each.std(ddof=1) / np.sqrt(len(each)) if len(each) > 1 else np.nan
        return float(each.mean()), float(err)


def common_lag(lengths, requested: list[int]) -> int:
    """One maximum lag (frames) for all replicas: the smallest of the per-replica choices.

    ``lengths`` are the replicas' frame counts, ``requested`` the lag each would use alone.
    """
    lag = min(min(requested), min(lengths) - 1)
    if lag < 1:
        raise InputError("a replica has fewer than 2 frames")
    return lag


def average(spectra: list[Spectrum], info: dict | None = None) -> ReplicaAverage:
    """Mean and standard error of replica spectra computed on one grid."""
    if not spectra:
        raise InputError("no replica spectra to average")
    grid = spectra[0].wavenumber_cm1
    for k, s in enumerate(spectra[1:], start=1):
        if s.wavenumber_cm1.shape != grid.shape or not np.allclose(s.wavenumber_cm1, grid):
            raise InputError(f"replica {k} has a different frequency grid (time step or maximum lag differ)")
    comps = np.stack([s.components for s in spectra])
    iso = comps.mean(axis=2)
    r = len(spectra)
    if r > 1:
        comp_err = comps.std(axis=0, ddof=1) / np.sqrt(r)
        iso_err = iso.std(axis=0, ddof=1) / np.sqrt(r)
    else:
        comp_err = np.full(comps.shape[1:], np.nan)
        iso_err = np.full(iso.shape[1:], np.nan)
    return ReplicaAverage(wavenumber_cm1=grid.copy(), components=comps.mean(axis=0),
                          components_stderr=comp_err, isotropic=iso.mean(axis=0),
                          isotropic_stderr=iso_err, spectra=list(spectra), info=dict(info or {}))
