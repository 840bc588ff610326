"""The analysis on files written by real i-PI processes.

Three kinds of runs, all short NVE with i-PI's in-process ``<ffdirect>``:

- i-PI's built-in ``harmonic`` PES writing velocities (atomic units and m/s), momenta,
  positions and properties: checks the readers' units against ``ipi.utils.units`` and
  ``ipi.scripting`` and the kinetic energy i-PI itself reports;
- a toy flexible water dimer (harmonic bonds and angles, a charge-flux dipole with its
  exact Born charges), a custom PES written by the test, serving the ``dipole`` and
  ``BEC`` extras: two replicas of different lengths in a replicas-like directory tree,
  for the extras readers, the run finder, the command line, and the estimators' agreement;
- WATER DIMER WITH THE REAL DRIVER (issue 4): GFN2-xTB forces from tblite and the dipole
  and Born charges of a small PolarizationModel, through ``inputs/dipole_pes.py`` and the
  shipped ``inputs/water-dimer/input-ffdirect.xml``: the three estimators must agree to
  2 % in band positions and integrated intensities. Skipped (with the reason) when the
  driver, the model or tblite cannot be imported.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ipi_dipole import ipi_io as ipi_output
from ipi_dipole.analysis import green_kubo, peaks, pipeline, runs, spectrum_file
from ipi_dipole.cli import main

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")

TOY_PES = '''"""Toy flexible water dimer with a charge-flux dipole; dipole and BEC extras in atomic units."""
import json
import numpy as np
from ipi.pes.dummy import Dummy_driver

__DRIVER_NAME__ = "toy_water_dimer"
__DRIVER_CLASS__ = "ToyWaterDimer"

R0, KB = 1.81, 0.50            # O-H bond: bohr, hartree/bohr^2
THETA0, KA = np.radians(104.5), 0.16
HB_R0, HB_K = 3.70, 0.02       # H1(A)...O(B) spring
Q0, FLUX = 0.40, 0.20          # H charge (e) and its change per bohr of bond length


class ToyWaterDimer(Dummy_driver):
    def compute_structure(self, cell, pos):
        x = np.asarray(pos, dtype=float).reshape(-1, 3)
        f = np.zeros_like(x)
        pot = 0.0
        dip = np.zeros(3)
        z = np.zeros((len(x), 3, 3))
        for o in (0, 3):
            ds = []
            for h in (o + 1, o + 2):
                d = x[h] - x[o]
                r = np.linalg.norm(d)
                u = d / r
                pot += 0.5 * KB * (r - R0) ** 2
                f[h] -= KB * (r - R0) * u
                f[o] += KB * (r - R0) * u
                q = Q0 + FLUX * (r - R0)
                dip += q * d
                zh = q * np.eye(3) + FLUX * np.outer(d, u)     # d(q d)_a / d(x_H)_b
                z[h] += zh
                z[o] -= zh
                ds.append((d, r))
            (d1, r1), (d2, r2) = ds
            c = np.clip(np.dot(d1, d2) / (r1 * r2), -1.0, 1.0)
            th = np.arccos(c)
            pot += 0.5 * KA * (th - THETA0) ** 2
            pref = KA * (th - THETA0) * -1.0 / np.sqrt(max(1.0 - c * c, 1e-12))
            g1 = pref * (d2 / (r1 * r2) - c * d1 / r1 ** 2)
            g2 = pref * (d1 / (r1 * r2) - c * d2 / r2 ** 2)
            f[o + 1] -= g1
            f[o + 2] -= g2
            f[o] += g1 + g2
        d = x[3] - x[1]
        r = np.linalg.norm(d)
        pot += 0.5 * HB_K * (r - HB_R0) ** 2
        f[3] -= HB_K * (r - HB_R0) * d / r
        f[1] += HB_K * (r - HB_R0) * d / r
        bec = z.transpose(0, 2, 1).reshape(-1, 3)              # row 3i+b = d/dx_ib, column = M_a
        return pot, f.reshape(-1), np.zeros((3, 3)), json.dumps({"dipole": dip.tolist(), "BEC": bec.tolist()})
'''

DIMER_XYZ = """6
# CELL(abcABC): 20.0 20.0 20.0 90 90 90 cell{angstrom} positions{angstrom}
O   0.000  0.000  0.000
H   0.957  0.000  0.000
H  -0.240  0.927  0.000
O   2.900  0.000  0.100
H   3.300  0.800  0.300
H   3.300 -0.600  0.700
"""

TOY_INPUT = """<simulation verbosity='low'>
  <output prefix='{prefix}'>
    <properties stride='5' filename='out'> [ step, time{{femtosecond}}, conserved, temperature{{kelvin}},
      kinetic_md, potential, volume ] </properties>
    <trajectory filename='dipole' stride='1' extra_type='dipole'> extras </trajectory>
    <trajectory filename='bec' stride='1' extra_type='BEC'> extras </trajectory>
    <trajectory filename='vel' stride='1'> velocities </trajectory>
  </output>
  <total_steps> {steps} </total_steps>
  <prng><seed> {seed} </seed></prng>
  <ffdirect name='toy'><pes>custom</pes><pes_path>../toy_water_dimer.py</pes_path></ffdirect>
  <system>
    <initialize nbeads='1'>
      <file mode='xyz'> ../init.xyz </file>
      <velocities mode='thermal' units='kelvin'> 300 </velocities>
    </initialize>
    <forces><force forcefield='toy'/></forces>
    <ensemble><temperature units='kelvin'> 300 </temperature></ensemble>
    <motion mode='dynamics'><dynamics mode='nve'><timestep units='femtosecond'> 0.5 </timestep></dynamics></motion>
  </system>
