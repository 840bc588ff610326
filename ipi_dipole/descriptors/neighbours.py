"""Neighbour lists of molecules and periodic cells: ordered pairs ``(j, k)`` within a reach.

A numba double loop for molecules, a numba cell list for fully periodic cells (any shape;
cells smaller than twice the cutoff included: periodic images of an atom, itself among
them, are ordinary neighbours), :func:`ase.neighborlist.neighbor_list` for partly periodic
ones. The numba list is ~50x faster than ASE's for 384 atoms, which matters when the model
runs at every MD step; :class:`NeighbourCache` (a Verlet skin) saves the search on most
steps. Distances in Angstrom.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..errors import InputError

__all__ = ["neighbour_pairs", "NeighbourCache"]


@njit(cache=True)
def _pairs_molecule(positions, rc):
    """All ordered pairs (j, k), j != k, closer than rc, without periodic images."""
    n = positions.shape[0]
    rc2 = rc * rc
    count = 0
    for j in range(n):
        for k in range(n):
            if j != k:
                d0 = positions[k, 0] - positions[j, 0]
                d1 = positions[k, 1] - positions[j, 1]
                d2 = positions[k, 2] - positions[j, 2]
                if d0 * d0 + d1 * d1 + d2 * d2 < rc2:
                    count += 1
    first = np.empty(count, np.int64)
    second = np.empty(count, np.int64)
    vec = np.empty((count, 3))
    m = 0
    for j in range(n):
        for k in range(n):
            if j != k:
                d0 = positions[k, 0] - positions[j, 0]
                d1 = positions[k, 1] - positions[j, 1]
                d2 = positions[k, 2] - positions[j, 2]
                if d0 * d0 + d1 * d1 + d2 * d2 < rc2:
                    first[m] = j
                    second[m] = k
                    vec[m, 0] = d0
                    vec[m, 1] = d1
                    vec[m, 2] = d2
                    m += 1
    return first, second, vec


@njit(cache=True)
def _pairs_periodic(positions, cell, inverse, rc, n_bins, n_off):
    """Pairs within rc in a fully periodic cell (any shape and size), by a cell list.

    Fractional coordinates are wrapped into [0, 1) and binned ``n_bins[a]`` times along each
    lattice vector; bins ``n_off[a]`` away (with their lattice images) hold every neighbour,
    including the atom's own periodic images when the cell is smaller than the cutoff.
    """
    n = positions.shape[0]
    frac = positions @ inverse
    frac -= np.floor(frac)
    wrapped = frac @ cell
    nb0, nb1, nb2 = n_bins[0], n_bins[1], n_bins[2]
    n_cells = nb0 * nb1 * nb2
    owner = np.empty(n, np.int64)
    for i in range(n):
        b0 = min(int(frac[i, 0] * nb0), nb0 - 1)
        b1 = min(int(frac[i, 1] * nb1), nb1 - 1)
        b2 = min(int(frac[i, 2] * nb2), nb2 - 1)
        owner[i] = (b0 * nb1 + b1) * nb2 + b2
    start = np.zeros(n_cells + 1, np.int64)
    for i in range(n):
        start[owner[i] + 1] += 1
    for c in range(n_cells):
        start[c + 1] += start[c]
    members = np.empty(n, np.int64)
    fill = start[:-1].copy()
    for i in range(n):
        members[fill[owner[i]]] = i
        fill[owner[i]] += 1
    rc2 = rc * rc
    first = np.empty(0, np.int64)
    second = np.empty(0, np.int64)
    vec = np.empty((0, 3))
    for stage in range(2):  # count, then fill
        m = 0
        for j in range(n):
            c = owner[j]
            b0 = c // (nb1 * nb2)
            b1 = (c // nb2) % nb1
            b2 = c % nb2
            for o0 in range(-n_off[0], n_off[0] + 1):
                t0 = b0 + o0
                s0 = t0 // nb0
                t0 -= s0 * nb0
                for o1 in range(-n_off[1], n_off[1] + 1):
                    t1 = b1 + o1
                    s1 = t1 // nb1
                    t1 -= s1 * nb1
                    for o2 in range(-n_off[2], n_off[2] + 1):
                        t2 = b2 + o2
                        s2 = t2 // nb2
                        t2 -= s2 * nb2
                        sx = s0 * cell[0, 0] + s1 * cell[1, 0] + s2 * cell[2, 0]
                        sy = s0 * cell[0, 1] + s1 * cell[1, 1] + s2 * cell[2, 1]
                        sz = s0 * cell[0, 2] + s1 * cell[1, 2] + s2 * cell[2, 2]
                        same_image = s0 == 0 and s1 == 0 and s2 == 0
                        t = (t0 * nb1 + t1) * nb2 + t2
                        for q in range(start[t], start[t + 1]):
                            k = members[q]
                            if k == j and same_image:
                                continue
                            d0 = wrapped[k, 0] + sx - wrapped[j, 0]
                            d1 = wrapped[k, 1] + sy - wrapped[j, 1]
                            d2 = wrapped[k, 2] + sz - wrapped[j, 2]
                            if d0 * d0 + d1 * d1 + d2 * d2 < rc2:
                                if stage == 1:
                                    first[m] = j
                                    second[m] = k
                                    vec[m, 0] = d0
                                    vec[m, 1] = d1
                                    vec[m, 2] = d2
                                m += 1
        if stage == 0:
            first = np.empty(m, np.int64)
            second = np.empty(m, np.int64)
            vec = np.empty((m, 3))
    return first, second, vec


@njit(cache=True)
def _refresh_pairs(positions, first, second, shift, rc):
    """Pair vectors ``x_k - x_j + shift`` of a cached list, kept when shorter than rc."""
    n_pairs = first.shape[0]
    keep = np.empty(n_pairs, np.bool_)
    vec = np.empty((n_pairs, 3))
    rc2 = rc * rc
    count = 0
    for p in range(n_pairs):
        j = first[p]
        k = second[p]
        d0 = positions[k, 0] - positions[j, 0] + shift[p, 0]
        d1 = positions[k, 1] - positions[j, 1] + shift[p, 1]
        d2 = positions[k, 2] - positions[j, 2] + shift[p, 2]
        vec[p, 0] = d0
        vec[p, 1] = d1
        vec[p, 2] = d2
        keep[p] = d0 * d0 + d1 * d1 + d2 * d2 < rc2
        count += keep[p]
    f = np.empty(count, np.int64)
    s = np.empty(count, np.int64)
    v = np.empty((count, 3))
    m = 0
    for p in range(n_pairs):
        if keep[p]:
            f[m] = first[p]
            s[m] = second[p]
            v[m, 0] = vec[p, 0]
            v[m, 1] = vec[p, 1]
            v[m, 2] = vec[p, 2]
            m += 1
    return f, s, v



def neighbour_pairs(atoms, reach: float):
    """Pairs ``(first, second, vectors)`` closer than ``reach`` (Angstrom).

    ``vectors[p] = x[second[p]] - x[first[p]]`` plus the lattice shift of the image (Angstrom);
    every ordered pair appears once per image, ``j != k`` unless ``k`` is an image of ``j``.

    Raises
    ------
    InputError
        On a non-finite position (naming the atom) or a periodic structure without a cell.
    """
    positions = np.ascontiguousarray(atoms.positions, dtype=float)
    if not np.all(np.isfinite(positions)):
        bad = int(np.where(~np.isfinite(positions).all(axis=1))[0][0])
        raise InputError(f"atom {bad} has a non-finite position")
    if not atoms.pbc.any():
        return _pairs_molecule(positions, reach)
    cell = np.ascontiguousarray(atoms.cell.array, dtype=float)
    volume = abs(np.linalg.det(cell))
    if atoms.pbc.all() and volume > 1e-10:
        # perpendicular widths of the cell fix the bins and how many of them to search
        heights = volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
        n_bins = np.clip((heights / reach).astype(np.int64), 1, 64)
        n_off = np.ceil(reach * n_bins / heights).astype(np.int64)
        return _pairs_periodic(positions, cell, np.linalg.inv(cell), reach, n_bins, n_off)
    if abs(atoms.cell.volume) < 1e-10 and atoms.pbc.all():
        raise InputError(f"periodic structure (pbc={atoms.pbc.tolist()}) without a cell")
    from ase.neighborlist import neighbor_list  # partly periodic (slabs, wires)

    first, second, vectors = neighbor_list("ijD", atoms, reach, self_interaction=False)
    return (first.astype(np.int64), second.astype(np.int64),
            np.ascontiguousarray(vectors, dtype=float))


class NeighbourCache:
    """:func:`neighbour_pairs` for a sequence of nearby configurations (MD steps).

    Keeps the pairs within ``cutoff + skin`` with their lattice shifts, and reuses them
    while the structure (species, cell, pbc) is the same and no atom moved more than
    ``skin / 2`` since they were built: then only the pair vectors are recomputed and
    filtered to the cutoff. Saves the cell-list search on most MD steps.

    Parameters
    ----------
    cutoff : float
        Reach of the returned pairs, Angstrom.
    skin : float
        Verlet skin, Angstrom.
    """

    def __init__(self, cutoff: float, skin: float):
        self.cutoff = float(cutoff)
        self.skin = float(skin)
        self._cache = None

    def pairs(self, atoms):
        """Pairs ``(first, second, vectors)`` closer than the cutoff, as :func:`neighbour_pairs`."""
        positions = np.ascontiguousarray(atoms.positions, dtype=float)
        cache = self._cache
        valid = (cache is not None and len(positions) == len(cache["positions"])
                 and np.array_equal(atoms.numbers, cache["numbers"])
                 and np.array_equal(atoms.pbc, cache["pbc"])
                 and np.array_equal(atoms.cell.array, cache["cell"]))
        if valid:
            moved = np.einsum("ia,ia->i", positions - cache["positions"], positions - cache["positions"])
            valid = np.all(np.isfinite(moved)) and moved.max() < (0.5 * self.skin) ** 2
        if not valid:
            first, second, vectors = neighbour_pairs(atoms, self.cutoff + self.skin)
            shift = np.ascontiguousarray(vectors - (positions[second] - positions[first]))
            cache = self._cache = {"positions": positions.copy(), "numbers": atoms.numbers.copy(),
                                   "pbc": atoms.pbc.copy(), "cell": atoms.cell.array.copy(),
                                   "first": first, "second": second, "shift": shift}
        return _refresh_pairs(positions, cache["first"], cache["second"], cache["shift"], self.cutoff)
