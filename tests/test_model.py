"""PolarizationModel: exact derivatives, recovery of known dipole functions, persistence, CLI."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

from ipi_dipole import PolarizationModel, data
from ipi_dipole.cli import main
from ipi_dipole.descriptors import Descriptor, DescriptorSettings
from ipi_dipole.errors import InputError

CHARGES = {"H": 0.41, "O": -0.82}


def dimers(n, seed=0, scale=0.12):
    """Randomly distorted and rotated water dimers (no labels)."""
    rng = np.random.default_rng(seed)
    a, b = molecule("H2O"), molecule("H2O")
    b.rotate(60, "z")
    b.positions += [2.9, 0.0, 0.3]
    out = []
    for _ in range(n):
        x = a + b
        x.positions += rng.normal(scale=scale, size=x.positions.shape)
        x.rotate(rng.uniform(0, 360), rng.normal(size=3), center="COM")
        x.positions += rng.normal(scale=3.0, size=3)
        out.append(x)
    return out


def synthetic(structures, coefficients, descriptor):
    """Label structures with a known dipole of the model's form: point charges + sum_j D_j . c_J."""
    labelled = []
    for atoms in structures:
        env = descriptor.environments(atoms)
        q = np.array([CHARGES[s] for s in atoms.get_chemical_symbols()])
        coeffs = coefficients[env.centre_species]
        m = q @ atoms.positions + np.einsum("nf,nfa->a", coeffs, descriptor.features(env))
        z = q[:, None, None] * np.eye(3) + descriptor.contracted_gradient(env, coeffs[:, None, :])[:, 0]
        labelled.append(data.make_structure(atoms, z, dipole=m))
    return labelled


N_BEC = 60  # training structures of the Born-charge fits (120 O environments span the features)


@pytest.fixture(scope="module")
def known():
    """Training and test dimers labelled by a random function of the model's own form.

    The model subtracts each species' mean diagonal Born charge over the training set, so
    the learned part's own mean diagonal is projected out of the random coefficients (on the
    first N_BEC training structures): otherwise it would leave a term proportional to the
    bond vectors that no finite radial basis represents exactly.
    """
    descriptor = Descriptor(["H", "O"], DescriptorSettings(cutoff=5.5, n_radial=3, n_radial4=2))
    rng = np.random.default_rng(11)
    coefficients = rng.normal(scale=0.05, size=(2, descriptor.n_features))
    train_atoms = dimers(200, seed=1)
    trace = np.zeros((2, 2, descriptor.n_features))  # [J, species of the centre, feature]
    count = np.zeros(2)
    for atoms in train_atoms[:N_BEC]:
        env = descriptor.environments(atoms)
        phi = descriptor.feature_gradient_sum(env)  # (N, 3, 3, S, F)
        diag = np.einsum("iaaJf->iJf", phi) / 3
        for t in range(2):
            trace[t] += diag[env.centre_species == t].sum(axis=0)
            count[t] += (env.centre_species == t).sum()
    constraint = (trace / count[:, None, None]).reshape(2, -1)
    flat = coefficients.ravel()
    flat = flat - np.linalg.pinv(constraint) @ (constraint @ flat)
    coefficients = flat.reshape(coefficients.shape)
    return (synthetic(train_atoms, coefficients, descriptor),
            synthetic(dimers(10, seed=2), coefficients, descriptor))


@pytest.fixture(scope="module")
def fitted(known):
    train, _ = known
    return PolarizationModel(DescriptorSettings(n_radial=3, n_radial4=2), n_ref=120, targets="bec",
                             regularization=1e-12).fit(train[:N_BEC])


def test_z_is_the_derivative_of_m(fitted):
    atoms = dimers(1, seed=5)[0]
    m, z = fitted.predict(atoms)
    assert m.shape == (3,) and z.shape == (len(atoms), 3, 3)
    h = 1e-5
    for i in range(len(atoms)):
        for b in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, b] += h
            minus.positions[i, b] -= h
            np.testing.assert_allclose(z[i, :, b], (fitted.predict(plus)[0] - fitted.predict(minus)[0]) / (2 * h),
                                       atol=1e-7)


