"""Fast prediction paths give the same numbers: one vs two numba threads, dipole-only vs full."""

import numba
import numpy as np
import pytest


def test_one_and_two_threads_agree(dimer_model):
    from ase.build import bulk

    from ipi_dipole import PolarizationModel

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has a single thread here (NUMBA_NUM_THREADS=1)")
    model = PolarizationModel.load(dimer_model)
    rng = np.random.default_rng(0)
    # a periodic box of water-like O/H with enough pairs to be cut into chunks
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((3, 3, 3))
    atoms.symbols = ["O" if i % 3 == 0 else "H" for i in range(len(atoms))]
    atoms.positions += rng.normal(scale=0.1, size=atoms.positions.shape)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        m1, z1 = model.predict(atoms.copy())
        numba.set_num_threads(2)
        m2, z2 = model.predict(atoms.copy())
    finally:
        numba.set_num_threads(before)
    np.testing.assert_allclose(m2, m1, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(z2, z1, rtol=1e-10, atol=1e-12)


def test_dipole_only_prediction_matches_the_full_one(dimer_model):
    from ipi_dipole import PolarizationModel
    from ipi_dipole.structures import water_dimer

    model = PolarizationModel.load(dimer_model)
    atoms = water_dimer()
    m, z = model.predict(atoms)
    m_only, none = model.predict(atoms, bec=False)
    assert none is None
    np.testing.assert_allclose(m_only, m, rtol=1e-13, atol=1e-13)
