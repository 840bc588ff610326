"""k-fold cross-validation and the coordinate-descent search of ipi_dipole.tuning (real tblite labels)."""

import json

import numpy as np
import pytest

from ipi_dipole import data, tuning
from ipi_dipole.errors import InputError
from ipi_dipole.model import PolarizationModel


@pytest.fixture(scope="module")
def dimers():
    from ipi_dipole.engines.tblite_engine import TBLiteEngine
    from ipi_dipole.structures import water_dimer

    rng = np.random.default_rng(3)
    engine = TBLiteEngine()
    frames = []
    for _ in range(12):
        atoms = water_dimer()
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        frames.append(engine.label(atoms))
    return frames


def test_folds_are_contiguous_and_cover_everything():
    blocks = tuning.folds(10, 3)
    assert [b.tolist() for b in blocks] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    with pytest.raises(InputError, match="cannot make 4 folds"):
        tuning.folds(3, 4)
    with pytest.raises(InputError, match="at least 2 folds"):
        tuning.folds(3, 1)


def test_cross_validation_is_the_pooled_error_of_held_out_blocks(dimers):
    model = PolarizationModel(n_ref=20)
    errors = tuning.cross_validate(model, dimers, n_folds=3)
    # the same by hand: fit on two blocks, predict the third
    pred, ref = [], []
    for held in tuning.folds(len(dimers), 3):
        train = [a for i, a in enumerate(dimers) if i not in held]
        fitted = PolarizationModel(n_ref=20).fit(train)
        for i in held:
            pred.append(fitted.predict(dimers[i])[1])
            ref.append(data.get_born_charges(dimers[i]))
    assert errors["bec_rmse"] == pytest.approx(np.sqrt(np.mean((np.array(pred) - np.array(ref)) ** 2)))
    assert errors["fit_seconds"] > 0
    assert not hasattr(model, "ref_weights_")  # the model passed in stays unfitted


def test_search_keeps_the_best_of_each_axis_and_tune_stores_it(dimers, tmp_path):
    grid = {"regularization": [1e-6, 1e3], "descriptor__cutoff": [4.0]}
    model = PolarizationModel(n_ref=20)
    lines = []
    fitted, result = tuning.tune(model, dimers, grid, n_folds=3, log=lines.append)
    # start + 2 ridge values + 1 cutoff (with the best ridge so far)
    assert len(result.rows) == 4 and len(lines) == 4
    assert [r["changed"] for r in result.rows[:3]] == ["start", "regularization=1e-06", "regularization=1000"]
    best = min(result.rows, key=lambda r: r["bec_rmse"])
    assert best["params"] == {k: tuning._describe(v) for k, v in result.best_params.items()}
    # the cutoff was tried on top of the best ridge so far
    assert result.rows[3]["params"]["descriptor__cutoff"] == "4"
    assert fitted.descriptor.cutoff == (4.0 if "descriptor__cutoff" in result.best_params else 5.5)
    assert "| setting |" in result.table() and "**best**" in result.table()
    path = tmp_path / "m.npz"
    fitted.save(path)
    info = PolarizationModel.load(path).training_info_["tuning"]
    assert info["n_folds"] == 3 and len(info["rows"]) == 4


def test_unknown_axis_is_named(dimers):
    with pytest.raises(InputError, match="regularisation"):
        tuning.search(PolarizationModel(n_ref=20), dimers, {"regularisation": [1.0]})


def test_default_grid_follows_periodicity(dimers):
    assert tuning.default_grid(dimers) == tuning.MOLECULE_GRID


def test_train_tune_command(dimers, tmp_path, capsys):
    from ipi_dipole.cli import main

    path = tmp_path / "d.extxyz"
    data.save(path, dimers)
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"regularization": [1e-2]}))
    assert main(["train", str(path), "-o", str(tmp_path / "m.npz"), "--n-ref", "20", "--tune",
                 "--tune-grid", str(grid), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "CV Z* RMSE" in out and "chosen:" in out
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["train", str(path), "-o", str(tmp_path / "m2.npz"), "--tune", "--tune-grid", str(bad),
                 "--quiet"]) != 0
    assert "bad.json: not JSON (line 1" in capsys.readouterr().err