@pytest.mark.parametrize("options", [dict(descriptor=DescriptorSettings(n_radial=3, rank3_weight=0.1, n_radial4=2)),
                                     dict(descriptor=DescriptorSettings(n_radial=3, n_radial4=0), zeta=2)])
def test_z_is_the_derivative_of_m_rank3_and_kernel(known, options):
    """The optional rank-3 block and the polynomial kernel keep Z* the exact derivative of M."""
    model = PolarizationModel(n_ref=20, targets="both", **options).fit(known[0][:12])
    atoms = dimers(1, seed=8)[0]
    m, z = model.predict(atoms)
    h = 1e-5
    for i in (0, 4):
        for b in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, b] += h
            minus.positions[i, b] -= h
            np.testing.assert_allclose(z[i, :, b], (model.predict(plus)[0] - model.predict(minus)[0]) / (2 * h),
                                       atol=1e-7)


@pytest.mark.parametrize("targets, n_train, tol", [
    ("bec", N_BEC, 1e-6),
    ("both", N_BEC, 1e-6),
    # dipoles only: the point charges are fitted with the model; 3 rows per structure, so
    # it takes more structures than the 469 unknowns, and the fit is less well conditioned
    ("dipole", 200, 1e-5),
])
def test_known_linear_dipole_function_is_recovered(known, targets, n_train, tol):
    train, test = known
    model = PolarizationModel(DescriptorSettings(n_radial=3, n_radial4=2), n_ref=120, targets=targets,
                              regularization=1e-12).fit(train[:n_train])
    if targets != "dipole":  # (fitted point charges trade a little with the 2-body terms)
        assert model.training_info_["zbar"] == pytest.approx(CHARGES, abs=1e-8)
    for atoms in test:
        m, z = model.predict(atoms)
        # exact but for the round-off of normal equations with a 1e-12 ridge
        np.testing.assert_allclose(m, atoms.get_dipole_moment(), atol=tol, rtol=0)
        np.testing.assert_allclose(z, data.get_born_charges(atoms), atol=10 * tol, rtol=0)


@pytest.mark.parametrize("targets", ["bec", "both", "dipole"])
def test_rows_projected_per_structure_or_once_give_the_same_fit(known, targets, monkeypatch):
    """The linear fit projects each structure's rows onto the reference span when that is
    cheaper (many species) and the summed normal equations otherwise: the same numbers."""
    import ipi_dipole.model as model_module

    train, _ = known
    fits = []
    for project in (True, False):
        monkeypatch.setattr(model_module, "_PROJECT_ROWS", project)
        fits.append(PolarizationModel(DescriptorSettings(n_radial=3, n_radial4=2), n_ref=40, targets=targets,
                                      regularization=1e-3).fit(train[:60]))
    train, test = known
    for atoms in test:  # (the coefficients themselves differ by the round-off of a 1e-3 ridge)
        (m0, z0), (m1, z1) = fits[0].predict(atoms), fits[1].predict(atoms)
        np.testing.assert_allclose(m0, m1, atol=1e-8 * np.abs(m1).max(), rtol=0)
        np.testing.assert_allclose(z0, z1, atol=1e-8 * np.abs(z1).max(), rtol=0)
    np.testing.assert_allclose(fits[0].zbar_, fits[1].zbar_, atol=1e-8)


def test_point_charges_are_exact():
    structures = []
    for atoms in dimers(8, seed=3):
        q = np.array([CHARGES[s] for s in atoms.get_chemical_symbols()])
        structures.append(data.make_structure(atoms, q[:, None, None] * np.eye(3), dipole=q @ atoms.positions))
    model = PolarizationModel(DescriptorSettings(n_radial=3, n_radial4=0), n_ref=20).fit(structures)
    assert model.training_info_["zbar"] == pytest.approx(CHARGES)
    atoms = dimers(1, seed=4)[0]
    q = np.array([CHARGES[s] for s in atoms.get_chemical_symbols()])
    m, z = model.predict(atoms)
    np.testing.assert_allclose(m, q @ atoms.positions, atol=1e-9)
    np.testing.assert_allclose(z, q[:, None, None] * np.eye(3), atol=1e-9)


