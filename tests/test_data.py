"""The data set format: round trip through extended XYZ, validation, sum rule."""

import numpy as np
import pytest
from ase import Atoms

from ipi_dipole import data
from ipi_dipole.cli import main
from ipi_dipole.errors import InputError


def water(seed=0):
    rng = np.random.default_rng(seed)
    atoms = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    z = rng.normal(size=(3, 3, 3))  # deliberately non-symmetric
    return data.make_structure(atoms, z, dipole=[0.1, 0.2, 0.3], energy=-1.5,
                               forces=rng.normal(size=(3, 3)))


def test_round_trip_keeps_index_convention_and_ase_results(tmp_path):
    a = water()
    path = tmp_path / "set.extxyz"
    data.save(path, [a, water(1)])
    back = data.load(path)
    assert len(back) == 2
    np.testing.assert_allclose(data.get_born_charges(back[0]), data.get_born_charges(a))
    np.testing.assert_allclose(back[0].get_dipole_moment(), [0.1, 0.2, 0.3])
    assert back[0].get_potential_energy() == pytest.approx(-1.5)
    import ase.io
    plain = ase.io.read(path, ":")  # the format promise: plain ASE reads it
    assert plain[1].arrays["born_charges"].shape == (3, 9)


def test_append_adds_structures(tmp_path):
    path = tmp_path / "set.extxyz"
    data.save(path, [water()])
    data.save(path, [water(1)], append=True)
    assert len(data.load(path)) == 2


def test_validation_reports_shape_nan_cell_and_asr():
    good = water()
    good = data.enforce_asr(good)
    assert data.asr_violation(good) < 1e-12
    nan = water()
    nan.arrays["born_charges"][1, 4] = np.nan
    nocell = water()
    nocell.pbc = True
    shape = water()
    shape.arrays["born_charges"] = np.zeros((3, 6))
    problems = data.validate([good, nan, nocell, shape, water()])
    by_index = {}
    for p in problems:
        by_index.setdefault(p.index, []).append(p)
    assert 0 not in by_index
    assert "atoms 1 (H)" in by_index[1][0].message
    assert any("no cell" in p.message for p in by_index[2])
    assert any("numbers per atom" in p.message for p in by_index[3])
    assert by_index[4][0].severity == "warning" and "sum rule" in by_index[4][0].message


def test_asr_uses_total_charge():
    a = water()
    a.info["charge"] = 1.0
    fixed = data.enforce_asr(a)
    np.testing.assert_allclose(data.get_born_charges(fixed).sum(axis=0), np.eye(3), atol=1e-12)


def test_load_names_the_file(tmp_path):
    bad = tmp_path / "broken.extxyz"
    bad.write_text("3\nnot a comment\nH 0 0\n")
    with pytest.raises(InputError, match="broken.extxyz"):
        data.load(bad)
    with pytest.raises(InputError, match="missing.extxyz"):
        data.load(tmp_path / "missing.extxyz")


def test_validate_command(tmp_path, capsys):
    path = tmp_path / "set.extxyz"
    data.save(path, [water(), water(1)])
    assert main(["validate", str(path)]) == 0
    assert "2 warnings" in capsys.readouterr().out
    out = tmp_path / "fixed.extxyz"
    assert main(["validate", str(path), "--enforce-asr", "-o", str(out)]) == 0
    assert main(["validate", str(out)]) == 0
    assert "0 warnings" in capsys.readouterr().out.splitlines()[-1]
    assert main(["validate", str(tmp_path / "nope.extxyz")]) == 2
    assert "nope.extxyz: no such file" in capsys.readouterr().err
