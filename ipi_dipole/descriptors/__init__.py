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

Layout: :mod:`.settings` (the hyper-parameters, validated), :mod:`.neighbours` (neighbour
lists), :mod:`.kernels` (numba loops), :mod:`.descriptor` (the :class:`Descriptor` class).
"""

from .descriptor import Descriptor, Environments, species_indices
from .settings import KINDS, DescriptorSettings, settings_from_dict

__all__ = ["Descriptor", "DescriptorSettings", "Environments", "KINDS", "make_descriptor",
           "settings_from_dict", "species_indices"]

#: descriptor class of each settings kind (see :mod:`.settings`)
DESCRIPTORS = {DescriptorSettings.kind: Descriptor}


def make_descriptor(species, settings):
    """The descriptor of ``settings``' kind for ``species`` (chemical symbols, in feature order)."""
    return DESCRIPTORS[settings.kind](species, settings)
