"""Green-Kubo analysis on data with known answers (no i-PI process; see test_analysis_ipi.py).

The harmonic ensemble is exact: independent anisotropic oscillators (one per atom, two
atoms with different masses and full 3x3 Born charges) moving analytically, with
Maxwell-Boltzmann initial conditions drawn by stratified sampling whose second moments
are exact, so that the 1 % sum-rule check tests the code and not the sampling noise.
"""

import numpy as np
import pytest
from scipy import constants, stats

from ipi_dipole import ipi_io as ipi_output
from ipi_dipole.analysis import (correlation, experiment, green_kubo, jumps, mdot, peaks, pipeline,
                                 quantum_corrections, replicas, runs, spectrum_file)
from ipi_dipole.cli import main
from ipi_dipole.errors import InputError

TEMPERATURE = 300.0
VOLUME = 1000.0
MASSES = np.array([15.999, 1.008])                                   # Da
FREQUENCIES = np.array([[500.0, 900.0, 1300.0], [1700.0, 2600.0, 3500.0]])  # cm^-1, per atom and axis
BORN = np.array([[[2.0, 0.3, -0.2], [0.1, -1.5, 0.4], [0.0, 0.2, 1.8]],
                 [[0.5, 0.1, 0.0], [-0.2, 0.6, 0.1], [0.05, 0.0, -0.4]]])   # Z[i, a, b], e


def _stratified_normal(rng, n):
    z = stats.norm.ppf((np.arange(n) + 0.5) / n)
    return rng.permutation(z / np.sqrt(np.mean(z ** 2)))


def oscillator_ensemble(n_replicas=16, n_frames=20000, dt=1.0, seed=1):
    """Exact trajectories: positions (R, T, 2, 3) in A and velocities in A/fs."""
    import ase.units

    rng = np.random.default_rng(seed)
    omega = green_kubo.angular_frequency(FREQUENCIES)                   # rad/fs
    v_scale = np.sqrt(ase.units.kB * TEMPERATURE / MASSES) * ase.units.fs  # A/fs
    x0 = np.empty((n_replicas, 2, 3))
    v0 = np.empty((n_replicas, 2, 3))
    for i in range(2):
        for b in range(3):
            v0[:, i, b] = v_scale[i] * _stratified_normal(rng, n_replicas)
            x0[:, i, b] = v_scale[i] / omega[i, b] * _stratified_normal(rng, n_replicas)
    phase = omega[None] * (np.arange(n_frames) * dt)[:, None, None]
    x = x0[:, None] * np.cos(phase) + (v0 / omega)[:, None] * np.sin(phase)
    v = -(x0 * omega)[:, None] * np.sin(phase) + v0[:, None] * np.cos(phase)
    return x, v


def sum_rule_si(born=BORN):
    """pi / (6 V c eps0) sum_i tr(Z_i Z_i^T) / m_i, in m^-1 s^-1 (integral over angular frequency)."""
    total = sum(np.trace(z @ z.T) * constants.e ** 2 / (m * constants.atomic_mass) for z, m in zip(born, MASSES))
    return np.pi / (6 * VOLUME * 1e-30 * constants.c * constants.epsilon_0) * total


@pytest.fixture(scope="module")
def ensemble():
    x, v = oscillator_ensemble()
    dipole = np.einsum("iab,rtib->rta", BORN, x)
    reps = [runs.replica_from_arrays(f"r{k}", 1.0, dipole=dipole[k], velocities=v[k],
                                     bec=np.broadcast_to(BORN, (v.shape[1], 2, 3, 3)))
            for k in range(len(v))]
    return reps, dipole, v


# --------------------------------------------------------------------------- correlation


def test_correlation_is_linear_and_unbiased():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    y = rng.normal(size=(200, 2))
    c = correlation.correlation(x, y, max_lag=150)
    direct = np.array([[np.mean(x[: 200 - k, j] * y[k:, j]) for j in range(2)] for k in range(151)])
    np.testing.assert_allclose(c, direct, atol=1e-12)
    # tapered: still unbiased, a constant series has the constant at every lag
    w = correlation.taper(200, 0.2)
    np.testing.assert_allclose(correlation.autocorrelation(np.full(200, 3.0), 120, w), 9.0, rtol=1e-10)
    with pytest.raises(ValueError):
        correlation.correlation(x, y[:10])