def test_save_load_round_trip(fitted, tmp_path):
    path = tmp_path / "model.npz"
    fitted.save(path)
    with np.load(path, allow_pickle=False) as npz:  # no pickled objects inside
        assert int(npz["format_version"]) >= 1
    loaded = PolarizationModel.load(path)
    assert loaded.species_ == ["H", "O"]
    assert loaded.get_params() == fitted.get_params()
    atoms = dimers(1, seed=9)[0]
    for a, b in zip(fitted.predict(atoms), loaded.predict(atoms)):
        np.testing.assert_array_equal(a, b)


def test_load_rejects_other_files(tmp_path):
    bad = tmp_path / "other.npz"
    np.savez(bad, x=np.zeros(3))
    with pytest.raises(InputError, match="not an ipi-dipole"):
        PolarizationModel.load(bad)
    with pytest.raises(InputError, match="no such model file"):
        PolarizationModel.load(tmp_path / "missing.npz")


def test_unknown_species_names_species_and_atom(fitted):
    atoms = dimers(1)[0]
    atoms[3].symbol = "N"
    with pytest.raises(InputError, match=r"atom 3 is N"):
        fitted.predict(atoms)


def test_calculator_face(fitted):
    atoms = dimers(1, seed=6)[0]
    m, z = fitted.predict(atoms)
    atoms.calc = fitted.calculator()
    np.testing.assert_allclose(atoms.get_dipole_moment(), m)
    np.testing.assert_allclose(atoms.calc.results["born_charges"], z)


def test_periodic_cell_prediction_is_consistent(fitted):
    """Periodic cell: Z* is the derivative of M and the same for a 2x2x1 replica's atoms."""
    cell = dimers(1, seed=7)[0]
    cell.set_cell([6.0, 6.5, 7.0])
    cell.pbc = True
    m, z = fitted.predict(cell)
    big = cell.repeat((2, 2, 1))
    m_big, z_big = fitted.predict(big)
    np.testing.assert_allclose(z_big.reshape(4, len(cell), 3, 3), np.broadcast_to(z, (4, len(cell), 3, 3)),
                               atol=1e-10)
    h = 1e-5
    plus, minus = cell.copy(), cell.copy()
    plus.positions[2, 1] += h
    minus.positions[2, 1] -= h
    np.testing.assert_allclose(z[2, :, 1], (fitted.predict(plus)[0] - fitted.predict(minus)[0]) / (2 * h), atol=1e-7)


def test_periodic_dipoles_are_not_fitted(known):
    train, _ = known
    cells = []
    for atoms in train[:4]:
        c = atoms.copy()
        c.calc = atoms.calc
        c.set_cell([9.0, 9.0, 9.0])
        c.pbc = True
        cells.append(c)
    with pytest.raises(InputError, match="polarization quantum"):
        PolarizationModel(DescriptorSettings(n_radial=3, n_radial4=0), n_ref=10, targets="dipole").fit(cells)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        PolarizationModel(DescriptorSettings(n_radial=3, n_radial4=0), n_ref=10, targets="both").fit(cells + train[4:8])
    assert any("not fitted" in str(w.message) for w in caught)


def test_bad_options_and_data():
    with pytest.raises(InputError, match="targets"):
        PolarizationModel(targets="forces")
    with pytest.raises(InputError, match="no Born charges"):
        PolarizationModel(targets="bec").fit([Atoms("H2", positions=[[0, 0, 0], [0.7, 0, 0]])])


@pytest.fixture(scope="module")
def tblite_dimers(tmp_path_factory):
    """A small honest data set: distorted water dimers labelled by GFN2-xTB finite fields."""
    from ipi_dipole.engines import get_engine

    engine = get_engine("tblite")
    labelled = [engine.label(atoms) for atoms in dimers(24, seed=12, scale=0.08)]
    path = tmp_path_factory.mktemp("tblite") / "dimers.extxyz"
    data.save(path, labelled)
    return path, labelled


