"""Numba kernels of the moment descriptor: radial table, density moments, and the chain rule.

Every kernel reads the per-pair table of :func:`radial_table` (unit vectors, 1/r, f_n(r) and
df_n/dr, computed once per structure), so the radial functions are written once. The two
kernels of ``sum_j dD_j / dx`` share the position derivatives of one pair's moment
contributions through the inlined :func:`_pair_derivatives`. Lengths in Angstrom, moments in
1/Angstrom (see :mod:`ipi_dipole.descriptors`).

Kinds of descriptor other than the Cartesian moments can reuse :func:`radial_table` and
:func:`backprop_moments` (any function of the moments rho0 ... rho3) and add their own
feature kernels beside these.
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange

__all__ = ["radial_table", "moments", "backprop_moments", "feature_gradient_sum",
           "feature_gradient_sum_4body", "linear_moment_coefficients"]


@njit(cache=True, fastmath=True)
def radial_table(vectors, rc, n_radial):
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


@njit(cache=True, fastmath=True, parallel=True)
def _moments(n_atoms, first, unit, radial, nbr_species, n_species, with_rank3, n_threads):
    """Density moments from the pair tables (unit vectors, radial functions), accumulated with
    the radial index innermost (vectorised); returned as (N, SR), (N, SR, 3), (N, SR, 3, 3),
    (N, SR or 0, 3, 3, 3)."""
    n_radial = radial.shape[1]
    m0 = np.zeros((n_atoms, n_species, n_radial))
    m1 = np.zeros((n_atoms, n_species, 3, n_radial))
    m2 = np.zeros((n_atoms, n_species, 6, n_radial))  # xx yy zz xy xz yz
    m3 = np.zeros((n_atoms, n_species if with_rank3 else 0, 10, n_radial))
    n_pairs = first.shape[0]
    # pairs come ordered by centre: chunks of centres own disjoint pair ranges and rows
    n_chunks = max(1, min(n_threads, n_pairs // 1024))
    ordered = True
    for p in range(1, n_pairs):
        if first[p] < first[p - 1]:
            ordered = False
    if not ordered:
        n_chunks = 1
    # bounds[c]: the first pair whose centre belongs to chunk c or later
    bounds = np.full(n_chunks + 1, n_pairs, np.int64)
    bounds[0] = 0
    c = 1
    for p in range(n_pairs):
        while c < n_chunks and first[p] >= c * n_atoms // n_chunks:
            bounds[c] = p
            c += 1
    for chunk in prange(n_chunks):
        mono = np.empty(10)
        for p in range(bounds[chunk], bounds[chunk + 1]):
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


def moments(n_atoms, first, unit, radial, nbr_species, n_species, with_rank3):
    """:func:`_moments` on numba's current number of threads (``numba.set_num_threads``;
    passed in, because a kernel asking numba for it cannot be cached)."""
    return _moments(n_atoms, first, unit, radial, nbr_species, n_species, with_rank3, get_num_threads())


@njit(cache=True, fastmath=True, parallel=True)
def _backprop_moments(n_atoms, first, second, unit, inv_r, radial, dradial, nbr_species, g0, g1, g2s, g3s,
                     h3, n_threads):
    """out[i, o, c] = sum_j sum_(moments m of j) G[j, o, m] d m / d x_ic.

    Derivatives of O outputs with respect to each centre's moments, laid out with the radial
    index innermost so that the loop over it vectorises: g0 (N, S, O, R), g1 (N, S, O, 3, R),
    g2s (N, S, O, 3, 3, R) holding ``G2 + G2^T``, g3s (N, S or 0, O, 3, 3, 3, R) holding
    3 times the fully symmetrised ``G3`` (the moments are symmetric tensors: only the
    symmetric parts matter). ``h3`` (N, S or 0, 3, 3, R): a rank-3 term of the special form
    ``G3[o = a; a', b, c] = delta_(a a') h3_bc`` (what a linear model has; needs O = 3), far
    cheaper than the general ``g3s``. Returns (N, O, 3).

    The pairs are split into one contiguous chunk per numba thread, each accumulating into
    its own copy of the output (a pair writes to two atoms: threads would race on one copy).
    """
    n_out = g0.shape[2]
    has_h3 = h3.shape[1] > 0
    n_radial = radial.shape[1]
    has3 = g3s.shape[1] > 0
    n_pairs = first.shape[0]
    n_chunks = max(1, min(n_threads, n_pairs // 256))
    partial = np.zeros((n_chunks, n_atoms, n_out, 3))
    for chunk in prange(n_chunks):
        out = partial[chunk]
        fr = np.empty(n_radial)
        v3 = np.empty((3, n_radial))
        uu = np.empty((3, 3))
        for p in range(chunk * n_pairs // n_chunks, (chunk + 1) * n_pairs // n_chunks):
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
    return partial.sum(axis=0)


def backprop_moments(n_atoms, first, second, unit, inv_r, radial, dradial, nbr_species, g0, g1, g2s, g3s,
                     h3):
    """:func:`_backprop_moments` on numba's current number of threads (``numba.set_num_threads``;
    passed in, because a kernel asking numba for it cannot be cached)."""
    return _backprop_moments(n_atoms, first, second, unit, inv_r, radial, dradial, nbr_species, g0, g1, g2s,
                             g3s, h3, get_num_threads())


@njit(cache=True, inline="always")
def _pair_derivatives(unit, inv_r, radial, dradial, p, n_count, with_rank3, proj, dr0, dr1, dr2, dr3):
    """Position derivatives of pair ``p``'s contributions to the moments, for its first
    ``n_count`` radial functions, with respect to the neighbour's position ``x_c``:

        dr0[n, c] = d f_n / dx_c,   dr1[n, a, c] = d (f_n u_a) / dx_c,
        dr2[n, a, b, c] = d (f_n u_a u_b) / dx_c,   dr3[n, a, b, d, c] = d (f_n u_a u_b u_d) / dx_c

    (the centre's derivatives are their negatives); ``dr3`` only ``with_rank3``. ``proj`` is
    scratch for ``delta_ac - u_a u_c``. Units: 1/Angstrom^2.
    """
    ir = inv_r[p]
    for a in range(3):
        for c in range(3):
            proj[a, c] = (1.0 if a == c else 0.0) - unit[p, a] * unit[p, c]
    for n in range(n_count):
        df = dradial[p, n]
        fr = radial[p, n] * ir
        for c in range(3):
            dr0[n, c] = df * unit[p, c]
        for a in range(3):
            for c in range(3):
                dr1[n, a, c] = df * unit[p, a] * unit[p, c] + fr * proj[a, c]
        for a in range(3):
            for b in range(3):
                for c in range(3):
                    dr2[n, a, b, c] = (df * unit[p, a] * unit[p, b] * unit[p, c]
                                       + fr * (proj[a, c] * unit[p, b] + unit[p, a] * proj[b, c]))
                    if not with_rank3:
                        continue
                    for d in range(3):
                        dr3[n, a, b, d, c] = (df * unit[p, a] * unit[p, b] * unit[p, d] * unit[p, c]
                                              + fr * (proj[a, c] * unit[p, b] * unit[p, d]
                                                      + unit[p, a] * proj[b, c] * unit[p, d]
                                                      + unit[p, a] * unit[p, b] * proj[d, c]))


@njit(cache=True)
def feature_gradient_sum(n_atoms, first, second, unit, inv_r, radial, dradial, nbr_species,
                         centre_species, n_species, rho0, rho1, rho2, rho3, n_feat):
    """phi[i, J, f, a, c] = sum over centres j of species J of dD_j[f, a] / dx_ic.

    Fills the 2- and 3-body blocks of a (N, S, n_feat, 3, 3) array (the 9 numbers of a
    feature side by side: every update touches one cache line). Pair tables as returned by
    :func:`radial_table`; pairs at or beyond the cutoff (1/r = 0 there) are skipped.
    """
    n_radial = radial.shape[1]
    n_sr = n_species * n_radial
    off2 = n_sr
    off3 = n_sr + n_sr * n_sr
    off4 = n_sr + 2 * n_sr * n_sr
    has3 = rho3.shape[1] > 0
    phi = np.zeros((n_atoms, n_species, n_feat, 3, 3))
    proj = np.empty((3, 3))
    dr0 = np.empty((n_radial, 3))
    dr1 = np.empty((n_radial, 3, 3))
    dr2 = np.empty((n_radial, 3, 3, 3))
    dr3 = np.empty((n_radial, 3, 3, 3, 3))
    dv = np.empty((3, 3))
    for p in range(first.shape[0]):
        if inv_r[p] == 0.0:
            continue
        j = first[p]
        k = second[p]
        jj = centre_species[j]
        _pair_derivatives(unit, inv_r, radial, dradial, p, n_radial, has3, proj, dr0, dr1, dr2, dr3)
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
def feature_gradient_sum_4body(phi, offset, first, second, unit, inv_r, radial, dradial, nbr_species,
                               centre_species, n_radial4, rho0, rho1, rho2, full, pair_i, pair_j,
                               s11, s00, s22):
    """Add the 4-body blocks' ``sum_j dD_j / dx`` to ``phi`` (N, S, F, 3, 3).

    Blocks, for reduced channels kappa (first ``n_radial4`` radial functions of each species,
    ``full[kappa]`` their index among all channels) and pairs P = (kappa1 <= kappa2):
    ``s11[P] rho1[kappa3]``, ``s00[P] rho1[kappa3]``, ``s22[P] rho1[kappa3]`` with
    ``s11 = rho1.rho1``, ``s00 = rho0 rho0``, ``s22 = rho2:rho2`` (per centre, precomputed).
    Pair tables as for :func:`feature_gradient_sum`.
    """
    n_k = full.shape[0]
    n_p = pair_i.shape[0]
    block = n_p * n_k
    proj = np.empty((3, 3))
    dr0 = np.empty((n_radial4, 3))
    dr1 = np.empty((n_radial4, 3, 3))
    dr2 = np.empty((n_radial4, 3, 3, 3))
    dr3 = np.empty((0, 3, 3, 3, 3))
    ds = np.empty((3, n_p, 3))
    for p in range(first.shape[0]):
        if inv_r[p] == 0.0:
            continue
        j = first[p]
        k = second[p]
        jj = centre_species[j]
        sigma = nbr_species[p]
        _pair_derivatives(unit, inv_r, radial, dradial, p, n_radial4, False, proj, dr0, dr1, dr2, dr3)
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


@njit(cache=True, parallel=True)
def _linear_moment_coefficients(rho0, rho1, rho2, rho3, centre_species, coeffs, n_radial4, full,
                               pair_i, pair_j, skip3, n_threads):
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
    g3 = np.zeros((n, 3, n_sr if has3 else 0, 3, 3, 3))
    g0 = np.zeros((n, 3, n_sr))
    g1 = np.zeros((n, 3, n_sr, 3))
    g2 = np.zeros((n, 3, n_sr, 3, 3))
    # atoms are independent but for the dipole sum: one chunk of atoms per numba thread
    n_chunks = max(1, min(n_threads, n // 16))
    m_atom = np.zeros((n, 3))  # per atom: threads never share a cache line
    for chunk in prange(n_chunks):
        h3 = np.empty((n_sr, 3, 3))
        h = np.empty((n_sr, 3))
        hp = np.empty((3, n_p, 3))
        for j in range(chunk * n // n_chunks, (chunk + 1) * n // n_chunks):
            m = m_atom[j]
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
    return m_atom.sum(axis=0), g0, g1, g2, g3


def linear_moment_coefficients(rho0, rho1, rho2, rho3, centre_species, coeffs, n_radial4, full,
                               pair_i, pair_j, skip3):
    """:func:`_linear_moment_coefficients` on numba's current number of threads (``numba.set_num_threads``;
    passed in, because a kernel asking numba for it cannot be cached)."""
    return _linear_moment_coefficients(rho0, rho1, rho2, rho3, centre_species, coeffs, n_radial4, full,
                                       pair_i, pair_j, skip3, get_num_threads())
