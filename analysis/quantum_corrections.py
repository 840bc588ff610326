r"""Quantum correction factors for a classical Green-Kubo ``alpha n``.

A quantum correction factor ``Q(x)``, ``x = beta hbar omega``, estimates the quantum
(Kubo, detailed-balance) dipole spectrum from the classical one:
``S_qm(omega) = Q(x) S_cl(omega)`` (Ramirez, Lopez-Ciudad, Kumar & Marx, J. Chem. Phys.
121, 3973 (2004)). The exact quantum absorption is

.. math:: \alpha n = \frac{(1 - e^{-x})\,\omega}{3 \hbar V c \varepsilon_0} S_{qm}(\omega)

and the classical formula computed here is its ``hbar -> 0`` limit
``beta omega^2 S_cl / (3 V c eps0)``. The factor that multiplies the classical
``alpha n`` is therefore

.. math:: f(x) = \frac{1 - e^{-x}}{x}\, Q(x):

=============  ===========================  ================================
name           Q(x)                         f(x) applied to ``alpha n``
=============  ===========================  ================================
``none``       --                           1 (classical)
``harmonic``   ``x / (1 - exp(-x))``        1
``schofield``  ``exp(x / 2)``               ``2 sinh(x/2) / x``
``standard``   ``2 / (1 + exp(-x))``        ``2 tanh(x/2) / x``
=============  ===========================  ================================

The harmonic factor gives back the classical formula: the ``beta omega^2`` Green-Kubo
``alpha n`` with ``Mdot`` already *is* the harmonic-approximation quantum result (the
reason it is the usual choice). Multiplying that ``alpha n`` once more by
``x / (1 - exp(-x))`` would count the correction twice (a factor ~16 on the O-H stretch
at 300 K).
"""

from __future__ import annotations

import numpy as np
from scipy import constants

from ipi_dipole.errors import InputError

CORRECTIONS = ("none", "harmonic", "schofield", "standard")

DESCRIPTION = {
    "none": "none (classical alpha*n)",
    "harmonic": "harmonic: Q = x/(1-exp(-x)), x = hbar*omega/(kB*T); factor on alpha*n "
                "(1-exp(-x))/x * Q = 1 (the classical Green-Kubo alpha*n is the harmonic result)",
    "schofield": "schofield: Q = exp(x/2), x = hbar*omega/(kB*T); factor on alpha*n 2*sinh(x/2)/x",
    "standard": "standard: Q = 2/(1+exp(-x)), x = hbar*omega/(kB*T); factor on alpha*n 2*tanh(x/2)/x",
}


def reduced_frequency(wavenumber_cm1, temperature_k: float) -> np.ndarray:
    """``x = hbar omega / (kB T)`` for wavenumbers in cm^-1 and a temperature in K."""
    nu = np.asarray(wavenumber_cm1, dtype=float) * 100.0 * constants.c  # Hz
    return constants.h * nu / (constants.k * temperature_k)


def qcf(kind: str, x) -> np.ndarray:
    """The quantum correction factor ``Q(x)`` of the classical dipole spectrum (not for ``none``)."""
    x = np.asarray(x, dtype=float)
    if kind == "harmonic":
        return np.where(x > 1e-8, x / -np.expm1(-np.maximum(x, 1e-8)), 1.0)
    if kind == "schofield":
        return np.exp(0.5 * x)
    if kind == "standard":
        return 2.0 / (1.0 + np.exp(-x))
    raise InputError(f"quantum correction must be one of {', '.join(CORRECTIONS)}, got {kind!r}")


def alpha_n_factor(kind: str, wavenumber_cm1, temperature_k: float) -> np.ndarray:
    """The factor ``f = (1 - exp(-x)) / x * Q(x)`` that multiplies the classical ``alpha n`` (1 for ``none``)."""
    x = reduced_frequency(wavenumber_cm1, temperature_k)
    if kind == "none":
        return np.ones_like(x)
    xs = np.maximum(x, 1e-8)
    return np.where(x > 1e-8, -np.expm1(-xs) / xs, 1.0) * qcf(kind, x)
