"""The :class:`Descriptor`: lambda = 1 features of every atom, their gradients and the chain
rule through the density moments (construction in :mod:`ipi_dipole.descriptors`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from . import kernels
from .neighbours import NeighbourCache, neighbour_pairs
from .settings import DescriptorSettings

__all__ = ["Descriptor", "Environments", "species_indices"]


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
    unit: np.ndarray  # (P, 3) unit vectors of the pairs
    inv_r: np.ndarray  # (P,) 1 / distance, 1/Angstrom
    radial: np.ndarray  # (P, R) f_n(r)
    dradial: np.ndarray  # (P, R) df_n/dr


class Descriptor:
    """The lambda = 1 descriptor ``D[f, a](X_j)`` of every atom (see :mod:`ipi_dipole.descriptors`).

    Parameters
    ----------
    species : sequence of str
        Chemical symbols, in the order that fixes the species index of the features.
    settings : DescriptorSettings
        Cutoff (Angstrom), radial functions, 4-body channels and the rank-3 switch
        (``rank3_weight > 0``), validated there.
    """

    def __init__(self, species, settings: DescriptorSettings):
        if not isinstance(settings, DescriptorSettings):
            raise TypeError(f"settings must be a DescriptorSettings, got {type(settings).__name__}")
        self.species = list(species)
        self.settings = settings
        self._neighbour_cache = None
        # reduced channels of the 4-body blocks and their pairs kappa1 <= kappa2
        self._full = np.array([t * self.n_radial + n for t in range(len(self.species))
                               for n in range(self.n_radial4)], dtype=np.int64)
        iu = np.triu_indices(len(self._full))
        self._pair_i = iu[0].astype(np.int64)
        self._pair_j = iu[1].astype(np.int64)

    @property
    def cutoff(self) -> float:
        """Cutoff radius, Angstrom."""
        return self.settings.cutoff

    @property
    def n_radial(self) -> int:
        return self.settings.n_radial

    @property
    def n_radial4(self) -> int:
        return self.settings.n_radial4

    @property
    def rank3(self) -> bool:
        return self.settings.rank3

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

    def feature_prior(self) -> np.ndarray:
        """Prior scale (dimensionless) of every feature, multiplying its standardisation:
        ``rank3_weight`` on the rank-2 x rank-3 block, 1 elsewhere; shape (F,)."""
        prior = np.ones(self.n_features)
        prior[self.feature_blocks()["rho2:rho3"]] = self.settings.rank3_weight
        return prior

    def _scalar_pairs(self, env: Environments):
        """Per-centre scalar factors of the 4-body blocks: rho1.rho1, rho0 rho0, rho2:rho2 (N, K(K+1)/2)."""
        r0, r1, r2 = env.rho0[:, self._full], env.rho1[:, self._full], env.rho2[:, self._full]
        i, j = self._pair_i, self._pair_j
        s11 = np.einsum("npa,npa->np", r1[:, i], r1[:, j])
        s00 = r0[:, i] * r0[:, j]
        s22 = np.einsum("npab,npab->np", r2[:, i], r2[:, j])
        return s11, s00, s22

    # neighbours and moments ---------------------------------------------------------------
    #: Verlet skin (Angstrom) of the neighbour list reused between calls (MD steps)
    SKIN = 0.6

    def neighbours(self, atoms, skin: float = 0.0):
        """Pairs ``(first, second, vectors)`` closer than ``cutoff + skin`` (Angstrom); see
        :func:`~ipi_dipole.descriptors.neighbours.neighbour_pairs`."""
        return neighbour_pairs(atoms, self.cutoff + skin)

    def cached_neighbours(self, atoms):
        """:meth:`neighbours` for a sequence of nearby configurations (MD steps), reused within
        a Verlet skin of ``SKIN`` (see :class:`~ipi_dipole.descriptors.neighbours.NeighbourCache`)."""
        if self._neighbour_cache is None:
            self._neighbour_cache = NeighbourCache(self.cutoff, self.SKIN)
        return self._neighbour_cache.pairs(atoms)

    def environments(self, atoms, where: str = "structure", reuse: bool = False) -> Environments:
        """Neighbour list, pair table and moments of ``atoms`` (raises InputError on unknown species).

        ``reuse``: take the neighbour list from :meth:`cached_neighbours` (for MD steps).
        The pair table (unit vectors, 1/r, ``f_n(r)``, ``df_n/dr``) is computed once here,
        vectorised across pairs; every later kernel reads it.
        """
        centre_species = species_indices(atoms, self.species, where)
        first, second, vectors = self.cached_neighbours(atoms) if reuse else self.neighbours(atoms)
        nbr_species = centre_species[second]
        unit, inv_r, radial, dradial = kernels.radial_table(np.ascontiguousarray(vectors, dtype=float),
                                                            self.cutoff, self.n_radial)
        rho0, rho1, rho2, rho3 = kernels.moments(len(atoms), first, unit, radial, nbr_species,
                                                 self.n_species, self.rank3)
        return Environments(len(atoms), centre_species, first, second, vectors, nbr_species,
                            rho0, rho1, rho2, rho3, unit, inv_r, radial, dradial)

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

    def linear_dipole(self, env: Environments, coefficients: np.ndarray, gradient: bool = True):
        """``M_a = sum_j sum_f coefficients[J(j), f] D[j, f, a]`` and ``Z = dM/dx``.

        ``coefficients`` (S, F): one vector per centre species. The fast path of a linear
        model's prediction: no (N, F, 3) feature array is built. Returns ``(M (3,), Z (N, 3, 3))``;
        ``gradient=False`` skips the pass over pairs that gives Z (None then), for MD steps
        where only the dipole is written.
        """
        coefficients = np.ascontiguousarray(coefficients, dtype=float)
        # the numba kernel does the 4-body blocks only (no rank-3 arrays needed there)
        m, g0, g1, g2, _ = kernels.linear_moment_coefficients(
            env.rho0, env.rho1, env.rho2, env.rho3[:, :0], env.centre_species, coefficients,
            self.n_radial4, self._full, self._pair_i, self._pair_j, True)
        h3 = np.zeros((env.n_atoms, self.n_sr, 3, 3)) if self.rank3 else None
        m = m + self._linear_blas(env, coefficients, g0, g1, g2, h3)
        return m, (self.backprop(env, g0, g1, g2, None, h3) if gradient else None)

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
        return kernels.backprop_moments(env.n_atoms, env.first, env.second, env.unit, env.inv_r, env.radial,
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
        pairs = (env.first, env.second, env.unit, env.inv_r, env.radial, env.dradial, env.nbr_species,
                 env.centre_species)
        phi = kernels.feature_gradient_sum(env.n_atoms, *pairs, self.n_species, env.rho0, env.rho1,
                                           env.rho2, env.rho3, self.n_features)
        if self.n_radial4:
            s11, s00, s22 = self._scalar_pairs(env)
            kernels.feature_gradient_sum_4body(phi, self.n_features3, *pairs, self.n_radial4, env.rho0,
                                               env.rho1, env.rho2, self._full, self._pair_i,
                                               self._pair_j, s11, s00, s22)
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