def test_cli_train_and_evaluate(tblite_dimers, tmp_path, capsys):
    path, labelled = tblite_dimers
    train, test = tmp_path / "train.extxyz", tmp_path / "test.extxyz"
    data.save(train, labelled[:16])
    data.save(test, labelled[16:])
    model_path = tmp_path / "model.npz"
    assert main(["train", str(train), "-o", str(model_path), "--targets", "both", "--n-ref", "100",
                 "--n-radial", "4", "--n-radial4", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "training Z* RMSE" in out and "training dipole RMSE" in out
    assert main(["evaluate", str(model_path), str(test), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_structures"] == 8
    assert set(result) == {"n_structures", "dipole_rmse", "dipole_rmspe", "bec_rmse", "bec_rmspe"}
    # 16 GFN2 dimers are enough for a few per cent on Z* and well under that on M
    assert result["bec_rmspe"] < 0.08
    assert result["dipole_rmspe"] < 0.02
    assert main(["evaluate", str(model_path), str(test)]) == 0
    assert "RMSPE" in capsys.readouterr().out


def test_cli_errors_are_one_line(tblite_dimers, tmp_path, capsys):
    path, _ = tblite_dimers
    model_path = tmp_path / "m.npz"
    assert main(["train", str(path), "-o", str(model_path), "--n-ref", "20", "--n-radial", "3", "--n-radial4", "0", "--quiet"]) == 0
    capsys.readouterr()
    other = tmp_path / "ammonia.extxyz"
    nh3 = molecule("NH3")
    data.save(other, [data.make_structure(nh3, np.zeros((4, 3, 3)))])
    assert main(["evaluate", str(model_path), str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert "structure 0" in err and "atom 0 is N" in err and "\n" not in err
    assert main(["evaluate", str(tmp_path / "none.npz"), str(path)]) == 2


LEGACY = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize("name", ["linear", "kernel"])
def test_format_1_files_still_load_and_predict_the_same(name):
    """Model files of format version 1 (tests/data/make_legacy_v1_models.py, written by the
    last release) load with their flat descriptor settings and predict what they did."""
    model = PolarizationModel.load(LEGACY / f"legacy_v1_{name}.npz")
    with np.load(LEGACY / "legacy_v1_expected.npz") as npz:
        expected = {k: npz[k] for k in npz.files}
    assert model.descriptor == (DescriptorSettings(cutoff=4.5, n_radial=3, n_radial4=2, rank3_weight=0.1)
                                if name == "linear" else DescriptorSettings(cutoff=4.5, n_radial=3, n_radial4=0))
    atoms = Atoms(numbers=expected["numbers"], positions=expected["positions"])
    m, z = model.predict(atoms)
    np.testing.assert_allclose(m, expected[f"{name}_dipole"], atol=1e-12, rtol=1e-10)
    np.testing.assert_allclose(z, expected[f"{name}_bec"], atol=1e-12, rtol=1e-10)


def test_params_round_trip_and_set_params(fitted, tmp_path):
    params = fitted.get_params()
    assert isinstance(params["descriptor"], DescriptorSettings)
    assert PolarizationModel(**params).get_params() == params
    copy = PolarizationModel(**params).fit(dimers_with_point_charges(4))
    assert copy.set_params(descriptor__cutoff=4.0, n_ref=7) is copy
    assert copy.descriptor == DescriptorSettings(cutoff=4.0, n_radial=3, n_radial4=2) and copy.n_ref == 7
    assert not hasattr(copy, "coefficients_")  # the fit belonged to the old settings
    with pytest.raises(InputError, match="not fitted"):
        copy.predict(dimers(1)[0])
    with pytest.raises(InputError, match="unknown PolarizationModel parameter"):
        copy.set_params(cutoff=4.0)  # a descriptor setting: descriptor__cutoff
    with pytest.raises(InputError, match="n_radial4 must be between"):
        copy.set_params(descriptor__n_radial4=5)
    assert PolarizationModel(descriptor={"cutoff": 4.0, "n_radial": 3, "n_radial4": 2}).descriptor == copy.descriptor


def dimers_with_point_charges(n):
    structures = []
    for atoms in dimers(n, seed=3):
        q = np.array([CHARGES[s] for s in atoms.get_chemical_symbols()])
        structures.append(data.make_structure(atoms, q[:, None, None] * np.eye(3), dipole=q @ atoms.positions))
    return structures
