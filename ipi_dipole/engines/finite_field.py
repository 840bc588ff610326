"""Born effective charges by a central finite electric field, for any engine.

The Born charge is the mixed second derivative of the energy with respect to an atom's
position and a uniform electric field, so it is both the change of the dipole with a
displacement and the change of a force with the field::

    Z*[i, a, b] = dM_a / dx_ib = dF_ib / dE_a

The second form needs only forces: 6 extra force evaluations (``+E`` and ``-E`` along
x, y, z) give every ``Z*`` of the structure at once, whatever its size, instead of 6N
displaced dipoles.

Units and sign convention
-------------------------
Fields in V/Angstrom, forces in eV/Angstrom, so ``dF/dE`` comes out in e. A field ``E``
adds ``-M.E`` to the energy (``M`` the total dipole, nuclei included), so a point charge
``q_i`` feels ``F_i = q_i E`` and has ``Z* = +q_i I``; for a whole molecule the sum rule
reads ``sum_i Z*_i = q_total I``.

Field step
----------
Central differences cancel the even orders of the field; what is left is ``h^2/6`` times
the third field derivative of the force (hyperpolarisability terms). For GFN2-xTB on the
water dimer ``Z*`` changes by 3e-7 e between steps 1e-4 and 1e-2 V/A, by 2e-6 e at
0.03 V/A and by 3e-5 e at 0.1 V/A. SCF convergence noise in the forces grows as 1/h
instead: negligible for tblite, but for PySCF B3LYP it is 1e-4 e at 0.01 V/A.
:data:`DEFAULT_FIELD_STEP` (0.01 V/A, 1.9e-4 atomic units) sits in tblite's flat region;
the PySCF engine defaults to 0.05 V/A (see its docstring for the measurements).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import InputError

#: default field step in V/Angstrom (1.94e-4 atomic units of field)
DEFAULT_FIELD_STEP = 0.01


def check_field_step(field_step: float) -> float:
    """The field step as a float, or an InputError when it is not a positive finite number."""
    try:
        h = float(field_step)
    except (TypeError, ValueError):
        raise InputError(f"field step must be a number in V/Angstrom, got {field_step!r}") from None
    if not np.isfinite(h) or h <= 0:
        raise InputError(f"field step must be positive and finite (V/Angstrom), got {field_step!r}")
    if h > 0.5:
        # ~1e-2 atomic units: well into the non-linear response, and near field ionisation
        raise InputError(f"field step {h} V/Angstrom is too large for a linear-response "
                         "derivative (use <= 0.5, typically 0.01-0.05)")
    return h


def born_charges(forces: Callable[[np.ndarray], np.ndarray],
                 field_step: float = DEFAULT_FIELD_STEP) -> np.ndarray:
    """Born charges by central finite differences of the forces in a uniform field.

    Parameters
    ----------
    forces : callable
        ``forces(field) -> (N, 3)`` array of forces in eV/Angstrom on the atoms of one
        structure in the uniform field ``field`` (array (3,), V/Angstrom). The field must
        add ``-M.E`` to the energy (so that ``F_i = q_i E`` for a point charge ``q_i``).
    field_step : float
        The field component ``h`` in V/Angstrom; forces are evaluated at ``+h`` and ``-h``
        along x, y and z (6 evaluations).

    Returns
    -------
    numpy.ndarray, shape (N, 3, 3)
        ``Z*[i, a, b] = dF_ib / dE_a = dM_a / dx_ib`` in e.
    """
    h = check_field_step(field_step)
    z = None
    for a in range(3):
        field = np.zeros(3)
        field[a] = h
        plus = np.asarray(forces(field.copy()), dtype=float)
        minus = np.asarray(forces(-field), dtype=float)
        if z is None:
            if plus.ndim != 2 or plus.shape[1] != 3:
                raise ValueError(f"forces(field) must return an (N, 3) array, got shape {plus.shape}")
            z = np.empty((plus.shape[0], 3, 3))
        if plus.shape != z[:, 0, :].shape or minus.shape != plus.shape:
            raise ValueError("forces(field) returned arrays of different shapes for different fields")
        z[:, a, :] = (plus - minus) / (2.0 * h)
    return z