</simulation>
"""

HARMONIC_INPUT = """<simulation verbosity='low'>
  <output prefix='h'>
    <properties stride='1' filename='out'> [ step, time{femtosecond}, conserved{electronvolt},
      temperature{kelvin}, kinetic_md{electronvolt}, potential, volume{angstrom3} ] </properties>
    <trajectory filename='vel' stride='2'> velocities </trajectory>
    <trajectory filename='velsi' stride='2'> velocities{m/s} </trajectory>
    <trajectory filename='mom' stride='2'> momenta </trajectory>
    <trajectory filename='vase' stride='2' format='ase'> velocities </trajectory>
    <trajectory filename='pos' stride='2' cell_units='angstrom'> positions{angstrom} </trajectory>
  </output>
  <total_steps> 40 </total_steps>
  <prng><seed> 7 </seed></prng>
  <ffdirect name='h'><pes>harmonic</pes><parameters>{k1: 0.05}</parameters></ffdirect>
  <system>
    <initialize nbeads='1'>
      <file mode='xyz'> init.xyz </file>
      <velocities mode='thermal' units='kelvin'> 300 </velocities>
    </initialize>
    <forces><force forcefield='h'/></forces>
    <motion mode='dynamics'><dynamics mode='nve'><timestep units='femtosecond'> 0.5 </timestep></dynamics></motion>
  </system>
