"""Constant per-species Born charges: the dipole of a fixed-charge force field.

A force field with fixed point charges has the cell dipole ``M = sum_i q_i r_i``, so its
Born charges are constant, ``Z*_i = q_i 1``, and ``Mdot = sum_i q_i v_i`` needs only the
velocities. With :func:`with_fixed_charges` the ``zv`` estimator of
:mod:`ipi_dipole.analysis.pipeline` then gives the force field's own spectrum from the same
trajectories as a learned dipole model, so the two differ only by the dipole surface.

Water models with a massless M site (TIP4P family, q-TIP4P/F) carry the oxygen's charge
on ``r_M = gamma r_O + (1 - gamma)/2 (r_H1 + r_H2)``; :func:`m_site_born_charges` turns
that into per-atom Born charges.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ipi_dipole.errors import InputError

#: q-TIP4P/F (Habershon, Markland & Manolopoulos, J. Chem. Phys. 131, 024501 (2009)):
#: M-site charge (e) and gamma of r_M = gamma r_O + (1 - gamma)/2 (r_H1 + r_H2)
QTIP4PF_Q_M = -1.1128
QTIP4PF_GAMMA = 0.73612


def m_site_born_charges(q_m: float, gamma: float) -> dict:
    """Born charges (e) of O and H for a water model with its negative charge on an M site.

    Parameters
    ----------
    q_m : float
        Charge on the M site, e (the hydrogens carry ``-q_m / 2`` each, the oxygen none).
    gamma : float
        Weight of the oxygen in ``r_M = gamma r_O + (1 - gamma)/2 (r_H1 + r_H2)``.

    Returns
    -------
    dict
        ``{"O": gamma q_m, "H": -q_m/2 + (1 - gamma)/2 q_m}``: ``dM/dr_O`` and ``dM/dr_H``
        (times the identity); they sum to zero over a molecule.
    """
    q_h = -q_m / 2.0
    return {"O": gamma * q_m, "H": q_h + 0.5 * (1.0 - gamma) * q_m}


def constant_born_charges(symbols, charges) -> np.ndarray:
    """Born charges ``q_i 1`` (N, 3, 3) in e for atoms ``symbols`` from per-species ``charges``.

    Parameters
    ----------
    symbols : sequence of str
        Chemical symbol per atom.
    charges : dict or sequence of float
        Charge (e) per species (``{"Na": 1, "Cl": -1}``) or per atom.
    """
    symbols = list(symbols)
    if isinstance(charges, dict):
        missing = sorted(set(symbols) - set(charges))
        if missing:
            raise InputError(f"no charge given for {', '.join(missing)} (give SPECIES=CHARGE for every species)")
        q = np.array([float(charges[s]) for s in symbols])
    else:
        q = np.asarray(charges, dtype=float)
        if q.shape != (len(symbols),):
            raise InputError(f"{len(q)} charges for {len(symbols)} atoms")
    return q[:, None, None] * np.eye(3)[None]


def with_fixed_charges(replica, charges):
    """A copy of ``replica`` whose Born charges are the constant ``charges``, on its velocity steps.

    Parameters
    ----------
    replica : ipi_dipole.analysis.runs.Replica
        Must have velocities (and atom symbols, for per-species charges).
    charges : dict or sequence of float
        Charge (e) per species or per atom, see :func:`constant_born_charges`.

    Returns
    -------
    Replica
        Same velocities, temperature, volume; ``bec`` replaced (any model Born charges and
        dipole are dropped, so that every estimator sees only the fixed charges).
    """
    v = replica.velocities
    if v is None:
        raise InputError(f"{replica.name}: fixed charges need the velocities")
    symbols = replica.symbols or v.symbols
    if isinstance(charges, dict) and not symbols:
        raise InputError(f"{replica.name}: per-species charges need the atom names of the velocity file")
    z = constant_born_charges(symbols if symbols else range(v.values.shape[1]), charges)
    if z.shape[0] != v.values.shape[1]:
        raise InputError(f"{replica.name}: {z.shape[0]} charges for {v.values.shape[1]} atoms")
    bec = dataclasses.replace(v, values=np.broadcast_to(z, (len(v.steps),) + z.shape), kind="BEC")
    return dataclasses.replace(replica, bec=bec, dipole=None)
