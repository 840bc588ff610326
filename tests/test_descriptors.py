"""The lambda = 1 descriptors: equivariance, invariances, exact gradients, smooth cutoff, periodic cells."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.neighborlist import neighbor_list
from scipy.spatial.transform import Rotation

from ipi_dipole.descriptors import Descriptor, DescriptorSettings
from ipi_dipole.errors import InputError

CUTOFF = 4.0


@pytest.fixture(scope="module")
def descriptor():
    """Every block: 2-, 3-body (with rank 3) and 4-body (on the first 2 radial functions)."""
    return Descriptor(["H", "O"], DescriptorSettings(cutoff=CUTOFF, n_radial=3, n_radial4=2, rank3_weight=1.0))


@pytest.fixture(scope="module")
def dimer():
    """A distorted water dimer: every pair within the cutoff but some close to it."""
    rng = np.random.default_rng(1)
    a, b = molecule("H2O"), molecule("H2O")
    b.rotate(70, "z")
    b.positions += [2.9, 0.4, 0.3]
    atoms = a + b
    atoms.positions += rng.normal(scale=0.1, size=atoms.positions.shape)
    return atoms


@pytest.fixture(scope="module")
def small_cell():
    """Five atoms in a skewed cell narrower than the cutoff: periodic images are neighbours."""
    rng = np.random.default_rng(2)
    cell = np.array([[3.1, 0.0, 0.0], [0.9, 3.4, 0.0], [-0.6, 0.7, 3.3]])
    return Atoms("OH2OH", positions=rng.uniform(0, 3, (5, 3)), cell=cell, pbc=True)


def random_rotation(seed):
    return Rotation.random(random_state=seed).as_matrix()


def test_sizes(descriptor):
    assert descriptor.n_sr == 6
    assert descriptor.n_features3 == 6 + 3 * 36
    assert descriptor.n_block4 == 10 * 4  # 4 reduced channels: 10 pairs times 4
    blocks = descriptor.feature_blocks()
    assert blocks["(rho2:rho2)*rho1"].stop == descriptor.n_features == 114 + 3 * 40
    plain = Descriptor(["H", "O"], DescriptorSettings(n_radial=3, n_radial4=0))
    assert plain.n_features == 78 and plain.feature_blocks()["rho2:rho3"] == slice(78, 78)


def test_rotation_rotates_every_vector(descriptor, dimer):
    d = descriptor.compute(dimer)
    for seed in range(3):
        rot = random_rotation(seed)
        turned = dimer.copy()
        turned.positions = dimer.positions @ rot.T
        np.testing.assert_allclose(descriptor.compute(turned), d @ rot.T, atol=1e-10, rtol=0)


def test_rotation_of_periodic_cell(descriptor, small_cell):
    d = descriptor.compute(small_cell)
    rot = random_rotation(7)
    turned = small_cell.copy()
    turned.set_cell(small_cell.cell.array @ rot.T, scale_atoms=False)
    turned.positions = small_cell.positions @ rot.T
    np.testing.assert_allclose(descriptor.compute(turned), d @ rot.T, atol=1e-10, rtol=0)


def test_translation_and_permutation_change_nothing(descriptor, dimer):
    d = descriptor.compute(dimer)
    moved = dimer.copy()
    moved.positions += [12.3, -4.5, 0.7]
    np.testing.assert_allclose(descriptor.compute(moved), d, atol=1e-12, rtol=0)
    # swap the two hydrogens of the first water and the two oxygens
    order = [3, 2, 1, 0, 4, 5]
    assert [dimer[i].symbol for i in order] == dimer.get_chemical_symbols()
    swapped = dimer[order]
    np.testing.assert_allclose(descriptor.compute(swapped), d[order], atol=1e-12, rtol=0)


def test_periodic_translation_and_wrapping(descriptor, small_cell):
    d = descriptor.compute(small_cell)
    moved = small_cell.copy()
    moved.positions += [10.0, -7.0, 3.0]  # far outside the cell: wrapping must not matter
    np.testing.assert_allclose(descriptor.compute(moved), d, atol=1e-10, rtol=0)


def test_neighbour_list_matches_ase(descriptor, small_cell):
    first, second, vectors = descriptor.neighbours(small_cell)
    i, j, dvec = neighbor_list("ijD", small_cell, CUTOFF)
    ours = sorted(zip(first, second, *np.round(vectors, 8).T))
    theirs = sorted(zip(i, j, *np.round(dvec, 8).T))
    assert ours == theirs
    assert any(a == b for a, b, *_ in ours)  # the cell is small: atoms see their own images


def test_replicated_cell_gives_same_descriptors(descriptor, small_cell):
    d = descriptor.compute(small_cell)
    big = small_cell.repeat((2, 2, 2))
    d_big = descriptor.compute(big).reshape(8, len(small_cell), descriptor.n_features, 3)
    for image in range(8):
        np.testing.assert_allclose(d_big[image], d, atol=1e-10, rtol=0)


def _finite_difference(function, atoms, h=1e-5):
    """d function / d x_ic by central differences: shape (N, *out, 3)."""
    grads = []
    for i in range(len(atoms)):
        row = []
        for c in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, c] += h
            minus.positions[i, c] -= h
            row.append((function(plus) - function(minus)) / (2 * h))
        grads.append(np.stack(row, axis=-1))
    return np.array(grads)


@pytest.mark.parametrize("system", ["dimer", "small_cell"])
def test_contracted_gradient_equals_finite_differences(descriptor, system, request):
    atoms = request.getfixturevalue(system)
    rng = np.random.default_rng(3)
    coeffs = rng.normal(size=(len(atoms), 2, descriptor.n_features))
    env = descriptor.environments(atoms)
    analytic = descriptor.contracted_gradient(env, coeffs)  # (N, O, 3, 3)

    def energy(x):
        return np.einsum("nof,nfa->oa", coeffs, descriptor.compute(x))

    numeric = _finite_difference(energy, atoms)
    np.testing.assert_allclose(analytic, numeric, atol=1e-7 * np.abs(numeric).max(), rtol=0)


@pytest.mark.parametrize("system", ["dimer", "small_cell"])
def test_feature_gradient_sum_equals_finite_differences(descriptor, system, request):
    atoms = request.getfixturevalue(system)
    env = descriptor.environments(atoms)
    phi = descriptor.feature_gradient_sum(env)  # (N, 3, 3, S, F)

    def species_sums(x):
        feats = descriptor.compute(x)
        return np.stack([feats[env.centre_species == t].sum(axis=0).T for t in range(2)], axis=1)

    numeric = _finite_difference(species_sums, atoms)  # (N, 3, S, F, 3)
    np.testing.assert_allclose(phi, np.moveaxis(numeric, -1, 2), atol=1e-7 * np.abs(numeric).max(), rtol=0)


def test_invariants_rotation_and_gradient(descriptor, dimer):
    env = descriptor.environments(dimer)
    inv = descriptor.invariants(env)
    turned = dimer.copy()
    turned.positions = dimer.positions @ random_rotation(4).T
    np.testing.assert_allclose(descriptor.invariants(descriptor.environments(turned)), inv, atol=1e-10, rtol=0)
    rng = np.random.default_rng(5)
    e = rng.normal(size=(len(dimer), 1, inv.shape[1]))
    analytic = descriptor.backprop(env, *descriptor.invariant_moment_coefficients(env, e))

    def value(x):
        return np.einsum("nop,np->o", e, descriptor.invariants(descriptor.environments(x)))

    numeric = _finite_difference(value, dimer)
    np.testing.assert_allclose(analytic, numeric, atol=1e-7 * np.abs(numeric).max(), rtol=0)


def test_smooth_at_the_cutoff(descriptor):
    """Value and slope of a pair's contribution go to zero as the pair reaches the cutoff."""
    rng = np.random.default_rng(6)
    coeffs = rng.normal(size=(2, 1, descriptor.n_features))
    direction = np.array([0.48, -0.6, 0.64])
    sizes = []
    for gap in (1e-2, 1e-3, 1e-4):
        pair = Atoms("OH", positions=[[0, 0, 0], (CUTOFF - gap) * direction])
        env = descriptor.environments(pair)
        value = np.abs(descriptor.features(env)).max()
        slope = np.abs(descriptor.contracted_gradient(env, coeffs)).max()
        sizes.append((value, slope))
    (v1, s1), (v2, s2), (v3, s3) = sizes
    assert v3 < 1e-6 and s3 < 1e-6
    assert v2 < v1 / 50 and s2 < s1 / 5  # value ~ gap^3, slope ~ gap^2 (or faster)
    beyond = Atoms("OH", positions=[[0, 0, 0], (CUTOFF + 1e-4) * direction])
    assert not np.any(descriptor.compute(beyond))


