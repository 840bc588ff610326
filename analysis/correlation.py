"""Time-correlation functions by FFT, without circular wrap-around.

Both series are zero-padded to at least ``N + max_lag`` points before the FFT, so the
product of transforms gives the linear (not circular) correlation. Each lag is
normalised by the number of pairs it averages, ``N - k`` (the unbiased estimator):
``C[k] = 1/(N-k) sum_{n=0}^{N-1-k} x[n] y[n+k]``.

Optionally the series are first multiplied by a taper ``w[n]`` (a Tukey window: a cosine
ramp over ``fraction / 2`` of the frames at each end, flat in between). The lag-k sum is
then normalised by ``sum_n w[n] w[n+k]`` instead of ``N - k``, which keeps the estimate
unbiased for a stationary series, while the taper removes the spectral leakage of the
mismatch between the series' two ends. That leakage decays only as ``1/omega^2``: harmless
for ``Mdot``, but the ``omega^2`` of the dipole-dipole estimator turns it into a flat
background wherever a large slow dipole (molecular rotation) is present.
"""

from __future__ import annotations

import numpy as np
from scipy import fft
from scipy.signal.windows import tukey


def _as_series(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"{name} must be a time series shaped (frames,) or (frames, components) "
                         f"with at least 2 frames, got shape {x.shape}")
    return x


def check_max_lag(n_frames: int, max_lag: int | None) -> int:
    """The largest lag to compute: ``max_lag`` limited to ``n_frames - 1`` (all lags when None)."""
    if max_lag is None:
        return n_frames - 1
    max_lag = int(max_lag)
    if max_lag < 1:
        raise ValueError(f"the maximum lag must be at least 1 frame, got {max_lag}")
    return min(max_lag, n_frames - 1)


def taper(n_frames: int, fraction: float) -> np.ndarray | None:
    """Tukey taper of ``n_frames`` points with cosine ramps over ``fraction`` of them (None for 0)."""
    if not fraction:
        return None
    if not 0 < fraction <= 1:
        raise ValueError(f"the taper fraction must be in (0, 1], got {fraction}")
    return tukey(n_frames, fraction)


def longest_lag(n_frames: int, fraction: float) -> int:
    """Longest lag with a well-conditioned normalisation for this taper (``N (1 - fraction) - 1``)."""
    return max(1, int(n_frames * (1.0 - (fraction or 0.0))) - 1)


def correlation(x, y=None, max_lag: int | None = None, weights: np.ndarray | None = None) -> np.ndarray:
    """Unbiased cross-correlation ``C[k] = <x(t) y(t + k)>`` of each column, for lags 0..max_lag.

    Parameters
    ----------
    x : array (N,) or (N, m)
        Series sampled at equal time steps; columns are independent components.
    y : array like ``x``, optional
        Second series (same shape); ``x`` itself when omitted (autocorrelation).
    max_lag : int, optional
        Largest lag in frames (default: ``N - 1``).
    weights : array (N,), optional
        Taper applied to both series (see the module docstring); None for none.

    Returns
    -------
    numpy.ndarray, shape (max_lag + 1, m)
        Correlation per component, in the product of the units of ``x`` and ``y``.
    """
    x = _as_series(x, "x")
    same = y is None
    y = x if same else _as_series(y, "y")
    if y.shape != x.shape:
        raise ValueError(f"x and y must have the same shape, got {x.shape} and {y.shape}")
    n = x.shape[0]
    lag = check_max_lag(n, max_lag)
    size = fft.next_fast_len(n + lag, real=True)
    if weights is not None:
        weights = np.asarray(weights, dtype=float)
        if weights.shape != (n,):
            raise ValueError(f"weights must have shape ({n},), got {weights.shape}")
        x = x * weights[:, None]
        y = x if same else y * weights[:, None]
    fx = fft.rfft(x, n=size, axis=0)
    fy = fx if same else fft.rfft(y, n=size, axis=0)
    raw = fft.irfft(np.conj(fx) * fy, n=size, axis=0)[: lag + 1]
    if weights is None:
        pairs = n - np.arange(lag + 1.0)
    else:
        fw = fft.rfft(weights, n=size)
        pairs = fft.irfft(np.abs(fw) ** 2, n=size)[: lag + 1]
    return raw / pairs[:, None]


def autocorrelation(x, max_lag: int | None = None, weights: np.ndarray | None = None) -> np.ndarray:
    """Unbiased autocorrelation ``C[k] = <x(t) x(t + k)>`` per column (see :func:`correlation`)."""
    return correlation(x, None, max_lag, weights)


def antisymmetric_cross_correlation(x, y, max_lag: int | None = None,
                                    weights: np.ndarray | None = None) -> np.ndarray:
    """``(<x(0) y(t)> - <y(0) x(t)>) / 2`` per column, for t >= 0.

    For a stationary process with ``y = dx/dt`` this is ``<x(0) y(t)>`` (an odd function of t)
    estimated from both orders of the pair, which halves its variance.
    """
    return 0.5 * (correlation(x, y, max_lag, weights) - correlation(y, x, max_lag, weights))