</simulation>
"""

TOY_STEPS = {"replica_000": 4000, "replica_001": 3000}
WINDOW = 80.0   # cm^-1: the Gaussian window is 1e-5 at half the shorter (1.5 ps) replica


def _start(cwd: Path, xml: str = "input.xml"):
    log = open(cwd / "ipi.log", "w")
    return subprocess.Popen([str(BIN / "i-pi"), xml], cwd=cwd, env=ENV, stdout=log, stderr=subprocess.STDOUT)


def _finish(procs, timeout=180):
    for cwd, p in procs:
        try:
            code = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            raise
        assert code == 0, (cwd / "ipi.log").read_text()[-2000:]


def _prepare_real_dimer(root: Path, model: Path, stride: int = 1):
    """WATER DIMER WITH THE REAL DRIVER: needs ipi_dipole.driver (issue 4), PolarizationModel
    (issue 3), tblite and inputs/water-dimer/input-ffdirect.xml + inputs/dipole_pes.py.

    Returns the run directory, or the reason it cannot be made.
    """
    try:
        from ipi_dipole.driver.pes import DipolePES  # noqa: F401
    except ImportError as exc:
        return f"real-driver water dimer needs the driver, the model and tblite: {exc}"
    src = PROJECT / "inputs" / "water-dimer"
    if not (src / "input-ffdirect.xml").exists() or not (PROJECT / "inputs" / "dipole_pes.py").exists():
        return "inputs/water-dimer/input-ffdirect.xml or inputs/dipole_pes.py missing"
    run = root / "water-dimer"
    shutil.copytree(src, run, ignore=shutil.ignore_patterns("model.npz", "nve*", "RESTART", "*.log"))
    shutil.copy(PROJECT / "inputs" / "dipole_pes.py", root / "dipole_pes.py")
    shutil.copy(model, run / "model.npz")
    text = (run / "input-ffdirect.xml").read_text()
    text = re.sub(r"<total_steps>\s*\d+\s*</total_steps>", "<total_steps> 3000 </total_steps>", text)
    text = re.sub(r"<timestep units='femtosecond'>\s*\S+\s*</timestep>",
                  "<timestep units='femtosecond'> 0.5 </timestep>", text)
    # velocities, Born charges and dipole every `stride` steps; the driver reads the
    # strides from the input and evaluates the model only there
    text = re.sub(r"(<trajectory filename='(?:vel|bec|dipole)' stride=')\d+'", rf"\g<1>{stride}'", text)
    assert "ipi_input: auto" in text  # the PES reads the strides from the file i-PI runs
    (run / "input-ffdirect.xml").write_text(text)
    return run


@pytest.fixture(scope="module")
def ipi_runs(tmp_path_factory, dimer_model):
    """Toy-dimer replica tree, harmonic run and real-driver dimer, their i-PI processes run side by side.

    Returns (toy_root, harmonic_dir, real_dimer_dir_or_skip_reason, same_with_outputs_every_8_steps).
    """
    root = tmp_path_factory.mktemp("ipi_runs")
    (root / "real").mkdir()
    real = _prepare_real_dimer(root / "real", dimer_model)
    (root / "strided").mkdir()
    strided = _prepare_real_dimer(root / "strided", dimer_model, stride=8)
    procs = []
    if isinstance(real, Path):
        procs.append((real, _start(real, "input-ffdirect.xml")))
        procs.append((strided, _start(strided, "input-ffdirect.xml")))
    toy = root / "toy"
    toy.mkdir()
    (toy / "toy_water_dimer.py").write_text(TOY_PES)
    (toy / "init.xyz").write_text(DIMER_XYZ)
    for k, (name, steps) in enumerate(TOY_STEPS.items()):
        rep = toy / name
        rep.mkdir()
        (rep / "input.xml").write_text(TOY_INPUT.format(prefix=f"nve{k}", steps=steps, seed=101 + k))
        procs.append((rep, _start(rep)))
    harm = root / "harmonic"
    harm.mkdir()
    (harm / "init.xyz").write_text(DIMER_XYZ)
    (harm / "input.xml").write_text(HARMONIC_INPUT)
    procs.append((harm, _start(harm)))
    _finish(procs, timeout=300)
    return toy, harm, real, strided


# --------------------------------------------------------------------------- (e) readers


def test_velocity_position_momentum_readers_units(ipi_runs, tmp_path):
    import ase.units
    from ipi.scripting import read_output, read_trajectory

    harm = ipi_runs[1]
    vel = ipi_output.read_xyz_trajectory(harm / "h.vel_0.xyz")
    assert vel.kind == "velocities" and vel.values.shape == (21, 6, 3)
    np.testing.assert_array_equal(vel.steps, np.arange(0, 41, 2))
    assert vel.symbols == ["O", "H", "H", "O", "H", "H"]
    # against i-PI's own reader (ASE units: Angstrom per ASE time unit)
    ref = read_trajectory(str(harm / "h.vel_0.xyz"))
    np.testing.assert_allclose(vel.values, np.array([f.arrays["velocities"] for f in ref]) * ase.units.fs,
                               rtol=1e-7)   # i-PI's and ASE's constants differ in the 9th digit
    # the same velocities written in m/s
    si = ipi_output.read_xyz_trajectory(harm / "h.velsi_0.xyz")
    np.testing.assert_allclose(si.values, vel.values, rtol=2e-5, atol=1e-9)
    assert ipi_output.velocity_to_angstrom_per_fs("m/s") == pytest.approx(1e-5, rel=1e-6)
    # i-PI's format='ase' (extended XYZ, ASE units, full precision), also when cut by a kill
    ase_fmt = ipi_output.read_xyz_trajectory(harm / "h.vase_0.extxyz")
    assert ipi_output.sniff(harm / "h.vase_0.extxyz") == ("xyz", "velocities")
    np.testing.assert_array_equal(ase_fmt.steps, vel.steps)
    np.testing.assert_allclose(ase_fmt.values, vel.values, rtol=1e-5, atol=1e-9)
    lines = (harm / "h.vase_0.extxyz").read_text().splitlines(keepends=True)
    (tmp_path / "cut.extxyz").write_text("".join(lines[:-3]))
    assert len(ipi_output.read_xyz_trajectory(tmp_path / "cut.extxyz")) == 20
    # momenta / i-PI element masses
    mom = ipi_output.read_xyz_trajectory(harm / "h.mom_0.xyz")
    assert mom.kind == "velocities"
    np.testing.assert_allclose(mom.values, vel.values, rtol=1e-4, atol=1e-9)
    # kinetic energy from the velocities equals the one i-PI printed, in eV
    props = ipi_output.read_properties(harm / "h.out")
    masses = np.array([15.999, 1.008, 1.008, 15.999, 1.008, 1.008])   # i-PI's element masses (Da)
    kin = 0.5 * np.einsum("i,tia->t", masses, vel.values ** 2) * (1 / ase.units.fs) ** 2  # Da A^2/fs^2 -> eV
    np.testing.assert_allclose(kin, props.get("kinetic_md", "energy", "electronvolt")[::2], rtol=2e-4)
    # positions in Angstrom, cell from the comment
    pos = ipi_output.read_xyz_trajectory(harm / "h.pos_0.xyz")
    assert pos.kind == "positions"
    np.testing.assert_allclose(pos.values, np.array([f.positions for f in read_trajectory(str(harm / "h.pos_0.xyz"))]))
    np.testing.assert_allclose(pos.cells[0], np.eye(3) * 20.0, atol=1e-4)
    np.testing.assert_allclose(vel.cells[0], np.eye(3) * 20.0, atol=1e-4)
    # properties: same numbers as ipi.scripting.read_output, converted
    values, _ = read_output(str(harm / "h.out"))
    np.testing.assert_allclose(props.columns["potential"], values["potential"])
    np.testing.assert_allclose(props.get("time", "time", "femtosecond"), 0.5 * np.arange(41))
    np.testing.assert_allclose(props.get("volume", "volume", "angstrom3"), 8000.0, rtol=1e-6)
    inp = ipi_output.read_ipi_input(harm / "input.xml")
    assert (inp.prefix, inp.timestep_fs, inp.temperature_k) == ("h", pytest.approx(0.5), pytest.approx(300))
    # the checkpoint i-PI wrote (atomic units, no units attribute) says the same
    chk = ipi_output.read_ipi_input(harm / "RESTART")
    assert chk.is_checkpoint and chk.timestep_fs == pytest.approx(0.5, rel=1e-6)


def test_replicas_read_an_equilibration_run_with_the_same_readers(ipi_runs, tmp_path):
    """'replicas prepare' reads i-PI files through these readers: velocities in any i-PI
    unit or as momenta, checkpoints, and the run's time step and temperature."""
    from ipi_dipole.replicas import outputs as ro
    from ipi_dipole.replicas import source as src
    from ipi_dipole.errors import InputError

    harm = ipi_runs[1]
    au = src.read_velocity_frames(harm / "h.vel_0.xyz")
    assert sorted(au) == list(range(0, 41, 2))
    for other in ("h.velsi_0.xyz", "h.mom_0.xyz", "h.vase_0.extxyz"):
        got = src.read_velocity_frames(harm / other)
        assert sorted(got) == sorted(au)
        np.testing.assert_allclose([got[s] for s in au], list(au.values()), rtol=1e-4, atol=1e-9)
    # positions frames, with steps and the cell; a velocity trajectory is not taken for positions
    pos = ipi_output.read_xyz_trajectory(harm / "h.pos_0.xyz")
    frames = src.read_frames([harm / "h.pos_0.xyz"])
    assert [f.step for f in frames] == pos.steps.tolist()
    np.testing.assert_array_equal(frames[-1].positions, pos.values[-1])
    np.testing.assert_allclose(frames[-1].cell, np.eye(3) * 20.0, atol=1e-4)
    with pytest.raises(InputError, match="not of positions"):
        src.read_frames([harm / "h.vel_0.xyz"])
    # the checkpoint: step counts, full-precision frame, time step without i-PI's 9th digit
    chk = ro.read_checkpoint(harm / "RESTART")
    assert (chk.step, chk.total_steps) == (40, 40)
    restart = src.read_checkpoint_frame(harm / "RESTART")
    assert restart.step == 40
    np.testing.assert_allclose(restart.positions, pos.values[-1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(restart.velocities, au[40], rtol=1e-5, atol=1e-9)
    assert ipi_output.read_ipi_input(harm / "RESTART").timestep_fs == 0.5
    # an NVE run's thermal start is not the temperature it runs at: the properties' mean is
    props = ipi_output.read_properties(harm / "h.out")
    assert props.timestep_fs() == 0.5
    inp = ipi_output.read_ipi_input(harm / "input.xml")
    assert inp.temperature_k == pytest.approx(300) and inp.ensemble_temperature_k is None
    info = src.run_info(harm / "h.pos_0.xyz", props, src.find_run_xml(harm / "h.pos_0.xyz"))
    assert info.timestep_fs == 0.5
    assert info.temperature_K == pytest.approx(np.mean(props.get("temperature", "temperature", "kelvin")))
    assert info.notes["temperature"].endswith("mean of the temperature column")
    # a script that mentions <simulation> is not an i-PI input
    (tmp_path / "make_input.py").write_text("TEMPLATE = '''\n<simulation>\n</simulation>\n'''\n")
    assert ipi_output.sniff(tmp_path / "make_input.py") is None
    assert src.find_run_xml(tmp_path / "make_input.py") == []


def test_extras_readers_against_ipi_scripting(ipi_runs):
    from ipi.scripting import read_trajectory

    toy = ipi_runs[0]
    rep = toy / "replica_000"
    dip = ipi_output.read_extras(rep / "nve0.dipole_0", "dipole")
    bec = ipi_output.read_extras(rep / "nve0.bec_0", "BEC")
    ref_d = read_trajectory(str(rep / "nve0.dipole_0"), format="extras")
    ref_b = read_trajectory(str(rep / "nve0.bec_0"), format="extras")
    np.testing.assert_array_equal(dip.steps, ref_d["step"])
    bohr = ipi_output.angstrom_per_bohr()
    import ase.units
    assert bohr == pytest.approx(ase.units.Bohr, rel=1e-7)
    np.testing.assert_allclose(dip.values, ref_d["dipole"] * bohr, rtol=1e-12)
    assert bec.values.shape == (4001, 6, 3, 3)
    np.testing.assert_allclose(bec.values, ref_b["BEC"].reshape(4001, 6, 3, 3).transpose(0, 1, 3, 2))
    # the acoustic sum rule of the charge-flux model holds: sum_i Z_i = 0
    np.testing.assert_allclose(bec.values.sum(axis=1), 0.0, atol=1e-6)
    # Z*.v equals the time derivative of the dipole i-PI wrote (velocity Verlet: centred difference)
    vel = ipi_output.read_xyz_trajectory(rep / "nve0.vel_0.xyz")
    zv = np.einsum("tiab,tib->ta", bec.values, vel.values)
    fd = (dip.values[2:] - dip.values[:-2]) / (2 * 0.5)
    assert np.sqrt(np.mean((zv[1:-1] - fd) ** 2) / np.mean(fd ** 2)) < 5e-3


def test_restarted_and_killed_files_are_read_once(ipi_runs, tmp_path):
    toy = ipi_runs[0]
    src = toy / "replica_001"
    text = (src / "nve1.dipole_0").read_text()
    heads = [m.start() for m in re.finditer("#EXTRAS", text)]
    # a restart that re-wrote the last 10 steps, then a kill in the middle of a line
    (tmp_path / "d").write_text(text + text[heads[-10] - 1:] + text[heads[-3] - 1:][:60])
    ref = ipi_output.read_extras(src / "nve1.dipole_0")
    got = ipi_output.read_extras(tmp_path / "d")
    np.testing.assert_array_equal(got.steps, ref.steps)
    np.testing.assert_allclose(got.values, ref.values)
    assert any("incomplete" in n for n in got.notes) and any("repeated" in n for n in got.notes)
    vtext = (src / "nve1.vel_0.xyz").read_text().splitlines(keepends=True)
    (tmp_path / "v.xyz").write_text("".join(vtext + vtext[-16:] + vtext[-8:-5]))
    got_v = ipi_output.read_xyz_trajectory(tmp_path / "v.xyz")
    np.testing.assert_array_equal(got_v.steps, np.arange(3001))


def test_find_runs_groups_replicas_by_content(ipi_runs, tmp_path):
    toy = ipi_runs[0]
    found = runs.find_runs([toy])
    assert [r.prefix for r in found] == ["nve0", "nve1"]
    for r, name in zip(found, TOY_STEPS):
        assert r.directory.name == name
        assert r.dipole.name == f"{r.prefix}.dipole_0" and r.bec.name == f"{r.prefix}.bec_0"
        assert r.velocities.name == f"{r.prefix}.vel_0.xyz" and r.properties.name == f"{r.prefix}.out"
        assert [p.name for p in r.inputs] == ["input.xml", "RESTART"]
    rep = runs.load_replica(found[1])
    assert rep.step_fs == pytest.approx(0.5) and rep.temperature_k == pytest.approx(300.0)
    assert rep.volume_a3 == pytest.approx(8000.0, rel=1e-6)
    assert len(rep.dipole) == 3001 and rep.kinetic_temperature_k > 0


# --------------------------------------------------------------------------- estimators, command line


def _band_summary(result, lo=1000.0):
    bands = [p for p, _ in peaks.find_bands(result.wavenumber_cm1, result.isotropic, min_cm1=lo, max_cm1=5000,
                                            prominence=0.1)]
    return bands


def _compare_estimators(replicas, tolerance, regions, min_band_cm1=1000.0, volume=None, far_ir_w2=True):
    """Bands above ``min_band_cm1`` and integrals over ``regions`` agree with zv to ``tolerance``.

    The full range (0-6000 cm^-1) is compared for every estimator except, when
    ``far_ir_w2`` is False, dipole-w2: on one short trajectory of a rotating molecule its
    far-IR (< 1000 cm^-1) differs from the Mdot estimators by the finite-sample boundary
    terms ``M(T) Mdot(T) / T`` of the integration by parts (16 % below 300 cm^-1 for one
    1.5 ps dimer trajectory), which vanish only with more or longer replicas.
    """
    results = {}
    for est in ("zv", "dipole-fd", "dipole-w2", "dipole-mdot"):
        opts = pipeline.Options(estimator=est, volume_a3=volume,
                                settings=green_kubo.SpectrumSettings(fwhm_cm1=WINDOW))
        results[est] = pipeline.compute(replicas, opts)
    ref = results["zv"]
    ref_bands = _band_summary(ref, min_band_cm1)
    assert ref_bands, "no bands found"
    for est, res in results.items():
        bands = _band_summary(res, min_band_cm1)
        assert len(bands) == len(ref_bands), (est, bands, ref_bands)
        np.testing.assert_allclose(bands, ref_bands, rtol=tolerance, err_msg=est)
        checks = list(regions) + ([(0, 6000)] if far_ir_w2 or est != "dipole-w2" else [])
        for lo, hi in checks:
            assert res.integrated(lo, hi)[0] == pytest.approx(ref.integrated(lo, hi)[0], rel=tolerance), (est, lo, hi)
    return results


def test_estimators_agree_on_toy_water_dimer(ipi_runs):
    toy = ipi_runs[0]
    reps = [runs.load_replica(r) for r in runs.find_runs([toy])]
    results = _compare_estimators(reps, 0.02, [(1000, 2500), (2500, 4500), (1000, 6000)])
    bands = _band_summary(results["zv"])
    assert any(1500 < b < 1800 for b in bands) and any(3500 < b < 4000 for b in bands)


def test_cli_on_replica_directory(ipi_runs, tmp_path, capsys):
    toy = ipi_runs[0]
    exp = tmp_path / "exp.csv"
    exp.write_text("wavenumber_cm1,alpha_n_cm1\n1000,1\n2000,5\n3000,2\n")
    out, png = tmp_path / "spectrum.csv", tmp_path / "spectrum.png"
    assert main(["spectrum", str(toy), "-o", str(out), "--plot", str(png), "--window-cm1", str(WINDOW),
                 "--experiment", str(exp)]) == 0
    text = capsys.readouterr().out
    assert "found 2 replica(s)" in text and "estimator: zv" in text
    assert "temperature: 300 K (input.xml <ensemble><temperature>)" in text
    assert "volume: 8000 A^3 (nve0.out volume column (mean); nve1.out volume column (mean))" in text
    assert "looks like a molecule in a vacuum box" in text
    assert "frames 0.5 fs apart" in text
    table = spectrum_file.read_csv(out)
    assert list(table)[:6] == ["wavenumber_cm1", "alpha_n_cm1", "alpha_n_stderr_cm1", "alpha_n_xx_cm1",
                               "alpha_n_yy_cm1", "alpha_n_zz_cm1"]
    assert np.all(np.isfinite(table["alpha_n_stderr_cm1"]))
    assert any("replicas: 2 (4001, 3001 frames)" in c for c in table["comments"])
    assert png.stat().st_size > 10000
    # the volume and time step can be overridden; the answer scales as it must
    out2 = tmp_path / "s2.csv"
    assert main(["spectrum", str(toy), "-o", str(out2), "--window-cm1", str(WINDOW), "--volume", "4000"]) == 0
    np.testing.assert_allclose(spectrum_file.read_csv(out2)["alpha_n_cm1"], 2 * table["alpha_n_cm1"], rtol=1e-6)


# --------------------------------------------------------------------------- (b) real driver


@pytest.fixture(scope="module")
def real_dimer_run(ipi_runs):
    run = ipi_runs[2]
    if not isinstance(run, Path):
        pytest.skip(run)
    return run


def test_estimators_agree_on_real_driver_water_dimer(real_dimer_run):
    found = runs.find_runs([real_dimer_run])
    assert len(found) == 1 and found[0].bec is not None and found[0].velocities is not None
    rep = runs.load_replica(found[0])
    assert len(rep.dipole) == len(rep.bec) == 3001
    _compare_estimators([rep], 0.02, [(1000, 2500), (2500, 4500), (1000, 6000)], volume=30.0, far_ir_w2=False)


def test_outputs_every_8_steps_give_the_same_spectrum(real_dimer_run, ipi_runs):
    """The shipped liquid-water set-up: dipole, Born charges and velocities every 8 steps
    (4 fs, Nyquist 4170 cm^-1), the driver evaluating the model only there. Same seed,
    same trajectory as the every-step run: the estimators agree among themselves and zv
    agrees with the every-step zv."""
    strided = ipi_runs[3]
    rep = runs.load_replica(runs.find_runs([strided])[0])
    assert len(rep.dipole) == len(rep.bec) == 3000 // 8 + 1
    regions = [(1000, 2500), (2500, 4000)]
    results = _compare_estimators([rep], 0.02, regions, volume=30.0, far_ir_w2=False)
    full = runs.load_replica(runs.find_runs([real_dimer_run])[0])
    ref = pipeline.compute([full], pipeline.Options(estimator="zv", volume_a3=30.0,
                                                    settings=green_kubo.SpectrumSettings(fwhm_cm1=WINDOW)))
    np.testing.assert_allclose(_band_summary(results["zv"]), _band_summary(ref), rtol=0.01)
    for lo, hi in regions:
        assert results["zv"].integrated(lo, hi)[0] == pytest.approx(ref.integrated(lo, hi)[0], rel=0.02)