def test_unknown_species_is_named(descriptor, dimer):
    atoms = dimer.copy()
    atoms[4].symbol = "N"
    with pytest.raises(InputError, match=r"atom 4 is N"):
        descriptor.compute(atoms)


def test_periodic_without_cell_is_an_error(descriptor):
    with pytest.raises(InputError, match="without a cell"):
        descriptor.compute(Atoms("OH", positions=[[0, 0, 0], [1, 0, 0]], pbc=True))


@pytest.mark.parametrize("settings, message", [
    (dict(cutoff=0.0), "cutoff must be positive"),
    (dict(cutoff=float("nan")), "cutoff must be finite"),
    (dict(n_radial=0), "n_radial must be at least 1"),
    (dict(n_radial=2.5), "n_radial must be an integer"),
    (dict(n_radial=3, n_radial4=4), r"n_radial4 must be between 0 and n_radial \(3\)"),
    (dict(rank3_weight=-0.1), "rank3_weight must not be negative"),
])
def test_settings_are_validated_once(settings, message):
    with pytest.raises(InputError, match=message):
        DescriptorSettings(**settings)


def test_settings_dict_round_trip():
    from ipi_dipole.descriptors import settings_from_dict

    s = DescriptorSettings(cutoff=4, n_radial=3, n_radial4=1, rank3_weight=0.5)
    assert s.cutoff == 4.0 and isinstance(s.cutoff, float) and s.rank3
    assert settings_from_dict(s.to_dict()) == s and s.to_dict()["kind"] == "moments"
    with pytest.raises(InputError, match="unknown moments descriptor setting"):
        settings_from_dict({"cutoff": 4.0, "l_max": 2})
    with pytest.raises(InputError, match="unknown descriptor kind"):
        settings_from_dict({"kind": "spherical"})
