"""Equivariant vector (lambda = 1) descriptors of atomic environments, with analytic gradients.

Construction
------------
For a central atom ``j`` and every neighbour ``k`` within the cutoff ``rc`` (Angstrom),
with ``d = x_k - x_j``, ``r = |d|`` and ``u = d / r``, the radial functions are

    f_n(r) = g_n(r) fc(r),   g_n(r) = sin(n pi r / rc) / r,   fc(r) = (cos(pi r / rc) + 1) / 2,

``n = 1 .. n_radial``: the Bessel basis (the l = 0 spherical Bessel functions that vanish at
``rc``) times the Behler-Parrinello cosine cutoff, so that value *and* slope go to zero at the
cutoff and the descriptors are continuously differentiable as atoms cross it.

Cartesian moments of the neighbour density, resolved by the neighbour's species ``t``
(index ``p = t * n_radial + n`` below):

    rho0[p]    = sum_k f_n(r_k)                     (scalar,   l = 0)
    rho1[p]_a  = sum_k f_n(r_k) u_a                 (vector,   l = 1)
    rho2[p]_ab = sum_k f_n(r_k) u_a u_b             (rank 2,   l = 2 and l = 0)
    rho3[p]_abc = sum_k f_n(r_k) u_a u_b u_c        (rank 3,   l = 3 and l = 1; only with rank3)

Vector features, all transforming like the position vector under rotations (proper
lambda = 1: the pseudo-vector ``rho1 x rho1`` is left out on purpose, a dipole is polar):

    V1[p]_a    = rho1[p]_a                          2-body
    V2[p, q]_a = rho0[p] rho1[q]_a                  3-body radial correlations (l1, l2) = (0, 1)
    V3[p, q]_a = sum_b rho1[p]_b rho2[q]_ab         3-body angular correlations (l1, l2) = (1, 2)
    V4[p, q]_a = sum_bc rho2[p]_bc rho3[q]_abc      3-body, (l1, l2) = (2, 3), optional (rank3)

and, on the first ``n_radial4`` radial functions of each species (reduced channels
``k``, pairs ``P = (k1 <= k2)``), three 4-body blocks

    (rho1[k1] . rho1[k2]) rho1[k3]_a,   rho0[k1] rho0[k2] rho1[k3]_a,   (rho2[k1] : rho2[k2]) rho1[k3]_a,

so ``S R + 2 (S R)^2`` (``+ (S R)^2`` with rank3) ``+ 3 K^2 (K + 1) / 2`` features per
component for ``S`` species, ``R`` radial functions and ``K = S n_radial4``.
These are the lambda-SOAP couplings of the density's angular channels written in Cartesian
form: each moment is one pass over the neighbours, products of moments give the 3- and
4-body terms without double or triple loops over neighbours, and the gradients follow by
the chain rule through the moments. The 4-body blocks are what takes the water-dimer dipole
from ~0.3 % to ~0.15 % (benchmarks/RESULTS_model.md); a small radial set keeps them cheap.
Everything is in Angstrom; the moments have units of 1/Angstrom.

Gradients are never materialised per (centre, neighbour, feature) at prediction time
(that is ~1 GB for 384 atoms): :meth:`Descriptor.backprop` contracts coefficient arrays
``dE/drho`` with the pair derivatives on the fly, and :meth:`Descriptor.feature_gradient_sum`
builds the per-structure sums ``sum_j dD(X_j)/dx_i`` that a linear model's least squares needs.

Neighbour lists: a numba double loop for molecules, a numba cell list for fully periodic
cells (any shape; cells smaller than twice the cutoff included: periodic images of an atom,
itself among them, are ordinary neighbours), :func:`ase.neighborlist.neighbor_list` for
partly periodic ones. The numba list is ~50x faster than ASE's for 384 atoms, which matters
when the model runs at every MD step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .errors import InputError

__all__ = ["Descriptor", "Environments", "species_indices"]


# --------------------------------------------------------------------------------------
# numba kernels
# --------------------------------------------------------------------------------------

@njit(cache=True, inline="always")
def _radial(r, rc, n_radial, f, df):
    """f_n(r) and df_n/dr for n = 1 .. n_radial (see module docstring)."""
    x = np.pi / rc
    c1 = np.cos(x * r)
    s1 = np.sin(x * r)
    fc = 0.5 * (c1 + 1.0)
    dfc = -0.5 * x * s1
    inv_r = 1.0 / r
    # sin(n t), cos(n t) by the angle-addition recurrence: two transcendental calls per pair
    sn, cn = s1, c1
    for n in range(n_radial):
        k = (n + 1) * x
        g = sn * inv_r
        dg = (k * cn - g) * inv_r
        f[n] = g * fc
        df[n] = dg * fc + g * dfc
        sn, cn = sn * c1 + cn * s1, cn * c1 - sn * s1


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


@njit(cache=True, fastmath=True)
def _radial_table(vectors, rc, n_radial):
    """Unit vectors, 1/r, f_n(r) and df_n/dr of every pair (zeros at or beyond rc).

    The angle-addition recurrence for sin(n t), cos(n t) runs with the pair index innermost,
    so that it vectorises across pairs.
    """
    n_pairs = vectors.shape[0]
    x = np.pi / rc
    unit = np.zeros((n_pairs, 3))
    inv_r = np.zeros(n_pairs)
    c1 = np.empty(n_pairs)
    s1 = np.empty(n_pairs)
    fc = np.zeros(n_pairs)
    dfc = np.zeros(n_pairs)
    for p in range(n_pairs):
        r = np.sqrt(vectors[p, 0] ** 2 + vectors[p, 1] ** 2 + vectors[p, 2] ** 2)
        c1[p] = np.cos(x * r)
        # sin(x r) >= 0 for r < rc (x r < pi): one transcendental call per pair
        s1[p] = np.sqrt(max(0.0, 1.0 - c1[p] * c1[p]))
        if 0.0 < r < rc:
            inv_r[p] = 1.0 / r
            fc[p] = 0.5 * (c1[p] + 1.0)
            dfc[p] = -0.5 * x * s1[p]
            for a in range(3):
                unit[p, a] = vectors[p, a] / r
    radial_t = np.empty((n_radial, n_pairs))
    dradial_t = np.empty((n_radial, n_pairs))
    sn = s1.copy()
    cn = c1.copy()
    for n in range(n_radial):
        k = (n + 1) * x
        for p in range(n_pairs):
            g = sn[p] * inv_r[p]
            dg = (k * cn[p] - g) * inv_r[p]
            radial_t[n, p] = g * fc[p]
            dradial_t[n, p] = dg * fc[p] + g * dfc[p]
            s_next = sn[p] * c1[p] + cn[p] * s1[p]
            cn[p] = cn[p] * c1[p] - sn[p] * s1[p]
            sn[p] = s_next
    return unit, inv_r, radial_t.T.copy(), dradial_t.T.copy()


@njit(cache=True, fastmath=True)
def _moments(n_atoms, first, unit, radial, nbr_species, n_species, with_rank3):
    """Density moments from the pair tables (unit vectors, radial functions), accumulated with
    the radial index innermost (vectorised); returned as (N, SR), (N, SR, 3), (N, SR, 3, 3),
    (N, SR or 0, 3, 3, 3)."""
    n_radial = radial.shape[1]
    m0 = np.zeros((n_atoms, n_species, n_radial))
    m1 = np.zeros((n_atoms, n_species, 3, n_radial))
    m2 = np.zeros((n_atoms, n_species, 6, n_radial))  # xx yy zz xy xz yz
    m3 = np.zeros((n_atoms, n_species if with_rank3 else 0, 10, n_radial))
    mono = np.empty(10)
    for p in range(first.shape[0]):
        j = first[p]
        t = nbr_species[p]
        x = unit[p, 0]
        y = unit[p, 1]
        z = unit[p, 2]
        f = radial[p]
        for n in range(n_radial):
            m0[j, t, n] += f[n]
        for n in range(n_radial):
            m1[j, t, 0, n] += f[n] * x
            m1[j, t, 1, n] += f[n] * y
            m1[j, t, 2, n] += f[n] * z
        mono[0] = x * x
        mono[1] = y * y
        mono[2] = z * z
        mono[3] = x * y
        mono[4] = x * z
        mono[5] = y * z
        for c in range(6):
            for n in range(n_radial):
                m2[j, t, c, n] += f[n] * mono[c]
        if with_rank3:
            # xxx yyy zzz xxy xxz xyy yyz xzz yzz xyz
            mono[0] = x * x * x
            mono[1] = y * y * y
            mono[2] = z * z * z
            mono[3] = x * x * y
            mono[4] = x * x * z
            mono[5] = x * y * y
            mono[6] = y * y * z
            mono[7] = x * z * z
            mono[8] = y * z * z
            mono[9] = x * y * z
            for c in range(10):
                for n in range(n_radial):
                    m3[j, t, c, n] += f[n] * mono[c]
    n_sr = n_species * n_radial
    rho0 = np.empty((n_atoms, n_sr))
    rho1 = np.empty((n_atoms, n_sr, 3))
    rho2 = np.empty((n_atoms, n_sr, 3, 3))
    rho3 = np.empty((n_atoms, n_sr if with_rank3 else 0, 3, 3, 3))
    # index of each (a, b) and (a, b, c) among the stored monomials
    i2 = np.array([[0, 3, 4], [3, 1, 5], [4, 5, 2]])
    i3 = np.empty((3, 3, 3), np.int64)
    for a in range(3):
        for b in range(3):
            for c in range(3):
                k = (1 << a) * 0
                na = (a == 0) + (b == 0) + (c == 0)
                nb = (a == 1) + (b == 1) + (c == 1)
                nc = 3 - na - nb
                if na == 3:
                    k = 0
                elif nb == 3:
                    k = 1
                elif nc == 3:
                    k = 2
                elif na == 2 and nb == 1:
                    k = 3
                elif na == 2 and nc == 1:
                    k = 4
                elif na == 1 and nb == 2:
                    k = 5
                elif nb == 2 and nc == 1:
                    k = 6
                elif na == 1 and nc == 2:
                    k = 7
                elif nb == 1 and nc == 2:
                    k = 8
                else:
                    k = 9
                i3[a, b, c] = k
    for j in range(n_atoms):
        for t in range(n_species):
            for n in range(n_radial):
                q = t * n_radial + n
                rho0[j, q] = m0[j, t, n]
                for a in range(3):
                    rho1[j, q, a] = m1[j, t, a, n]
                    for b in range(3):
                        rho2[j, q, a, b] = m2[j, t, i2[a, b], n]
                        if with_rank3:
                            for c in range(3):
                                rho3[j, q, a, b, c] = m3[j, t, i3[a, b, c], n]
    return rho0, rho1, rho2, rho3


@njit(cache=True, fastmath=True)
def _backprop_packed(n_atoms, first, second, unit, inv_r, radial, dradial, nbr_species, g0, g1, g2s, g3s,
                     h3):
    """out[i, o, c] = sum_j sum_(moments m of j) G[j, o, m] d m / d x_ic.

    Derivatives of O outputs with respect to each centre's moments, laid out with the radial
    index innermost so that the loop over it vectorises: g0 (N, S, O, R), g1 (N, S, O, 3, R),
    g2s (N, S, O, 3, 3, R) holding ``G2 + G2^T``, g3s (N, S or 0, O, 3, 3, 3, R) holding
    3 times the fully symmetrised ``G3`` (the moments are symmetric tensors: only the
    symmetric parts matter). ``h3`` (N, S or 0, 3, 3, R): a rank-3 term of the special form
    ``G3[o = a; a', b, c] = delta_(a a') h3_bc`` (what a linear model has; needs O = 3), far
    cheaper than the general ``g3s``. Returns (N, O, 3).
    """
    n_out = g0.shape[2]
    has_h3 = h3.shape[1] > 0
    n_radial = radial.shape[1]
    out = np.zeros((n_atoms, n_out, 3))
    fr = np.empty(n_radial)
    has3 = g3s.shape[1] > 0
    v3 = np.empty((3, n_radial))
    uu = np.empty((3, 3))
    for p in range(first.shape[0]):
        j = first[p]
        k = second[p]
        t = nbr_species[p]
        u0 = unit[p, 0]
        u1 = unit[p, 1]
        u2 = unit[p, 2]
        if has3:
            for b in range(3):
                for c in range(3):
                    uu[b, c] = unit[p, b] * unit[p, c]
        df = dradial[p]
        for n in range(n_radial):
            fr[n] = radial[p, n] * inv_r[p]
        for o in range(n_out):
            ax = 0.0
            ay = 0.0
            az = 0.0
            for n in range(n_radial):
                a0 = g1[j, t, o, 0, n]
                a1 = g1[j, t, o, 1, n]
                a2 = g1[j, t, o, 2, n]
                g1u = a0 * u0 + a1 * u1 + a2 * u2
                m0 = g2s[j, t, o, 0, 0, n] * u0 + g2s[j, t, o, 0, 1, n] * u1 + g2s[j, t, o, 0, 2, n] * u2
                m1 = g2s[j, t, o, 1, 0, n] * u0 + g2s[j, t, o, 1, 1, n] * u1 + g2s[j, t, o, 1, 2, n] * u2
                m2 = g2s[j, t, o, 2, 0, n] * u0 + g2s[j, t, o, 2, 1, n] * u1 + g2s[j, t, o, 2, 2, n] * u2
                umu = 0.5 * (u0 * m0 + u1 * m1 + u2 * m2)
                rad = df[n] * (g0[j, t, o, n] + g1u + umu)
                tang = fr[n] * (g1u + 2.0 * umu)
                ax += rad * u0 + fr[n] * (a0 + m0) - tang * u0
                ay += rad * u1 + fr[n] * (a1 + m1) - tang * u1
                az += rad * u2 + fr[n] * (a2 + m2) - tang * u2
            if has3:
                # rank 3: v_d = 3 G3s_dbc u_b u_c, t3 = G3s:uuu = v.u / 3 (n innermost)
                for n in range(n_radial):
                    v3[0, n] = 0.0
                    v3[1, n] = 0.0
                    v3[2, n] = 0.0
                for b in range(3):
                    for c in range(3):
                        w = uu[b, c]
                        for d in range(3):
                            for n in range(n_radial):
                                v3[d, n] += g3s[j, t, o, d, b, c, n] * w
                for n in range(n_radial):
                    t3 = (v3[0, n] * u0 + v3[1, n] * u1 + v3[2, n] * u2) / 3.0
                    rad = df[n] * t3 - 3.0 * fr[n] * t3
                    ax += rad * u0 + fr[n] * v3[0, n]
                    ay += rad * u1 + fr[n] * v3[1, n]
                    az += rad * u2 + fr[n] * v3[2, n]
            out[k, o, 0] += ax
            out[k, o, 1] += ay
            out[k, o, 2] += az
            out[j, o, 0] -= ax
            out[j, o, 1] -= ay
            out[j, o, 2] -= az
        if has_h3:
            # sum_bc h_bc d(f u_a u_b u_c)/dx_d
            #   = f' u_a w u_d + f/r (delta_ad w - 3 u_a u_d w + 2 u_a (h u)_d),  w = u.h.u
            for n in range(n_radial):
                hu0 = h3[j, t, 0, 0, n] * u0 + h3[j, t, 0, 1, n] * u1 + h3[j, t, 0, 2, n] * u2
                hu1 = h3[j, t, 1, 0, n] * u0 + h3[j, t, 1, 1, n] * u1 + h3[j, t, 1, 2, n] * u2
                hu2 = h3[j, t, 2, 0, n] * u0 + h3[j, t, 2, 1, n] * u1 + h3[j, t, 2, 2, n] * u2
                w = hu0 * u0 + hu1 * u1 + hu2 * u2
                fw = fr[n] * w
                for a in range(3):
                    ua = unit[p, a]
                    common = df[n] * ua * w - 3.0 * fr[n] * ua * w
                    gx = common * u0 + 2.0 * fr[n] * ua * hu0
                    gy = common * u1 + 2.0 * fr[n] * ua * hu1
                    gz = common * u2 + 2.0 * fr[n] * ua * hu2
                    if a == 0:
                        gx += fw
                    elif a == 1:
                        gy += fw
                    else:
                        gz += fw
                    out[k, a, 0] += gx
                    out[k, a, 1] += gy
                    out[k, a, 2] += gz
                    out[j, a, 0] -= gx
                    out[j, a, 1] -= gy
                    out[j, a, 2] -= gz
    return out


@njit(cache=True)
def _feature_gradient_sum(n_atoms, first, second, vec, nbr_species, centre_species,
                          n_species, n_radial, rc, rho0, rho1, rho2, rho3, n_feat):
    """phi[i, J, f, a, c] = sum over centres j of species J of dD_j[f, a] / dx_ic.

    Fills the 2- and 3-body blocks of a (N, S, n_feat, 3, 3) array (the 9 numbers of a
    feature side by side: every update touches one cache line).
    """
    n_sr = n_species * n_radial
    off2 = n_sr
    off3 = n_sr + n_sr * n_sr
    off4 = n_sr + 2 * n_sr * n_sr
    has3 = rho3.shape[1] > 0
    phi = np.zeros((n_atoms, n_species, n_feat, 3, 3))
    dr3 = np.empty((n_radial, 3, 3, 3, 3))
    proj = np.empty((3, 3))
    f = np.empty(n_radial)
    df = np.empty(n_radial)
    u = np.empty(3)
    dr0 = np.empty((n_radial, 3))
    dr1 = np.empty((n_radial, 3, 3))
    dr2 = np.empty((n_radial, 3, 3, 3))
    dv = np.empty((3, 3))
    for p in range(first.shape[0]):
        r = np.sqrt(vec[p, 0] ** 2 + vec[p, 1] ** 2 + vec[p, 2] ** 2)
        if r >= rc:
            continue
        j = first[p]
        k = second[p]
        jj = centre_species[j]
        inv_r = 1.0 / r
        for a in range(3):
            u[a] = vec[p, a] * inv_r
        _radial(r, rc, n_radial, f, df)
        for n in range(n_radial):
            fr = f[n] * inv_r
            for c in range(3):
                dr0[n, c] = df[n] * u[c]
            for a in range(3):
                for c in range(3):
                    pa = (1.0 if a == c else 0.0) - u[a] * u[c]
                    dr1[n, a, c] = df[n] * u[a] * u[c] + fr * pa
            for a in range(3):
                for c in range(3):
                    proj[a, c] = (1.0 if a == c else 0.0) - u[a] * u[c]
            for a in range(3):
                for b in range(3):
                    for c in range(3):
                        dr2[n, a, b, c] = df[n] * u[a] * u[b] * u[c] + fr * (proj[a, c] * u[b] + u[a] * proj[b, c])
                        if not has3:
                            continue
                        for d in range(3):
                            dr3[n, a, b, d, c] = (df[n] * u[a] * u[b] * u[d] * u[c]
                                                  + fr * (proj[a, c] * u[b] * u[d] + u[a] * proj[b, c] * u[d]
                                                          + u[a] * u[b] * proj[d, c]))
        base = nbr_species[p] * n_radial
        # V1[p]_a = rho1[p]_a
        for n in range(n_radial):
            col = base + n
            for a in range(3):
                for c in range(3):
                    phi[k, jj, col, a, c] += dr1[n, a, c]
                    phi[j, jj, col, a, c] -= dr1[n, a, c]
        # V2[pp, qq]_a = rho0[pp] rho1[qq]_a ; V3[pp, qq]_a = sum_b rho1[pp]_b rho2[qq]_ab
        for n in range(n_radial):
            pp = base + n
            # pp in the neighbour's block, all qq
            for qq in range(n_sr):
                for a in range(3):
                    for c in range(3):
                        v2 = dr0[n, c] * rho1[j, qq, a]
                        v3 = (dr1[n, 0, c] * rho2[j, qq, a, 0] + dr1[n, 1, c] * rho2[j, qq, a, 1]
                              + dr1[n, 2, c] * rho2[j, qq, a, 2])
                        phi[k, jj, off2 + pp * n_sr + qq, a, c] += v2
                        phi[j, jj, off2 + pp * n_sr + qq, a, c] -= v2
                        phi[k, jj, off3 + pp * n_sr + qq, a, c] += v3
                        phi[j, jj, off3 + pp * n_sr + qq, a, c] -= v3
                        if not has3:
                            continue
                        # V4[pp, qq]_a = sum_bd rho2[pp]_bd rho3[qq]_abd
                        v4 = 0.0
                        for b in range(3):
                            for d in range(3):
                                v4 += dr2[n, b, d, c] * rho3[j, qq, a, b, d]
                        phi[k, jj, off4 + pp * n_sr + qq, a, c] += v4
                        phi[j, jj, off4 + pp * n_sr + qq, a, c] -= v4
            qq = base + n
            # qq in the neighbour's block, all pp
            for pp in range(n_sr):
                for a in range(3):
                    for c in range(3):
                        dv[a, c] = (rho1[j, pp, 0] * dr2[n, a, 0, c] + rho1[j, pp, 1] * dr2[n, a, 1, c]
                                    + rho1[j, pp, 2] * dr2[n, a, 2, c])
                for a in range(3):
                    for c in range(3):
                        v2 = rho0[j, pp] * dr1[n, a, c]
                        phi[k, jj, off2 + pp * n_sr + qq, a, c] += v2
                        phi[j, jj, off2 + pp * n_sr + qq, a, c] -= v2
                        phi[k, jj, off3 + pp * n_sr + qq, a, c] += dv[a, c]
                        phi[j, jj, off3 + pp * n_sr + qq, a, c] -= dv[a, c]
                        if not has3:
                            continue
                        v4 = 0.0
                        for b in range(3):
                            for d in range(3):
                                v4 += rho2[j, pp, b, d] * dr3[n, a, b, d, c]
                        phi[k, jj, off4 + pp * n_sr + qq, a, c] += v4
                        phi[j, jj, off4 + pp * n_sr + qq, a, c] -= v4
    return phi


@njit(cache=True)
def _feature_gradient_sum_4body(phi, offset, first, second, vec, nbr_species, centre_species,
                                n_radial, n_radial4, rc, rho0, rho1, rho2, full, pair_i, pair_j,
                                s11, s00, s22):
    """Add the 4-body blocks' ``sum_j dD_j / dx`` to ``phi`` (N, S, F, 3, 3).

    Blocks, for reduced channels kappa (first ``n_radial4`` radial functions of each species,
    ``full[kappa]`` their index among all channels) and pairs P = (kappa1 <= kappa2):
    ``s11[P] rho1[kappa3]``, ``s00[P] rho1[kappa3]``, ``s22[P] rho1[kappa3]`` with
    ``s11 = rho1.rho1``, ``s00 = rho0 rho0``, ``s22 = rho2:rho2`` (per centre, precomputed).
    """
    n_k = full.shape[0]
    n_p = pair_i.shape[0]
    block = n_p * n_k
    f = np.empty(n_radial)
    df = np.empty(n_radial)
    u = np.empty(3)
    dr0 = np.empty((n_radial4, 3))
    dr1 = np.empty((n_radial4, 3, 3))
    dr2 = np.empty((n_radial4, 3, 3, 3))
    ds = np.empty((3, n_p, 3))
    for p in range(first.shape[0]):
        r = np.sqrt(vec[p, 0] ** 2 + vec[p, 1] ** 2 + vec[p, 2] ** 2)
        if r >= rc:
            continue
        j = first[p]
        k = second[p]
        jj = centre_species[j]
        sigma = nbr_species[p]
        inv_r = 1.0 / r
        for a in range(3):
            u[a] = vec[p, a] * inv_r
        _radial(r, rc, n_radial, f, df)
        for n in range(n_radial4):
            fr = f[n] * inv_r
            for c in range(3):
                dr0[n, c] = df[n] * u[c]
            for a in range(3):
                for c in range(3):
                    pa = (1.0 if a == c else 0.0) - u[a] * u[c]
                    dr1[n, a, c] = df[n] * u[a] * u[c] + fr * pa
                    for b in range(3):
                        pb = (1.0 if b == c else 0.0) - u[b] * u[c]
                        dr2[n, a, b, c] = df[n] * u[a] * u[b] * u[c] + fr * (pa * u[b] + u[a] * pb)
        # derivatives of the scalar factors s11, s00, s22 of every channel pair
        for q in range(n_p):
            k1 = pair_i[q]
            k2 = pair_j[q]
            for c in range(3):
                ds[0, q, c] = 0.0
                ds[1, q, c] = 0.0
                ds[2, q, c] = 0.0
            for side in range(2):
                mine = k1 if side == 0 else k2
                other = full[k2] if side == 0 else full[k1]
                if mine // n_radial4 != sigma:
                    continue
                n = mine % n_radial4
                for c in range(3):
                    acc1 = 0.0
                    acc2 = 0.0
                    for b in range(3):
                        acc1 += dr1[n, b, c] * rho1[j, other, b]
                        for d in range(3):
                            acc2 += dr2[n, b, d, c] * rho2[j, other, b, d]
                    ds[0, q, c] += acc1
                    ds[1, q, c] += dr0[n, c] * rho0[j, other]
                    ds[2, q, c] += acc2
        for q in range(n_p):
            for k3 in range(n_k):
                col = q * n_k + k3
                own = k3 // n_radial4 == sigma
                n3 = k3 % n_radial4
                for a in range(3):
                    v = rho1[j, full[k3], a]
                    for c in range(3):
                        g0 = ds[0, q, c] * v
                        g1 = ds[1, q, c] * v
                        g2 = ds[2, q, c] * v
                        if own:
                            g0 += s11[j, q] * dr1[n3, a, c]
                            g1 += s00[j, q] * dr1[n3, a, c]
                            g2 += s22[j, q] * dr1[n3, a, c]
                        phi[k, jj, offset + col, a, c] += g0
                        phi[j, jj, offset + col, a, c] -= g0
                        phi[k, jj, offset + block + col, a, c] += g1
                        phi[j, jj, offset + block + col, a, c] -= g1
                        phi[k, jj, offset + 2 * block + col, a, c] += g2
                        phi[j, jj, offset + 2 * block + col, a, c] -= g2


@njit(cache=True)
def _linear_moment_coefficients(rho0, rho1, rho2, rho3, centre_species, coeffs, n_radial4, full,
                                pair_i, pair_j, skip3):
    """Dipole ``M_a = sum_j sum_f c_J(j)[f] D[j, f, a]`` and its derivatives with respect to
    every atom's moments, for per-species coefficients ``coeffs`` (S, F); what
    ``moment_coefficients`` does for one output, without building the (N, F, 3) features.
    With ``skip3`` only the 4-body blocks are done (the rest goes faster through BLAS).
    Returns (M, G0 (N, 3, SR), G1 (N, 3, SR, 3), G2 (N, 3, SR, 3, 3), G3 (N, 3, SR, 3, 3, 3))."""
    n, n_sr = rho0.shape
    n_k = full.shape[0]
    n_p = pair_i.shape[0]
    off2 = n_sr
    off3 = n_sr + n_sr * n_sr
    has3 = rho3.shape[1] > 0
    off_r3 = n_sr + 2 * n_sr * n_sr
    block = n_p * n_k
    off4 = coeffs.shape[1] - 3 * block  # the 4-body blocks close the feature vector
    m = np.zeros(3)
    g3 = np.zeros((n, 3, n_sr if has3 else 0, 3, 3, 3))
    h3 = np.empty((n_sr, 3, 3))
    g0 = np.zeros((n, 3, n_sr))
    g1 = np.zeros((n, 3, n_sr, 3))
    g2 = np.zeros((n, 3, n_sr, 3, 3))
    h = np.empty((n_sr, 3))
    hp = np.empty((3, n_p, 3))
    for j in range(n):
        c = coeffs[centre_species[j]]
        if skip3:
            n_loop = 0
        else:
            n_loop = n_sr
        # 2-body and rho0 * rho1
        for q in range(n_loop):
            lin = c[q]
            for p in range(n_sr):
                lin += c[off2 + p * n_sr + q] * rho0[j, p]
            for a in range(3):
                g1[j, a, q, a] += lin
                m[a] += lin * rho1[j, q, a]
        for p in range(n_loop):
            for a in range(3):
                acc = 0.0
                for q in range(n_sr):
                    acc += c[off2 + p * n_sr + q] * rho1[j, q, a]
                g0[j, a, p] += acc
        # rho1 . rho2: E_a = c3[p, q] rho1[p]_b rho2[q]_ab
        for q in range(n_loop):
            for b in range(3):
                h[q, b] = 0.0
        for p in range(n_loop):
            for q in range(n_sr):
                cpq = c[off3 + p * n_sr + q]
                if cpq == 0.0:
                    continue
                for b in range(3):
                    h[q, b] += cpq * rho1[j, p, b]
                for a in range(3):
                    for b in range(3):
                        g1[j, a, p, b] += cpq * rho2[j, q, a, b]
        for q in range(n_loop):
            for a in range(3):
                for b in range(3):
                    g2[j, a, q, a, b] += h[q, b]
                    m[a] += h[q, b] * rho2[j, q, a, b]
        # rho2 : rho3: E_a = c4[p, q] rho2[p]_bc rho3[q]_abc
        for q in range(n_loop if has3 else 0):
            for b in range(3):
                for d in range(3):
                    h3[q, b, d] = 0.0
        for p in range(n_loop if has3 else 0):
            for q in range(n_sr):
                cpq = c[off_r3 + p * n_sr + q]
                if cpq == 0.0:
                    continue
                for b in range(3):
                    for d in range(3):
                        h3[q, b, d] += cpq * rho2[j, p, b, d]
                        for a in range(3):
                            g2[j, a, p, b, d] += cpq * rho3[j, q, a, b, d]
        for q in range(n_loop if has3 else 0):
            for a in range(3):
                for b in range(3):
                    for d in range(3):
                        g3[j, a, q, a, b, d] += h3[q, b, d]
                        m[a] += h3[q, b, d] * rho3[j, q, a, b, d]
        if n_k == 0:
            continue
        # 4-body: E_a = c_s[P, k] s[P] rho1[k]_a for s = rho1.rho1, rho0 rho0, rho2:rho2
        for t in range(3):
            for pp in range(n_p):
                k1 = full[pair_i[pp]]
                k2 = full[pair_j[pp]]
                if t == 0:
                    sv = rho1[j, k1, 0] * rho1[j, k2, 0] + rho1[j, k1, 1] * rho1[j, k2, 1] + rho1[j, k1, 2] * rho1[j, k2, 2]
                elif t == 1:
                    sv = rho0[j, k1] * rho0[j, k2]
                else:
                    sv = 0.0
                    for a in range(3):
                        for b in range(3):
                            sv += rho2[j, k1, a, b] * rho2[j, k2, a, b]
                for a in range(3):
                    hp[t, pp, a] = 0.0
                for kk in range(n_k):
                    ck = c[off4 + t * block + pp * n_k + kk]
                    if ck == 0.0:
                        continue
                    fk = full[kk]
                    for a in range(3):
                        hp[t, pp, a] += ck * rho1[j, fk, a]
                        g1[j, a, fk, a] += ck * sv
                for a in range(3):
                    m[a] += sv * hp[t, pp, a]
                # chain rule through s[P], symmetric in its two channels
                for a in range(3):
                    w = hp[t, pp, a]
                    if t == 0:
                        for b in range(3):
                            g1[j, a, k1, b] += w * rho1[j, k2, b]
                            g1[j, a, k2, b] += w * rho1[j, k1, b]
                    elif t == 1:
                        g0[j, a, k1] += w * rho0[j, k2]
                        g0[j, a, k2] += w * rho0[j, k1]
                    else:
                        for b in range(3):
                            for d in range(3):
                                g2[j, a, k1, b, d] += w * rho2[j, k2, b, d]
                                g2[j, a, k2, b, d] += w * rho2[j, k1, b, d]
    return m, g0, g1, g2, g3


# --------------------------------------------------------------------------------------
# Python face
# --------------------------------------------------------------------------------------

def species_indices(atoms, species, where: str = "structure") -> np.ndarray:
    """Index of every atom's chemical symbol in ``species``.

    Raises
    ------
    InputError
        Naming the first atom (index and symbol) whose species is not in ``species``.
    """
    from ase.data import atomic_numbers

    table = np.full(max(atomic_numbers.values()) + 1, -1, dtype=np.int64)
    for i, s in enumerate(species):
        table[atomic_numbers[s]] = i
    numbers = np.asarray(atoms.numbers)
    out = table[numbers]
    if (out < 0).any():
        i = int(np.where(out < 0)[0][0])
        symbol = atoms[i].symbol
        raise InputError(f"{where}: atom {i} is {symbol}, a species the model does not know "
                         f"(it knows {', '.join(species)})")
    return out


@dataclass
class Environments:
    """Neighbour list and density moments of one structure (what every later step needs)."""

    n_atoms: int
    centre_species: np.ndarray  # (N,) int: species index of every atom
    first: np.ndarray  # (P,) centre of each pair
    second: np.ndarray  # (P,) neighbour of each pair
    vectors: np.ndarray  # (P, 3) x_second - x_first (+ lattice shift), Angstrom
    nbr_species: np.ndarray  # (P,) species index of the neighbour
    rho0: np.ndarray  # (N, SR)
    rho1: np.ndarray  # (N, SR, 3)
    rho2: np.ndarray  # (N, SR, 3, 3)
    rho3: np.ndarray  # (N, SR or 0, 3, 3, 3)
    unit: np.ndarray = None  # (P, 3) unit vectors of the pairs
    inv_r: np.ndarray = None  # (P,) 1 / distance, 1/Angstrom
    radial: np.ndarray = None  # (P, R) f_n(r)
    dradial: np.ndarray = None  # (P, R) df_n/dr


class Descriptor:
    """The lambda = 1 descriptor ``D[f, a](X_j)`` of every atom (see the module docstring).

    Parameters
    ----------
    species : sequence of str
        Chemical symbols, in the order that fixes the species index of the features.
    cutoff : float
        Cutoff radius in Angstrom.
    n_radial : int
        Number of Bessel radial functions per neighbour species.
    n_radial4 : int
        Radial functions per species (the first ones) entering the 4-body blocks; 0 turns
        them off.
    rank3 : bool
        Include the (l1, l2) = (2, 3) block V4 (and the rank-3 moments it needs).
    """

    def __init__(self, species, cutoff: float = 5.5, n_radial: int = 8, n_radial4: int = 0,
                 rank3: bool = False):
        if cutoff <= 0:
            raise InputError(f"cutoff must be positive, got {cutoff}")
        if n_radial < 1:
            raise InputError(f"n_radial must be at least 1, got {n_radial}")
        if not 0 <= n_radial4 <= n_radial:
            raise InputError(f"n_radial4 must be between 0 and n_radial ({n_radial}), got {n_radial4}")
        self.species = list(species)
        self.cutoff = float(cutoff)
        self.n_radial = int(n_radial)
        self.n_radial4 = int(n_radial4)
        self.rank3 = bool(rank3)
        # reduced channels of the 4-body blocks and their pairs kappa1 <= kappa2
        self._full = np.array([t * self.n_radial + n for t in range(len(self.species))
                               for n in range(self.n_radial4)], dtype=np.int64)
        iu = np.triu_indices(len(self._full))
        self._pair_i = iu[0].astype(np.int64)
        self._pair_j = iu[1].astype(np.int64)

    # sizes ------------------------------------------------------------------------------
    @property
    def n_species(self) -> int:
        return len(self.species)

    @property
    def n_sr(self) -> int:
        return self.n_species * self.n_radial

    @property
    def n_features3(self) -> int:
        """2- and 3-body features per vector component: ``S R + 2 (S R)^2``, plus ``(S R)^2``
        with ``rank3``."""
        return self.n_sr + (3 if self.rank3 else 2) * self.n_sr ** 2

    @property
    def n_block4(self) -> int:
        """Features in each 4-body block: ``K (K + 1) / 2 * K`` with ``K = S n_radial4``."""
        k = len(self._full)
        return k * (k + 1) // 2 * k

    @property
    def n_features(self) -> int:
        """Features per vector component."""
        return self.n_features3 + 3 * self.n_block4

    def feature_blocks(self) -> dict:
        """Slices of the feature axis, by block name."""
        a, b, c, d = self.n_sr, self.n_sr + self.n_sr ** 2, self.n_features3, self.n_block4
        return {"2-body": slice(0, a), "rho0*rho1": slice(a, b), "rho1.rho2": slice(b, b + self.n_sr ** 2),
                "rho2:rho3": slice(b + self.n_sr ** 2, c),
                "(rho1.rho1)*rho1": slice(c, c + d), "rho0*rho0*rho1": slice(c + d, c + 2 * d),
                "(rho2:rho2)*rho1": slice(c + 2 * d, c + 3 * d)}

    def _scalar_pairs(self, env: Environments):
        """Per-centre scalar factors of the 4-body blocks: rho1.rho1, rho0 rho0, rho2:rho2 (N, K(K+1)/2)."""
        r0, r1, r2 = env.rho0[:, self._full], env.rho1[:, self._full], env.rho2[:, self._full]
        i, j = self._pair_i, self._pair_j
        s11 = np.einsum("npa,npa->np", r1[:, i], r1[:, j])
        s00 = r0[:, i] * r0[:, j]
        s22 = np.einsum("npab,npab->np", r2[:, i], r2[:, j])
        return s11, s00, s22

    # neighbours and moments ---------------------------------------------------------------
    def neighbours(self, atoms, skin: float = 0.0):
        """Pairs ``(first, second, vectors)`` closer than ``cutoff + skin`` (Angstrom)."""
        positions = np.ascontiguousarray(atoms.positions, dtype=float)
        if not np.all(np.isfinite(positions)):
            bad = int(np.where(~np.isfinite(positions).all(axis=1))[0][0])
            raise InputError(f"atom {bad} has a non-finite position")
        reach = self.cutoff + skin
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

    #: Verlet skin (Angstrom) of the neighbour list reused between calls (MD steps)
    SKIN = 0.6

    def cached_neighbours(self, atoms):
        """``neighbours`` for a sequence of nearby configurations (MD steps).

        Keeps the pairs within ``cutoff + SKIN`` with their lattice shifts, and reuses them
        while the structure (species, cell, pbc) is the same and no atom moved more than
        ``SKIN / 2`` since they were built: then only the pair vectors are recomputed and
        filtered to the cutoff. Saves the cell-list search on most MD steps.
        """
        positions = np.ascontiguousarray(atoms.positions, dtype=float)
        cache = getattr(self, "_cache", None)
        valid = (cache is not None and len(positions) == len(cache["positions"])
                 and np.array_equal(atoms.numbers, cache["numbers"])
                 and np.array_equal(atoms.pbc, cache["pbc"])
                 and np.array_equal(atoms.cell.array, cache["cell"]))
        if valid:
            moved = np.einsum("ia,ia->i", positions - cache["positions"], positions - cache["positions"])
            valid = np.all(np.isfinite(moved)) and moved.max() < (0.5 * self.SKIN) ** 2
        if not valid:
            first, second, vectors = self.neighbours(atoms, skin=self.SKIN)
            shift = np.ascontiguousarray(vectors - (positions[second] - positions[first]))
            cache = self._cache = {"positions": positions.copy(), "numbers": atoms.numbers.copy(),
                                   "pbc": atoms.pbc.copy(), "cell": atoms.cell.array.copy(),
                                   "first": first, "second": second, "shift": shift}
        return _refresh_pairs(positions, cache["first"], cache["second"], cache["shift"], self.cutoff)

    def environments(self, atoms, where: str = "structure", reuse: bool = False) -> Environments:
        """Neighbour list and moments of ``atoms`` (raises InputError on unknown species).

        ``reuse``: take the neighbour list from :meth:`cached_neighbours` (for MD steps).
        """
        centre_species = species_indices(atoms, self.species, where)
        first, second, vectors = self.cached_neighbours(atoms) if reuse else self.neighbours(atoms)
        nbr_species = centre_species[second]
        unit, inv_r, radial, dradial = self.radial_table(vectors)
        rho0, rho1, rho2, rho3 = _moments(len(atoms), first, unit, radial, nbr_species,
                                          self.n_species, self.rank3)
        return Environments(len(atoms), centre_species, first, second, vectors, nbr_species,
                            rho0, rho1, rho2, rho3, unit, inv_r, radial, dradial)

    def radial_table(self, vectors):
        """Unit vectors, 1/r and ``f_n(r)``, ``df_n/dr`` (P, R) of pair vectors (Angstrom).

        Computed once per structure (vectorised across pairs): the kernels then read the table
        instead of each recomputing the radial functions. Pairs at or beyond the cutoff get
        zeros.
        """
        unit, inv_r, radial, dradial = _radial_table(np.ascontiguousarray(vectors, dtype=float),
                                                     self.cutoff, self.n_radial)
        return unit, inv_r, radial, dradial

    # features -----------------------------------------------------------------------------
    def features(self, env: Environments) -> np.ndarray:
        """``D[j, f, a]`` for every atom ``j``: shape (N, F, 3), units of 1/Angstrom^(order)."""
        n = env.n_atoms
        v1 = env.rho1
        v2 = (env.rho0[:, :, None, None] * env.rho1[:, None, :, :]).reshape(n, -1, 3)
        v3 = np.einsum("npb,nqab->npqa", env.rho1, env.rho2, optimize=True).reshape(n, -1, 3)
        blocks = [v1, v2, v3]
        if self.rank3:
            blocks.append(np.einsum("npbc,nqabc->npqa", env.rho2, env.rho3, optimize=True).reshape(n, -1, 3))
        if self.n_radial4:
            r1 = env.rho1[:, self._full]
            for scalar in self._scalar_pairs(env):
                blocks.append((scalar[:, :, None, None] * r1[:, None, :, :]).reshape(n, -1, 3))
        return np.concatenate(blocks, axis=1)

    def compute(self, atoms) -> np.ndarray:
        """Shortcut: ``features(environments(atoms))``, shape (N, F, 3)."""
        return self.features(self.environments(atoms))

    def moment_coefficients(self, env: Environments, coefficients: np.ndarray):
        """Chain rule from features to moments for per-atom coefficient vectors.

        For outputs ``E[j, o, a] = sum_f coefficients[j, o, f] D[j, f, a]`` return
        ``(G0, G1, G2, G3)``, the derivatives of ``E`` (output index ``3 o + a``) with respect
        to ``rho0`` ... ``rho3`` of atom ``j``: shapes (N, 3 O, SR), (N, 3 O, SR, 3),
        (N, 3 O, SR, 3, 3), (N, 3 O, SR, 3, 3, 3).
        """
        n, sr = env.n_atoms, self.n_sr
        c = np.asarray(coefficients, dtype=float)
        n_out = c.shape[1]
        c1 = c[:, :, :sr]
        c2 = c[:, :, sr:sr + sr * sr].reshape(n, n_out, sr, sr)
        c3 = c[:, :, sr + sr * sr:sr + 2 * sr * sr].reshape(n, n_out, sr, sr)
        eye = np.eye(3)
        # E_a = c1[p] rho1[p]_a + c2[p,q] rho0[p] rho1[q]_a + c3[p,q] rho1[p]_b rho2[q]_ab
        g0 = np.einsum("nopq,nqa->noap", c2, env.rho1, optimize=True)
        lin = c1 + np.einsum("nopq,np->noq", c2, env.rho0, optimize=True)
        g1 = (lin[:, :, None, :, None] * eye[None, None, :, None, :]
              + np.einsum("nopq,nqab->noapb", c3, env.rho2, optimize=True))
        h = np.einsum("nopq,npb->noqb", c3, env.rho1, optimize=True)
        g2 = h[:, :, None, :, None, :] * eye[None, None, :, None, :, None]
        g3 = None
        if self.rank3:  # + c4[p,q] rho2[p]_bc rho3[q]_abc
            c4 = c[:, :, sr + 2 * sr * sr:self.n_features3].reshape(n, n_out, sr, sr)
            g2 = g2 + np.einsum("nopq,nqabc->noapbc", c4, env.rho3, optimize=True)
            h3 = np.einsum("nopq,npbc->noqbc", c4, env.rho2, optimize=True)
            g3 = h3[:, :, None, :, None, :, :] * eye[None, None, :, None, :, None, None]
        if self.n_radial4:
            g0, g1, g2 = self._moment_coefficients4(env, c, g0, g1, g2)
        return (np.ascontiguousarray(g0.reshape(n, 3 * n_out, sr)),
                np.ascontiguousarray(g1.reshape(n, 3 * n_out, sr, 3)),
                np.ascontiguousarray(g2.reshape(n, 3 * n_out, sr, 3, 3)),
                None if g3 is None else np.ascontiguousarray(g3.reshape(n, 3 * n_out, sr, 3, 3, 3)))

    def _moment_coefficients4(self, env, c, g0, g1, g2):
        """Add the 4-body blocks' chain rule to (g0, g1, g2) (shapes as in moment_coefficients)."""
        n = env.n_atoms
        n_out = c.shape[1]
        full, n_k, n_p = self._full, len(self._full), len(self._pair_i)
        r0, r1, r2 = env.rho0[:, full], env.rho1[:, full], env.rho2[:, full]
        scalars = self._scalar_pairs(env)
        eye = np.eye(3)
        g0, g1, g2 = g0.copy(), g1.copy(), g2.copy()
        start = self.n_features3
        for block, scalar in enumerate(scalars):
            cb = c[:, :, start + block * self.n_block4: start + (block + 1) * self.n_block4]
            cb = cb.reshape(n, n_out, n_p, n_k)
            # E_a = sum_(P, k3) c[P, k3] s[P] rho1[k3]_a
            lin = np.einsum("nopk,np->nok", cb, scalar)
            g1[:, :, :, full, :] += lin[:, :, None, :, None] * eye[None, None, :, None, :]
            hp = np.einsum("nopk,nka->noap", cb, r1)  # dE_a / ds[P]
            hs = np.zeros((n, n_out, 3, n_k, n_k))
            hs[:, :, :, self._pair_i, self._pair_j] = hp
            hs = hs + np.swapaxes(hs, 3, 4)  # s[P] symmetric in its two channels
            if block == 0:  # s = rho1.rho1
                g1[:, :, :, full, :] += np.einsum("noakl,nlb->noakb", hs, r1)
            elif block == 1:  # s = rho0 rho0
                g0[:, :, :, full] += np.einsum("noakl,nl->noak", hs, r0)
            else:  # s = rho2:rho2
                g2[:, :, :, full, :, :] += np.einsum("noakl,nlbc->noakbc", hs, r2)
        return g0, g1, g2

    def linear_dipole(self, env: Environments, coefficients: np.ndarray):
        """``M_a = sum_j sum_f coefficients[J(j), f] D[j, f, a]`` and ``Z = dM/dx``.

        ``coefficients`` (S, F): one vector per centre species. The fast path of a linear
        model's prediction: no (N, F, 3) feature array is built. Returns ``(M (3,), Z (N, 3, 3))``.
        """
        coefficients = np.ascontiguousarray(coefficients, dtype=float)
        # the numba kernel does the 4-body blocks only (no rank-3 arrays needed there)
        m, g0, g1, g2, _ = _linear_moment_coefficients(
            env.rho0, env.rho1, env.rho2, env.rho3[:, :0], env.centre_species, coefficients,
            self.n_radial4, self._full, self._pair_i, self._pair_j, True)
        h3 = np.zeros((env.n_atoms, self.n_sr, 3, 3)) if self.rank3 else None
        m = m + self._linear_blas(env, coefficients, g0, g1, g2, h3)
        return m, self.backprop(env, g0, g1, g2, None, h3)

    def _linear_blas(self, env, coefficients, g0, g1, g2, h3):
        """The 2- and 3-body blocks of :meth:`linear_dipole`, as matrix products per species
        (added to the g arrays and to h3 in place); returns their dipole."""
        sr = self.n_sr
        m = np.zeros(3)
        for t in range(self.n_species):
            idx = np.where(env.centre_species == t)[0]
            if not len(idx):
                continue
            c = coefficients[t]
            c1 = c[:sr]
            c2 = c[sr:sr + sr * sr].reshape(sr, sr)
            c3 = c[sr + sr * sr:sr + 2 * sr * sr].reshape(sr, sr)
            r0, r1, r2 = env.rho0[idx], env.rho1[idx], env.rho2[idx]
            n = len(idx)
            r1t = r1.transpose(0, 2, 1)  # (n, 3, SR)
            # 2-body and rho0 * rho1: E_a = (c1[q] + c2[p, q] rho0[p]) rho1[q]_a
            lin = c1 + r0 @ c2  # (n, SR)
            m += np.einsum("jq,jqa->a", lin, r1)
            g1_add = np.zeros((n, 3, sr, 3))
            for a in range(3):
                g1_add[:, a, :, a] = lin
            g0[idx] += r1t @ c2.T  # sum_q c2[p, q] rho1[q]_a -> (n, a, p)
            # rho1 . rho2: E_a = c3[p, q] rho1[p]_b rho2[q]_ab
            r2f = r2.reshape(n, sr, 9).transpose(0, 2, 1)  # (n, ab, SR)
            g1_add += (r2f @ c3.T).reshape(n, 3, 3, sr).transpose(0, 1, 3, 2)
            g1[idx] += g1_add
            h = r1t @ c3  # (n, b, q) = sum_p c3[p, q] rho1[p]_b
            g2_add = np.zeros((n, 3, sr, 3, 3))
            for a in range(3):
                g2_add[:, a, :, a, :] = h.transpose(0, 2, 1)
            m += np.einsum("jbq,jqab->a", h, r2)
            if self.rank3:  # E_a = c4[p, q] rho2[p]_bc rho3[q]_abc
                c4 = c[sr + 2 * sr * sr:sr + 3 * sr * sr].reshape(sr, sr)
                r3 = env.rho3[idx]
                r3f = r3.reshape(n, sr, 3, 9).transpose(0, 2, 3, 1)  # (n, a, bc, q)
                g2_add += (r3f @ c4.T).reshape(n, 3, 3, 3, sr).transpose(0, 1, 4, 2, 3)
                h3q = (r2.reshape(n, sr, 9).transpose(0, 2, 1) @ c4).transpose(0, 2, 1).reshape(n, sr, 3, 3)
                h3[idx] += h3q  # G3[a; a', b, c] = delta_(a a') h3q[q, b, c]
                m += np.einsum("jqbc,jqabc->a", h3q, r3, optimize=True)
            g2[idx] += g2_add
        return m

    def backprop(self, env: Environments, g0, g1, g2, g3=None, h3=None) -> np.ndarray:
        """Position derivatives ``out[i, o, c] = d E_o / d x_ic`` from moment derivatives.

        ``E_o = sum_j E_o(moments of j)``; ``g0 ... g3`` as returned by
        :meth:`moment_coefficients` (or any other function of the moments; ``g3`` None when
        E does not depend on rho3). ``h3`` (N, SR, 3, 3), optional: a rank-3 term of the form
        ``G3[o = a; a', b, c] = delta_(a a') h3_bc`` for 3 outputs (a linear model's), cheaper
        than the general ``g3``. Units: 1/Angstrom times those of ``E``.
        """
        n, n_out = g0.shape[0], g0.shape[1]
        s_, r_ = self.n_species, self.n_radial
        # (N, O, S R, ...) -> (N, S, O, ..., R): the radial index innermost
        g0 = np.ascontiguousarray(g0.reshape(n, n_out, s_, r_).transpose(0, 2, 1, 3))
        g1 = np.ascontiguousarray(g1.reshape(n, n_out, s_, r_, 3).transpose(0, 2, 1, 4, 3))
        g2 = g2.reshape(n, n_out, s_, r_, 3, 3).transpose(0, 2, 1, 4, 5, 3)
        g2s = np.ascontiguousarray(g2 + np.swapaxes(g2, 3, 4))
        if g3 is None:
            g3s = np.zeros((n, 0, n_out, 3, 3, 3, r_))
        else:  # 3 x the symmetric part over (a, b, c)
            g3 = g3.reshape(n, n_out, s_, r_, 3, 3, 3).transpose(0, 2, 1, 4, 5, 6, 3)
            g3s = np.ascontiguousarray(
                (g3 + g3.transpose(0, 1, 2, 3, 5, 4, 6) + g3.transpose(0, 1, 2, 4, 3, 5, 6)
                 + g3.transpose(0, 1, 2, 4, 5, 3, 6) + g3.transpose(0, 1, 2, 5, 3, 4, 6)
                 + g3.transpose(0, 1, 2, 5, 4, 3, 6)) / 2.0)
        if h3 is None:
            h3p = np.zeros((n, 0, 3, 3, r_))
        else:
            h3p = np.ascontiguousarray(h3.reshape(n, s_, r_, 3, 3).transpose(0, 1, 3, 4, 2))
        return _backprop_packed(env.n_atoms, env.first, env.second, env.unit, env.inv_r, env.radial,
                                env.dradial, env.nbr_species, g0, g1, g2s, g3s, h3p)

    def contracted_gradient(self, env: Environments, coefficients: np.ndarray) -> np.ndarray:
        """``out[i, o, a, c] = d/dx_ic sum_j sum_f coefficients[j, o, f] D[j, f, a]``.

        ``coefficients`` has shape (N, O, F); output (N, O, 3, 3).
        """
        out = self.backprop(env, *self.moment_coefficients(env, coefficients))
        return out.reshape(env.n_atoms, -1, 3, 3)

    def feature_gradient_sum(self, env: Environments) -> np.ndarray:
        """``phi[i, a, c, J, f] = sum_(j of species J) dD[j, f, a] / dx_ic``, shape (N, 3, 3, S, F).

        What the least squares of a linear model on Born charges needs, built without the
        per-centre gradient.
        """
        phi = _feature_gradient_sum(env.n_atoms, env.first, env.second, env.vectors,
                                    env.nbr_species, env.centre_species, self.n_species,
                                    self.n_radial, self.cutoff, env.rho0, env.rho1, env.rho2,
                                    env.rho3, self.n_features)
        if self.n_radial4:
            s11, s00, s22 = self._scalar_pairs(env)
            _feature_gradient_sum_4body(phi, self.n_features3, env.first, env.second, env.vectors,
                                        env.nbr_species, env.centre_species, self.n_radial,
                                        self.n_radial4, self.cutoff, env.rho0, env.rho1, env.rho2,
                                        self._full, self._pair_i, self._pair_j, s11, s00, s22)
        return np.ascontiguousarray(phi.transpose(0, 3, 4, 1, 2))

    # invariants (for the polynomial kernel) ---------------------------------------------------
    def invariants(self, env: Environments) -> np.ndarray:
        """Rotation-invariant features ``(N, P)``: rho0, rho1.rho1 and rho2:rho2 (pairs p <= q)."""
        iu = np.triu_indices(self.n_sr)
        p11 = np.einsum("npa,nqa->npq", env.rho1, env.rho1, optimize=True)[:, iu[0], iu[1]]
        p22 = np.einsum("npab,nqab->npq", env.rho2, env.rho2, optimize=True)[:, iu[0], iu[1]]
        return np.concatenate([env.rho0, p11, p22], axis=1)

    def invariant_moment_coefficients(self, env: Environments, e: np.ndarray):
        """Chain rule from invariants to moments: ``e`` (N, O, P) -> (G0, G1, G2) for O outputs."""
        n, sr = env.n_atoms, self.n_sr
        n_out = e.shape[1]
        iu = np.triu_indices(sr)
        n_pair = len(iu[0])
        e0 = e[:, :, :sr]
        e11 = np.zeros((n, n_out, sr, sr))
        e22 = np.zeros((n, n_out, sr, sr))
        e11[:, :, iu[0], iu[1]] = e[:, :, sr:sr + n_pair]
        e22[:, :, iu[0], iu[1]] = e[:, :, sr + n_pair:]
        e11 = e11 + np.swapaxes(e11, 2, 3)
        e22 = e22 + np.swapaxes(e22, 2, 3)
        g0 = np.ascontiguousarray(e0)
        g1 = np.ascontiguousarray(np.einsum("nopq,nqa->nopa", e11, env.rho1, optimize=True))
        g2 = np.ascontiguousarray(np.einsum("nopq,nqab->nopab", e22, env.rho2, optimize=True))
        return g0, g1, g2, None
