"""Remove lattice-quantum jumps from a cell dipole before it is differentiated or correlated.

When a driver computes the dipole from positions wrapped into the cell, an atom that
crosses the cell boundary changes ``M`` by a lattice quantum: its charge times a lattice
vector. For a model whose dipole carries ``sum_i Zbar_J(i) x_i`` (species mean charges
``Zbar_J``) the jump of an atom of species J crossing along lattice vector ``a_k`` is exactly
``+-Zbar_J a_k``. Such a step is hundreds of times larger than the dipole's change over one
MD step and would put a white background under the whole spectrum.

The approach:

1. Detect: a step ``d_n = M[n+1] - M[n]`` is a jump when it differs from the typical step
   by more than a threshold: half the smallest lattice quantum ``min_J |Zbar_J| min_k |a_k|``
   when the charges and the cell are known, else ``factor`` (default 20) times the median
   step length.
2. Estimate the smooth part of a jump step by polynomial (Lagrange) interpolation of the
   nearest non-jump steps around it (up to 2 on each side, within 5 steps; cubic when all
   four are there); the jump is ``d_n`` minus that.
3. With the charges given (exact ``Zbar_J`` of the model), write the jump in fractional
   coordinates, ``d = f_1 a_1 + f_2 a_2 + f_3 a_3``, and snap each ``f_k`` to the nearest
   value ``sum_J n_J Zbar_J`` with at most ``max_atoms`` crossing atoms (the fewest atoms
   among values as close as the estimate's noise); the removed jump is then an exact
   sum of lattice quanta. A jump that matches no such value (farther than 10 % of the
   smallest charge) is removed as measured, and counted as unmatched.
   Without charges the jump is removed as measured (step 2).

The result keeps ``M[0]`` and is continuous. Velocity-based ``Mdot = Z* . v`` needs none of
this; it is for the dipole-based estimators.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from ipi_dipole.errors import InputError


@dataclass
class JumpReport:
    """What :func:`remove_dipole_jumps` found."""

    steps: list = field(default_factory=list)   #: indices n of jumps between frames n and n+1
    snapped: int = 0                            #: removed as exact sums of lattice quanta
    unmatched: int = 0                          #: removed as measured, matching no quantum sum
    threshold: float = 0.0                      #: e*Angstrom, step length above which a step jumps

    @property
    def count(self) -> int:
        return len(self.steps)


def _quantum_values(charges, max_atoms: int):
    """Sums ``sum_J n_J q_J`` with ``sum |n_J| <= max_atoms``, and the atom count of each."""
    values = {}
    q = list(charges)
    for ns in itertools.product(range(-max_atoms, max_atoms + 1), repeat=len(q)):
        atoms = sum(abs(n) for n in ns)
        if atoms > max_atoms:
            continue
        v = round(float(np.dot(ns, q)), 12)
        if v not in values or atoms < values[v]:
            values[v] = atoms
    vals = np.array(sorted(values))
    return vals, np.array([values[v] for v in vals])


def _interpolate(d: np.ndarray, n: int, neighbours: list) -> np.ndarray:
    """Lagrange interpolation of the rows ``d[neighbours]`` at row ``n``."""
    if not neighbours:
        return np.zeros(d.shape[1])
    x = np.array(neighbours, dtype=float) - n
    weights = np.array([np.prod([-x[j] / (x[i] - x[j]) for j in range(len(x)) if j != i])
                        for i in range(len(x))])
    return weights @ d[neighbours]


def remove_dipole_jumps(dipole, cell=None, charges=None, *, threshold: float | None = None,
                        factor: float = 20.0, max_atoms: int = 3):
    """Remove lattice-quantum jumps from a dipole series (see the module docstring).

    Parameters
    ----------
    dipole : array (T, 3)
        Cell dipole in e*Angstrom.
    cell : array (3, 3), optional
        Lattice vectors as rows, Angstrom (needed to snap jumps and for the default
        threshold with charges).
    charges : sequence of float, optional
        The species charges ``Zbar_J`` in e whose lattice quanta the jumps are made of.
    threshold : float, optional
        Step length in e*Angstrom above which a step counts as a jump.
    factor : float
        Without charges and threshold: a jump is a step longer than ``factor`` times the
        median step length.
    max_atoms : int
        Most atoms assumed to cross the boundary within one step along one lattice vector.

    Returns
    -------
    dipole : numpy.ndarray (T, 3)
        The continuous dipole, e*Angstrom.
    report : JumpReport
    """
    m = np.asarray(dipole, dtype=float)
    if m.ndim != 2 or m.shape[1] != 3:
        raise InputError(f"the dipole must be shaped (frames, 3), got {m.shape}")
    if len(m) < 3:
        return m.copy(), JumpReport()
    d = np.diff(m, axis=0)
    length = np.linalg.norm(d, axis=1)
    cell = None if cell is None else np.asarray(cell, dtype=float)
    charges = None if charges is None else np.array([q for q in charges if abs(q) > 1e-8], dtype=float)
    if charges is not None and len(charges) == 0:
        charges = None
    if threshold is None:
        if cell is not None and charges is not None:
            threshold = 0.5 * np.abs(charges).min() * np.linalg.norm(cell, axis=1).min()
        else:
            threshold = factor * max(float(np.median(length)), 1e-12)
    jumps = np.flatnonzero(length > threshold)
    report = JumpReport(steps=jumps.tolist(), threshold=float(threshold))
    if len(jumps) == 0:
        return m.copy(), report

    smooth = np.ones(len(d), dtype=bool)
    smooth[jumps] = False
    clean = d.copy()
    snap = cell is not None and charges is not None
    if snap:
        inv_cell = np.linalg.inv(cell)
        values, n_atoms = _quantum_values(charges, max_atoms)
        tolerance = 0.1 * np.abs(charges).min()
    for n in jumps:
        neighbours = [k for k in range(n - 1, max(n - 6, -1), -1) if smooth[k]][:2]
        neighbours += [k for k in range(n + 1, min(n + 6, len(d))) if smooth[k]][:2]
        guess = _interpolate(d, n, neighbours)
        jump = d[n] - guess
        if snap:
            frac = jump @ inv_cell
            noise = np.abs((d[neighbours] - d[neighbours].mean(axis=0)) @ inv_cell).max() if neighbours else 0.0
            snapped = np.empty(3)
            ok = True
            for k in range(3):
                dist = np.abs(values - frac[k])
                best = dist.min()
                if best > tolerance:
                    ok = False
                    break
                close = np.flatnonzero(dist <= best + 3 * noise + 1e-12)
                snapped[k] = values[close[np.argmin(n_atoms[close])]]
            if ok:
                jump = snapped @ cell
                report.snapped += 1
            else:
                report.unmatched += 1
        clean[n] = d[n] - jump
    out = np.empty_like(m)
    out[0] = m[0]
    out[1:] = m[0] + np.cumsum(clean, axis=0)
    return out, report
