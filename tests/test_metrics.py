"""ipi_dipole.metrics against values worked out by hand."""

import numpy as np
import pytest
from ase import Atoms

from ipi_dipole import data, metrics


def test_rmse_and_rmspe_by_hand():
    # errors 1, -1, 2, 0: RMSE sqrt(6/4); references 0, 2, 4, 6: std sqrt(5)
    predicted, reference = [1.0, 1.0, 6.0, 6.0], [0.0, 2.0, 4.0, 6.0]
    assert metrics.rmse(predicted, reference) == pytest.approx(np.sqrt(1.5))
    assert metrics.rmspe(predicted, reference) == pytest.approx(np.sqrt(1.5) / np.sqrt(5.0))


def test_lists_of_arrays_are_pooled_over_all_components():
    predicted = [np.array([1.0, 0.0, 0.0]), np.zeros((1, 3, 3))]
    reference = [np.zeros(3), np.full((1, 3, 3), 1.0)]
    # twelve components: one error of 1 and nine of -1
    assert metrics.rmse(predicted, reference) == pytest.approx(np.sqrt(10 / 12))


def test_nothing_to_compare_and_constant_references():
    assert metrics.rmse([], []) is None and metrics.rmspe([], []) is None
    assert metrics.rmse([2.0, 2.0], [1.0, 1.0]) == pytest.approx(1.0)
    assert metrics.rmspe([2.0, 2.0], [1.0, 1.0]) is None
    with pytest.raises(ValueError, match="differ in size"):
        metrics.rmse([1.0, 2.0], [1.0])


class _Constant:
    """A model predicting the same dipole (e*A) and Z* = 1 e on the diagonal for every atom."""

    def predict(self, atoms, where="structure"):
        return np.array([1.0, 0.0, 0.0]), np.tile(np.eye(3), (len(atoms), 1, 1))


def test_evaluate_on_a_data_set_leaves_out_periodic_dipoles():
    molecule = data.make_structure(Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]]),
                                   np.tile(2 * np.eye(3), (2, 1, 1)), dipole=np.array([0.0, 0.0, 0.0]))
    crystal = data.make_structure(Atoms("H", cell=[3, 3, 3], pbc=True), np.tile(np.eye(3), (1, 1, 1)),
                                  dipole=np.array([5.0, 5.0, 5.0]))
    result = metrics.evaluate(_Constant(), [molecule, crystal])
    assert set(result) == set(metrics.KEYS) and result["n_structures"] == 2
    # dipole: only the molecule's, errors (1, 0, 0); reference all zero, so no RMSPE
    assert result["dipole_rmse"] == pytest.approx(np.sqrt(1 / 3))
    assert result["dipole_rmspe"] is None
    # Z*: 27 components; the molecule's six diagonal ones are off by -1, the crystal's exact.
    # The references are 2 x six, 1 x three and 0 x eighteen: mean 15/27, mean square 27/27
    assert result["bec_rmse"] == pytest.approx(np.sqrt(6 / 27))
    std = np.sqrt(1.0 - (15 / 27) ** 2)
    assert result["bec_rmspe"] == pytest.approx(np.sqrt(6 / 27) / std)
