"""The threaded numba kernels give the same dipole and Born charges on one thread and on two."""

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
