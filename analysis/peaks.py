"""Band positions: the maxima of a spectrum, refined between grid points."""

from __future__ import annotations

import numpy as np
from scipy.signal import find_peaks


def find_bands(wavenumber_cm1, intensity, *, min_cm1: float = 50.0, max_cm1: float | None = None,
               prominence: float = 0.05, min_separation_cm1: float = 30.0):
    """Maxima of ``intensity`` that stand out by ``prominence`` times its maximum.

    Parameters
    ----------
    wavenumber_cm1 : array (F,)
        Evenly spaced grid in cm^-1.
    intensity : array (F,)
    min_cm1, max_cm1 : float
        Range searched, cm^-1 (the default skips the rotational/diffusive far-IR tail).
    prominence : float
        Minimum prominence relative to the largest value in the range.
    min_separation_cm1 : float
        Closest two reported bands may be, cm^-1.

    Returns
    -------
    list of (float, float)
        ``(position_cm1, height)`` per band in increasing wavenumber; positions are
        refined by a parabola through the three grid points around each maximum.
    """
    x = np.asarray(wavenumber_cm1, dtype=float)
    y = np.asarray(intensity, dtype=float)
    sel = x >= min_cm1
    if max_cm1 is not None:
        sel &= x <= max_cm1
    idx = np.flatnonzero(sel)
    if len(idx) < 3:
        return []
    ys = y[idx]
    top = np.nanmax(ys)
    if not top > 0:
        return []
    step = x[1] - x[0]
    peaks, _ = find_peaks(ys, prominence=prominence * top,
                          distance=max(1, int(round(min_separation_cm1 / step))))
    bands = []
    for p in peaks:
        k = idx[p]
        if 0 < k < len(y) - 1:
            a, b, c = y[k - 1], y[k], y[k + 1]
            denom = a - 2 * b + c
            shift = 0.5 * (a - c) / denom if denom != 0 else 0.0
            shift = float(np.clip(shift, -0.5, 0.5))
            bands.append((float(x[k] + shift * step), float(b - 0.25 * (a - c) * shift)))
        else:
            bands.append((float(x[k]), float(y[k])))
    return bands
