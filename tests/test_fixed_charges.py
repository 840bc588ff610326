"""Constant per-species Born charges (fixed-charge force fields): hand-checked numbers."""

import numpy as np
import pytest

from ipi_dipole.analysis import fixed_charges, mdot, pipeline, runs, spectrum_file
from ipi_dipole.cli import main
from ipi_dipole.errors import InputError


def test_qtip4pf_m_site_charges_by_hand():
    z = fixed_charges.m_site_born_charges(-1.1128, 0.73612)
    # gamma q_M = 0.73612 * -1.1128; q_H + (1 - gamma)/2 q_M = 0.5564 - 0.13194 * 1.1128
    assert z["O"] == pytest.approx(-0.819154336)
    assert z["H"] == pytest.approx(0.409577168)
    assert z["O"] + 2 * z["H"] == pytest.approx(0.0, abs=1e-12)
    # the dipole of one molecule moved along its M site: dM/dr_O is what the M site carries of it
    r_o, r_h1, r_h2 = np.array([0.0, 0, 0]), np.array([0.96, 0, 0]), np.array([-0.24, 0.93, 0])

    def dipole(ro, rh1, rh2):
        r_m = 0.73612 * ro + 0.13194 * (rh1 + rh2)
        return -1.1128 * r_m + 0.5564 * (rh1 + rh2)

    step = np.array([1e-3, 0, 0])
    assert (dipole(r_o + step, r_h1, r_h2) - dipole(r_o, r_h1, r_h2))[0] / 1e-3 == pytest.approx(z["O"])
    assert (dipole(r_o, r_h1 + step, r_h2) - dipole(r_o, r_h1, r_h2))[0] / 1e-3 == pytest.approx(z["H"])


def test_constant_born_charges_and_mdot():
    z = fixed_charges.constant_born_charges(["Na", "Cl"], {"Na": 1.0, "Cl": -1.0})
    assert z.shape == (2, 3, 3)
    np.testing.assert_array_equal(z[1], -np.eye(3))
    v = np.array([[[0.01, 0.0, 0.002], [-0.003, 0.004, 0.0]]])  # one frame, A/fs
    # Mdot = 1 * v_Na - 1 * v_Cl
    np.testing.assert_allclose(mdot.mdot_from_born_charges(z[None], v), [[0.013, -0.004, 0.002]])
    with pytest.raises(InputError, match="no charge given for Cl"):
        fixed_charges.constant_born_charges(["Na", "Cl"], {"Na": 1.0})
    with pytest.raises(InputError, match="3 charges for 2 atoms"):
        fixed_charges.constant_born_charges(["Na", "Cl"], [1.0, -1.0, 0.0])


def _velocities(frames=256, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(frames)
    v = 0.01 * rng.normal(size=(frames, 2, 3))
    v[:, 0, 0] += 0.02 * np.cos(2 * np.pi * t / 16)
    return v


def test_fixed_charges_give_the_spectrum_of_explicit_born_charges():
    v = _velocities()
    q = [0.8, -0.8]
    explicit = runs.replica_from_arrays("explicit", 1.0, velocities=v,
                                        bec=np.broadcast_to(fixed_charges.constant_born_charges("ab", q),
                                                            (len(v), 2, 3, 3)), cell=np.eye(3) * 10)
    fixed = fixed_charges.with_fixed_charges(runs.replica_from_arrays("fixed", 1.0, velocities=v,
                                                                      cell=np.eye(3) * 10), q)
    options = pipeline.Options(estimator="zv", temperature_k=300.0)
    a, b = pipeline.compute([explicit], options), pipeline.compute([fixed], options)
    np.testing.assert_allclose(b.isotropic, a.isotropic, rtol=1e-12, atol=1e-12 * a.isotropic.max())
    with pytest.raises(InputError, match="need the velocities"):
        fixed_charges.with_fixed_charges(runs.Replica(name="no-v"), q)


def test_cli_charges_option(tmp_path):
    v = _velocities()
    np.save(tmp_path / "v.npy", v)
    np.save(tmp_path / "z.npy", np.broadcast_to(fixed_charges.constant_born_charges("ab", [1.0, -1.0]),
                                                (len(v), 2, 3, 3)))
    common = ["--velocities", str(tmp_path / "v.npy"), "--timestep-fs", "1", "--temperature", "300",
              "--cell", "10,10,10"]
    assert main(["spectrum", "-o", str(tmp_path / "q.csv"), "--charges", "1,-1", *common]) == 0
    assert main(["spectrum", "-o", str(tmp_path / "z.csv"), "--bec", str(tmp_path / "z.npy"), *common]) == 0
    q, z = spectrum_file.read_csv(tmp_path / "q.csv"), spectrum_file.read_csv(tmp_path / "z.csv")
    np.testing.assert_allclose(q["alpha_n_cm1"], z["alpha_n_cm1"], rtol=1e-9, atol=1e-9 * z["alpha_n_cm1"].max())
    # per-species charges need atom names, which plain arrays do not have: a one-line error
    assert main(["spectrum", "-o", str(tmp_path / "x.csv"), "--charges", "Na=1,Cl=-1", *common]) == 2