# --------------------------------------------------------------------------- units


def test_prefactor_matches_atomic_units():
    """beta/(V c eps0) computed in Hartree atomic units with i-PI's constants agrees."""
    from ipi.utils.units import unit_to_internal

    t_au = unit_to_internal("temperature", "kelvin", TEMPERATURE)       # Hartree
    v_au = unit_to_internal("volume", "angstrom3", VOLUME)              # bohr^3
    c_au = 1.0 / constants.fine_structure                              # speed of light, a.u.
    eps0_au = 1.0 / (4.0 * np.pi)
    mdot_au = unit_to_internal("length", "angstrom") / unit_to_internal("time", "femtosecond")
    fs_au = unit_to_internal("time", "femtosecond")
    per_bohr = 1.0 / (t_au * v_au * c_au * eps0_au) * mdot_au ** 2 * fs_au
    per_cm = per_bohr * unit_to_internal("length", "angstrom") * 1e8
    assert green_kubo.alpha_n_prefactor(TEMPERATURE, VOLUME) == pytest.approx(per_cm, rel=2e-6)


def test_wavenumber_conversion_and_window_widths():
    assert green_kubo.angular_frequency(1.0) == pytest.approx(2 * np.pi * constants.c * 100 * 1e-15)
    assert green_kubo.wavenumber(green_kubo.angular_frequency(1234.5)) == pytest.approx(1234.5)
    dt, n = 0.5, 2 ** 18
    t = np.arange(n // 2) * dt
    for kind in ("gaussian", "lorentzian"):
        w = green_kubo.window_function(kind, 40.0, t)
        line = green_kubo.cosine_transform(w[:, None], dt, np.ones_like(w), n)[:, 0]
        nu = green_kubo.wavenumber(2 * np.pi * np.fft.rfftfreq(n, dt))
        half = nu[np.flatnonzero(line < line[0] / 2)[0]]
        assert 2 * half == pytest.approx(40.0, abs=0.3), kind


def test_quantum_correction_factors():
    nu = np.array([1e-6, 1000.0, 3400.0])
    x = quantum_corrections.reduced_frequency(nu, 300.0)
    assert x[1] == pytest.approx(constants.h * constants.c * 1e5 / (constants.k * 300.0))
    np.testing.assert_allclose(quantum_corrections.alpha_n_factor("harmonic", nu, 300.0), 1.0)
    np.testing.assert_allclose(quantum_corrections.alpha_n_factor("none", nu, 300.0), 1.0)
    np.testing.assert_allclose(quantum_corrections.alpha_n_factor("schofield", nu, 300.0),
                               [1.0, 2 * np.sinh(x[1] / 2) / x[1], 2 * np.sinh(x[2] / 2) / x[2]], rtol=1e-6)
    np.testing.assert_allclose(quantum_corrections.qcf("harmonic", x[1:]), x[1:] / (1 - np.exp(-x[1:])))
    with pytest.raises(InputError):
        quantum_corrections.qcf("bogus", x)


def test_bec_layout_from_ipi():
    z = np.arange(2 * 9, dtype=float).reshape(2, 3, 3)        # Z[i, a, b]
    block = z.transpose(0, 2, 1).reshape(6, 3)                 # row 3i+b, column a
    np.testing.assert_array_equal(ipi_output.bec_from_ipi(block[None])[0], z)


# --------------------------------------------------------------------------- (a) harmonic ensemble


@pytest.mark.parametrize("estimator", ["zv", "dipole-fd", "dipole-w2", "dipole-mdot"])
def test_harmonic_ensemble_sum_rule_and_peaks(ensemble, estimator):
    reps, _, _ = ensemble
    result = pipeline.compute(reps, pipeline.Options(estimator=estimator, temperature_k=TEMPERATURE,
                                                     volume_a3=VOLUME, md_step_fs=0.0))
    omega = green_kubo.angular_frequency(result.wavenumber_cm1)
    integral = np.trapezoid(result.isotropic, omega) * 100 * 1e15     # cm^-1 rad/fs -> m^-1 s^-1
    assert integral == pytest.approx(sum_rule_si(), rel=0.01)
    # per component: pi/(2 V c eps0) sum_i (Z Z^T)_aa / m_i
    zz = sum(np.diag(z @ z.T) / m for z, m in zip(BORN, MASSES))
    expected = 3 * sum_rule_si() * zz / zz.sum()
    np.testing.assert_allclose(np.trapezoid(result.components, omega, axis=0) * 1e17, expected, rtol=0.01)
    found = [p for p, _ in peaks.find_bands(result.wavenumber_cm1, result.isotropic)]
    for nu in FREQUENCIES.ravel():
        assert min(abs(np.array(found) - nu)) < 1.0, (nu, found)
    assert result.n_replicas == 16
    assert np.all(np.isfinite(result.isotropic_stderr))


def test_sum_rule_holds_at_any_temperature(ensemble):
    """beta <Mdot^2> is temperature-free: rescaling T (and the velocities) keeps the integral."""
    reps, _, v = ensemble
    hot = [runs.replica_from_arrays("hot", 1.0, velocities=v[k] * np.sqrt(4.0),
                                    bec=np.broadcast_to(BORN, (v.shape[1], 2, 3, 3))) for k in range(4)]
    cold = [runs.replica_from_arrays("cold", 1.0, velocities=v[k],
                                     bec=np.broadcast_to(BORN, (v.shape[1], 2, 3, 3))) for k in range(4)]
    a = pipeline.compute(hot, pipeline.Options(temperature_k=4 * TEMPERATURE, volume_a3=VOLUME))
    b = pipeline.compute(cold, pipeline.Options(temperature_k=TEMPERATURE, volume_a3=VOLUME))
    np.testing.assert_allclose(a.isotropic, b.isotropic, rtol=1e-9, atol=1e-9 * b.isotropic.max())


def test_replicas_of_different_lengths_share_a_grid(ensemble):
    reps, dipole, v = ensemble
    short = [runs.replica_from_arrays("a", 1.0, velocities=v[0][:5000], bec=np.broadcast_to(BORN, (5000, 2, 3, 3))),
             runs.replica_from_arrays("b", 1.0, velocities=v[1], bec=np.broadcast_to(BORN, (len(v[1]), 2, 3, 3))),
             runs.replica_from_arrays("c", 1.0, velocities=v[2][:15000], bec=np.broadcast_to(BORN, (15000, 2, 3, 3)))]
    result = pipeline.compute(short, pipeline.Options(temperature_k=TEMPERATURE, volume_a3=VOLUME))
    assert result.info["max_lag_frames"] == 2500                 # half the shortest replica
    assert result.info["frames"] == [5000, 20000, 15000]
    each = np.stack([s.isotropic for s in result.spectra])
    np.testing.assert_allclose(result.isotropic_stderr, each.std(axis=0, ddof=1) / np.sqrt(3), rtol=1e-12)
    with pytest.raises(InputError, match="frames are"):
        pipeline.compute([short[0], runs.replica_from_arrays("d", 2.0, velocities=v[3],
                                                             bec=np.broadcast_to(BORN, (len(v[3]), 2, 3, 3)))],
                         pipeline.Options(temperature_k=TEMPERATURE, volume_a3=VOLUME))


def test_bec_at_a_larger_stride():
    """BEC every 4th step: 'common' keeps those steps; 'linear' interpolates Z* onto every step."""
    steps = np.arange(101)
    z = np.random.default_rng(2).normal(size=(26, 3, 3, 3))
    v = np.ones((101, 3, 3))
    s, zc, vc = mdot.align_bec_to_velocities(steps[::4], z, steps, v, "common")
    np.testing.assert_array_equal(s, steps[::4])
    s, zl, vl = mdot.align_bec_to_velocities(steps[::4], z, steps, v, "linear")
    assert len(s) == 101
    np.testing.assert_allclose(zl[::4], z)
    np.testing.assert_allclose(zl[2], 0.5 * (z[0] + z[1]))


# --------------------------------------------------------------------------- (c) lattice-quantum jumps


def _inject_jumps(dipole, cell, charges, n_jumps, seed):
    rng = np.random.default_rng(seed)
    out = dipole.copy()
    for s in rng.choice(len(dipole) - 1, n_jumps, replace=False):
        out[s + 1:] += rng.choice([-1, 1]) * rng.choice(charges) * cell[rng.integers(3)]
    # two atoms crossing in one step, and jumps at consecutive steps
    out[1001:] += charges[0] * cell[0] - charges[1] * cell[2]
    out[1002:] += charges[1] * cell[1]
    return out


@pytest.mark.parametrize("estimator", ["dipole-fd", "dipole-w2"])
def test_injected_jumps_give_the_same_spectrum(ensemble, estimator):
    _, dipole, _ = ensemble
    cell = np.array([[12.0, 0.0, 0.0], [0.5, 11.0, 0.0], [0.2, 0.3, 13.0]])
    charges = [-0.82, 0.41]
    clean = [runs.replica_from_arrays(f"r{k}", 1.0, dipole=dipole[k][:8000], cell=cell) for k in range(3)]
    jumpy = [runs.replica_from_arrays(f"r{k}", 1.0, dipole=_inject_jumps(dipole[k][:8000], cell, charges, 60, k),
                                      cell=cell) for k in range(3)]
    opts = dict(estimator=estimator, temperature_k=TEMPERATURE, volume_a3=VOLUME, md_step_fs=0.0)
    ref = pipeline.compute(clean, pipeline.Options(**opts))
    exact = pipeline.compute(jumpy, pipeline.Options(jump_charges=charges, **opts))
    measured = pipeline.compute(jumpy, pipeline.Options(**opts))
    assert exact.info["jumps_removed"] == measured.info["jumps_removed"] == 3 * 62
    scale = ref.isotropic.max()
    np.testing.assert_allclose(exact.isotropic, ref.isotropic, atol=1e-9 * scale)
    np.testing.assert_allclose(measured.isotropic, ref.isotropic, atol=2e-3 * scale)


def test_jump_report_counts_snapped_and_unmatched():
    t = np.arange(3000) * 0.5
    m = np.stack([0.3 * np.sin(0.6 * t), 0.2 * np.cos(0.5 * t), 0.1 * np.sin(0.05 * t)], axis=1)
    cell = np.diag([10.0, 11.0, 12.0])
    m[1500:] += 0.4 * cell[1]
    m[2000:] += 0.57 * cell[0]                      # matches no quantum of the charges
    clean, report = jumps.remove_dipole_jumps(m, cell, [-0.8, 0.4])
    assert (report.count, report.snapped, report.unmatched) == (2, 1, 1)
    assert np.abs(clean[1400:1600, 1] - clean[1400:1600, 1].mean()).max() < 0.25


# --------------------------------------------------------------------------- (d) experiment


def test_liquid_water_experiment_bands(fixture_file):
    for name in ("exp_water_ir/H2O_Hale_Querry1973.yml", "exp_water_ir/H2O_Segelstein1981.yml"):
        meas = experiment.read_experiment(fixture_file(name))
        assert np.all(np.diff(meas.wavenumber_cm1) > 0)
        np.testing.assert_allclose(meas.alpha_n_cm1, 4 * np.pi * meas.k * meas.wavenumber_cm1 * meas.n)
        grid = np.arange(1000.0, 4000.0, 1.0)
        bands = [p for p, _ in peaks.find_bands(grid, np.interp(grid, meas.wavenumber_cm1, meas.alpha_n_cm1),
                                                prominence=0.1)]
        assert any(abs(p - 3400) < 60 for p in bands), (name, bands)
        assert any(abs(p - 1640) < 25 for p in bands), (name, bands)
        stretch = meas.alpha_n_cm1[(meas.wavenumber_cm1 > 3200) & (meas.wavenumber_cm1 < 3600)].max()
        assert 1.2e4 < stretch < 2.0e4     # cm^-1: alpha(3400) of liquid water is ~1.2e4, n ~1.3


def test_two_column_experiment(tmp_path):
    p = tmp_path / "exp.csv"
    p.write_text("# measured\nwavenumber_cm1,alpha_n_cm1\n3000,2\n1000,1\n")
    meas = experiment.read_experiment(p)
    np.testing.assert_array_equal(meas.wavenumber_cm1, [1000, 3000])
    np.testing.assert_array_equal(meas.alpha_n_cm1, [1, 2])
    (tmp_path / "bad.csv").write_text("1,2\n3,x\n")
    with pytest.raises(InputError, match="line 2"):
        experiment.read_experiment(tmp_path / "bad.csv")


# --------------------------------------------------------------------------- command line, plain arrays


def test_cli_plain_arrays(tmp_path, ensemble, capsys):
    _, dipole, v = ensemble
    for k in range(3):
        np.save(tmp_path / f"v{k}.npy", v[k][:6000])
        np.save(tmp_path / f"z{k}.npy", np.broadcast_to(BORN, (6000, 2, 3, 3)))
    np.savetxt(tmp_path / "m0.txt", dipole[0][:6000])
    out = tmp_path / "s.csv"
    args = ["spectrum", "-o", str(out), "--timestep-fs", "1", "--temperature", "300", "--volume", "1000",
            "--plot", str(tmp_path / "s.png"), "--quantum-correction", "harmonic"]
    for k in range(3):
        args += ["--velocities", str(tmp_path / f"v{k}.npy"), "--bec", str(tmp_path / f"z{k}.npy")]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "estimator: zv" in text and "2600.0, 3500.0" in text
    table = spectrum_file.read_csv(out)
    lines = out.read_text().splitlines()
    assert lines[0].startswith("#")
    header = next(line for line in lines if not line.startswith("#"))
    assert header.startswith("wavenumber_cm1,alpha_n_cm1,alpha_n_stderr_cm1,"
                             "alpha_n_xx_cm1,alpha_n_yy_cm1,alpha_n_zz_cm1")
    assert any("quantum correction: harmonic" in c for c in table["comments"])
    np.testing.assert_allclose(table["alpha_n_cm1"],
                               (table["alpha_n_xx_cm1"] + table["alpha_n_yy_cm1"] + table["alpha_n_zz_cm1"]) / 3,
                               rtol=1e-6, atol=1e-6 * table["alpha_n_cm1"].max())
    assert table["wavenumber_cm1"][-1] <= 6000
    assert (tmp_path / "s.png").stat().st_size > 10000
    # a dipole text file alone: dipole-fd is chosen
    assert main(["spectrum", "-o", str(tmp_path / "d.csv"), "--dipole", str(tmp_path / "m0.txt"),
                 "--timestep-fs", "1", "--temperature", "300", "--volume", "1000"]) == 0
    assert "estimator: dipole-fd" in capsys.readouterr().out


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    np.save(tmp_path / "v.npy", np.zeros((10, 2, 3)))
    np.save(tmp_path / "z.npy", np.zeros((10, 3, 3, 3)))
    code = main(["spectrum", "-o", str(tmp_path / "x.csv"), "--velocities", str(tmp_path / "v.npy"),
                 "--bec", str(tmp_path / "z.npy"), "--timestep-fs", "1", "--temperature", "300", "--volume", "9"])
    assert code == 2
    err = capsys.readouterr().err
    assert "Born charges for 3 atoms" in err and len(err.strip().splitlines()) == 1
    assert main(["spectrum", "-o", str(tmp_path / "x.csv"), str(tmp_path / "nowhere")]) == 2
    assert main(["spectrum", "-o", str(tmp_path / "x.csv"), "--velocities", str(tmp_path / "v.npy"),
                 "--temperature", "300", "--volume", "9"]) == 2
    assert "--timestep-fs" in capsys.readouterr().err


def test_replica_average_needs_one_grid():
    a = green_kubo.Spectrum(np.arange(5.0), np.ones((5, 3)))
    b = green_kubo.Spectrum(np.arange(6.0), np.ones((6, 3)))
    with pytest.raises(InputError):
        replicas.average([a, b])
    single = replicas.average([a])
    assert np.all(np.isnan(single.isotropic_stderr))
