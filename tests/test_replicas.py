"""Many NVE replicas: prepare from a real NVT i-PI run, run under the mpich wheel's mpirun,
survive SIGTERM, a hard kill and a broken replica, with every MD step written exactly once.

The dynamics are real: i-PI with the ipi-dipole PES in-process (<ffdirect>) or over a
unix socket (``ipi-dipole drive``), GFN2-xTB forces from tblite and a small
PolarizationModel trained here on tblite finite-field Born charges of the water dimer.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ipi_dipole import ipi_io as ipi_output
from ipi_dipole.replicas import outputs as ro
from ipi_dipole.replicas import select as sel
from ipi_dipole.cli import main

BIN = Path(sys.executable).parent
MPIRUN = BIN / "mpirun"
IPI = [sys.executable, str(BIN / "i-pi")]
IPI_DIPOLE = [sys.executable, str(BIN / "ipi-dipole")]
PROJECT = Path(__file__).resolve().parents[1]
DIMER = PROJECT / "inputs" / "water-dimer" / "init.xyz"

pytestmark = pytest.mark.skipif(not MPIRUN.exists(), reason="the mpich wheel's mpirun is not installed")


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _pes_path():
    return importlib.util.find_spec("ipi_dipole.driver.pes").origin


# ------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("replicas")


@pytest.fixture(scope="module")
def model(work, dimer_model):
    """The session's small water-dimer PolarizationModel, with the tblite settings beside it."""
    path = work / "model.npz"
    shutil.copy(dimer_model, path)
    (work / "tblite.json").write_text('{"method": "GFN2-xTB", "verbosity": 0}')
    (work / "init.xyz").write_text(DIMER.read_text())
    return path


def _ffdirect(bec=True):
    # ipi_input auto: Z* only at the steps whose BEC i-PI writes, counted from the step of
    # the file i-PI runs; a resume that miscounted would stop i-PI at the first BEC frame
    extra = ", ipi_input: auto" if bec else ""
    return f"""<ffdirect name='dipole' pbc='false'>
    <pes>custom</pes>
    <pes_path>{_pes_path()}</pes_path>
    <parameters>{{ model: model.npz, forces: ase:tblite.ase:TBLite:tblite.json, structure: init.xyz,
                   pbc: false, bec: {str(bec).lower()}{extra} }}</parameters>
  </ffdirect>"""


@pytest.fixture(scope="module")
def equilibration(work, model):
    """A real 400-step NVT (SVR) run of the dimer at 300 K: positions and velocities every 5
    steps, properties every 2, the dipole every step."""
    d = work / "nvt"
    d.mkdir()
    (d / "nvt.xml").write_text(f"""<simulation verbosity='low'>
  <output prefix='nvt'>
    <properties stride='2' filename='out'> [ step, time{{picosecond}}, conserved, temperature{{kelvin}}, potential ] </properties>
    <trajectory filename='pos' stride='5' format='xyz' cell_units='angstrom'> positions{{angstrom}} </trajectory>
    <trajectory filename='vel' stride='5' format='xyz'> velocities </trajectory>
    <trajectory filename='dipole' stride='1' extra_type='dipole'> extras </trajectory>
    <checkpoint filename='chk' stride='100' overwrite='false'/>
  </output>
  <total_steps>400</total_steps>
  <prng><seed>12345</seed></prng>
  {_ffdirect(bec=False).replace('model.npz', str(model)).replace('tblite.json', str(work / 'tblite.json')).replace('init.xyz', str(work / 'init.xyz'))}
  <system>
    <initialize nbeads='1'>
      <file mode='xyz'>{work / 'init.xyz'}</file>
      <velocities mode='thermal' units='kelvin'>300</velocities>
    </initialize>
    <forces><force forcefield='dipole'/></forces>
    <motion mode='dynamics'>
      <dynamics mode='nvt'>
        <timestep units='femtosecond'>0.5</timestep>
        <thermostat mode='svr'><tau units='femtosecond'>10</tau></thermostat>
      </dynamics>
    </motion>
    <ensemble><temperature units='kelvin'>300</temperature></ensemble>
  </system>
</simulation>
""")
    p = subprocess.run(IPI + ["nvt.xml"], cwd=d, env=_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return d / "nvt.pos_0.xyz"


@pytest.fixture(scope="module")
def template(work, model):
    """NVE template beside the model: the dipole every step, BEC and velocities every 2 steps."""
    path = work / "nve.xml"
    path.write_text(f"""<simulation verbosity='low'>
  <!-- NVE production of the water dimer -->
  <output prefix='nve'>
    <properties stride='1' filename='out'> [ time{{femtosecond}}, conserved{{electronvolt}}, temperature{{kelvin}} ] </properties>
    <trajectory filename='pos' stride='4' format='xyz'> positions{{angstrom}} </trajectory>
    <trajectory filename='vel' stride='2' format='xyz'> velocities </trajectory>
    <trajectory filename='dipole' stride='1' extra_type='dipole'> extras </trajectory>
    <trajectory filename='bec' stride='2' extra_type='BEC'> extras </trajectory>
  </output>
  <total_steps>100</total_steps>
  <prng><seed>1</seed></prng>
  {_ffdirect()}
  <system>
    <initialize nbeads='1'><file mode='xyz'>init.xyz</file></initialize>
    <forces><force forcefield='dipole'/></forces>
    <motion mode='dynamics'><dynamics mode='nve'><timestep units='femtosecond'>0.5</timestep></dynamics></motion>
  </system>
</simulation>
""")
    return path


def prepare(equilibration, template, run_dir, *extra):
    sources = [str(p) for p in equilibration] if isinstance(equilibration, list) else [str(equilibration)]
    args = ["replicas", "prepare", *sources, "--template", str(template), "-o", str(run_dir), *extra]
    assert main(args) == 0
    return json.loads((run_dir / "manifest.json").read_text())


def mpirun(run_dir, ranks=2, timeout=120, **kw):
    return subprocess.run([str(MPIRUN), "-n", str(ranks), *IPI_DIPOLE, "replicas", "run", str(run_dir),
                           "--progress", "lines", "--status-interval", "1"],
                          env=_env(), capture_output=True, text=True, timeout=timeout, **kw)


# ------------------------------------------------------------------ file checks

def extras_steps(path):
    return [int(m) for m in re.findall(r"#EXTRAS\(\w+\)# Step:\s+(\d+)", path.read_text())]


def xyz_steps(path):
    return [int(m) for m in re.findall(r"Step:\s+(\d+)", path.read_text())]


def assert_each_step_once(replica_dir, steps):
    """Every output holds steps 0, stride, ..., steps once each, in order, with even times."""
    name = replica_dir.name
    props = np.loadtxt(replica_dir / f"{name}.out", ndmin=2)
    np.testing.assert_array_equal(props[:, 0], np.arange(steps + 1))
    np.testing.assert_allclose(np.diff(props[:, 1]), 0.5, rtol=1e-6)  # time, fs: continuous
    assert extras_steps(replica_dir / f"{name}.dipole_0") == list(range(0, steps + 1))
    assert extras_steps(replica_dir / f"{name}.bec_0") == list(range(0, steps + 1, 2))
    assert xyz_steps(replica_dir / f"{name}.vel_0.xyz") == list(range(0, steps + 1, 2))
    assert xyz_steps(replica_dir / f"{name}.pos_0.xyz") == list(range(0, steps + 1, 4))
    bec = (replica_dir / f"{name}.bec_0").read_text().split("#EXTRAS")[1:]
    assert all(len(block.strip().splitlines()) == 1 + 18 for block in bec)  # header + 3N rows
    return props


# ------------------------------------------------------------------------- prepare

def test_prepare_picks_separated_frames_with_their_velocities(equilibration, template, work):
    run = work / "prep"
    m = prepare(equilibration, template, run, "--n", "4", "--min-separation-ps", "0.03", "--seed", "11")
    reps = m["replicas"]
    assert [r["name"] for r in reps] == [f"replica_{i:03d}" for i in range(4)]
    times = [r["source_time_ps"] for r in reps]
    assert min(np.diff(times)) >= 0.03 - 1e-9 and times[0] >= 0.03 - 1e-9  # the start of the run skipped
    assert len({r["seed"] for r in reps}) == 4
    assert m["velocities"] == "from-trajectory" and m["source"]["velocity_trajectory"].endswith("nvt.vel_0.xyz")
    assert m["source"]["timestep_fs"] == pytest.approx(0.5)
    assert m["steps"] == 100 and m["forcefield"] == "direct"
    assert len(m["template"]["sha256"]) == 64

    from ipi_dipole.replicas import source as src

    vel = src.read_velocity_frames(equilibration.with_name("nvt.vel_0.xyz"))
    for r in reps:
        d = run / r["name"]
        xml = (d / "input.xml").read_text()
        assert f"prefix=\"{r['name']}\"" in xml and f"<seed> {r['seed']} </seed>" in xml
        assert str(work / "model.npz") in xml and str(work / "tblite.json") in xml  # absolute paths
        # the checkpoint is the last output, properties gained a step column
        outputs, chk = ro.read_outputs(d / "input.xml")
        assert chk["stride"] == 10 and xml.rfind("<checkpoint") > xml.rfind("<trajectory")
        assert "[ step, time{femtosecond}" in xml
        # velocities: the source frame's, minus the (tiny) centre-of-mass motion
        v = np.array(re.search(r"<velocities mode=\"manual\" units=\"atomic_unit\">\s*\[(.*?)\]", xml)
                     .group(1).split(","), float).reshape(-1, 3)
        masses = ipi_output.ipi_masses_dalton(["O", "H", "H", "O", "H", "H"])
        want = sel.remove_total_momentum(vel[r["source_step"]], masses) / ipi_output.velocity_to_angstrom_per_fs()
        np.testing.assert_allclose(v, want, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose((masses[:, None] * v).sum(axis=0), 0, atol=1e-12)
        # positions and cell: the source frame's, in i-PI's file format
        frame = src.read_frames([d / "start.xyz"])[0]
        source = [f for f in src.read_frames([equilibration]) if f.step == r["source_step"]][0]
        np.testing.assert_allclose(frame.positions, source.positions, atol=1e-9)
        np.testing.assert_allclose(frame.cell, source.cell, atol=1e-9)


def test_prepare_default_separation_comes_from_the_dipole_autocorrelation(equilibration, template, work, capsys):
    m = prepare(equilibration, template, work / "auto", "--n", "1", "--skip-ps", "0")
    sel_info = m["selection"]
    assert sel_info["tau_series"] == "dipole" and sel_info["tau_file"].endswith("nvt.dipole_0")
    assert sel_info["min_separation_ps"] == pytest.approx(3 * sel_info["tau_int_ps"])
    assert "integrated autocorrelation time of the dipole" in capsys.readouterr().out


def test_prepare_says_how_many_frames_fit(equilibration, template, work, capsys):
    # 400 steps x 0.5 fs = 0.2 ps; with 0.05 ps apart and the first 0.05 ps skipped: 4 fit
    assert main(["replicas", "prepare", str(equilibration), "--template", str(template), "-o",
                 str(work / "toomany"), "--n", "9", "--min-separation-ps", "0.05"]) == 2
    err = capsys.readouterr().err
    assert "only 4 frame(s) fit 0.05 ps apart, 9 replicas asked for" in err
    assert "Traceback" not in err


def test_prepare_from_checkpoints_and_from_extended_xyz(equilibration, template, work):
    from ipi.utils.io.inputs.io_xml import read_array

    from ipi_dipole.replicas import source as src

    # i-PI checkpoints (<checkpoint overwrite='false'>): full-precision positions and momenta
    chks = sorted(equilibration.parent.glob("nvt.chk_*"))
    assert len(chks) >= 4
    m = prepare(chks, template, work / "fromchk", "--n", "2", "--min-separation-ps", "0.05", "--skip-ps", "0")
    assert m["velocities"] == "from-trajectory"
    for r in m["replicas"]:
        import xml.etree.ElementTree as ET

        source = ET.parse(r["source"]).getroot()
        p = read_array(float, source.find("system/beads/p").text).reshape(-1, 3)
        mass = read_array(float, source.find("system/beads/m").text)
        xml = (work / "fromchk" / r["name"] / "input.xml").read_text()
        v = np.array(re.search(r"units=\"atomic_unit\">\s*\[(.*?)\]", xml).group(1).split(","), float)
        want = sel.remove_total_momentum(p / mass[:, None], mass)
        np.testing.assert_allclose(v.reshape(-1, 3), want, atol=1e-11)  # full precision (xyz: 6 digits)
    # extended XYZ with momenta (ASE), step numbers in its info
    import ase.io

    frames = src.read_frames([equilibration])
    vel = src.read_velocity_frames(equilibration.with_name("nvt.vel_0.xyz"))
    images = []
    for f in frames:
        from ase import Atoms, units

        a = Atoms(f.symbols, positions=f.positions, cell=f.cell, pbc=True, info={"step": f.step})
        a.set_velocities(vel[f.step] / units.fs * ipi_output.velocity_to_angstrom_per_fs())
        images.append(a)
    ase.io.write(work / "equil.extxyz", images)
    m = prepare(work / "equil.extxyz", template, work / "fromext", "--n", "3", "--min-separation-ps", "0.05",
                "--equil-timestep-fs", "0.5", "--seed", "3")
    assert m["velocities"] == "from-trajectory" and m["source"]["timestep_fs"] == 0.5
    assert [r["source_step"] for r in m["replicas"]] == [100, 250, 400]


def test_maxwell_boltzmann_velocities_have_the_temperature_and_no_drift(equilibration, template, work):
    m = prepare(equilibration, template, work / "mb", "--n", "3", "--min-separation-ps", "0.03",
                "--velocities", "maxwell-boltzmann", "--temperature", "500", "--seed", "2")
    assert m["velocities"] == "maxwell-boltzmann" and m["source"]["temperature_K"] == 500
    temps = {r["kinetic_temperature_K"] for r in m["replicas"]}
    assert len(temps) == 3  # different draws
    rng = np.random.default_rng(0)
    masses = np.array([16.0, 1.0, 1.0] * 50)
    draws = [sel.maxwell_boltzmann(masses, 300.0, rng) for _ in range(200)]
    assert np.mean([sel.kinetic_temperature(v, masses) for v in draws]) == pytest.approx(300, rel=0.01)
    np.testing.assert_allclose((masses[:, None] * draws[0]).sum(axis=0), 0, atol=1e-12)


def test_velocity_unit_is_angstrom_per_fs_in_atomic_units():
    from ase import units

    # 1 A/fs = (1/Bohr) bohr per (1 fs / atomic time unit) atomic time units
    assert 1 / ipi_output.velocity_to_angstrom_per_fs() == pytest.approx(1 / units.Bohr * units._aut / 1e-15,
                                                                         rel=1e-6)
    assert ipi_output.ipi_masses_dalton(["H", "O"]) == pytest.approx([1.00794, 15.9994], rel=1e-4)


def test_integrated_time_of_an_ar1_series():
    rng = np.random.default_rng(3)
    a, x = np.exp(-1 / 25), np.zeros(100_000)
    noise = rng.normal(size=len(x))
    for i in range(1, len(x)):
        x[i] = a * x[i - 1] + noise[i]
    tau, reliable = sel.integrated_time(x)
    assert reliable and tau == pytest.approx(0.5 + a / (1 - a), rel=0.1)


# ---------------------------------------------------------------------- trimming

def test_trim_cuts_records_after_the_checkpoint_and_partial_records(tmp_path):
    (tmp_path / "in.xml").write_text("""<simulation><output prefix='r'>
      <properties stride='1' filename='out'> [ step, time ] </properties>
      <trajectory filename='pos' stride='2' format='xyz'> positions </trajectory>
      <trajectory filename='bec' stride='2' extra_type='BEC'> extras </trajectory>
      <checkpoint stride='4'/></output><step>4</step><total_steps>10</total_steps></simulation>""")
    props = "# column   1     --> step : s\n# column   2     --> time : t\n"
    props += "".join(f"  {s:.8e}  {s * 0.5:.8e}\n" for s in range(7)) + "  7.0000e+00  3.5"  # cut short
    (tmp_path / "r.out").write_text(props)
    frame = "2\n# CELL(abcABC): 1 1 1 90 90 90 Step: {} Bead: 0 positions{{angstrom}}\nH 0 0 0\nH 1 0 0\n"
    (tmp_path / "r.pos_0.xyz").write_text("".join(frame.format(s) for s in (0, 2, 4, 6)) + "2\n# CELL(ab")
    block = " #EXTRAS(BEC)# Step:  {} \n" + "1 2 3\n" * 6
    (tmp_path / "r.bec_0").write_text("".join(block.format(s) for s in (0, 2, 4)) + block.format(6)[:60])
    assert [o.kind for o, _ in ro.output_files(tmp_path / "in.xml", tmp_path)] == ["properties", "xyz", "extras"]

    notes = ro.trim_outputs(tmp_path / "in.xml", tmp_path, 4)
    assert len(notes) == 3
    assert np.loadtxt(tmp_path / "r.out")[:, 0].tolist() == [0, 1, 2, 3, 4]
    assert xyz_steps(tmp_path / "r.pos_0.xyz") == [0, 2, 4]
    assert (tmp_path / "r.pos_0.xyz").read_text().endswith("H 1 0 0\n")
    assert extras_steps(tmp_path / "r.bec_0") == [0, 2, 4]
    assert (tmp_path / "r.bec_0").read_text().count("1 2 3") == 18
    assert ro.trim_outputs(tmp_path / "in.xml", tmp_path, 4) == []  # idempotent
    # a record the checkpoint counts on is missing: refuse to resume with a gap
    with pytest.raises(Exception, match="resuming would leave a gap"):
        ro.trim_outputs(tmp_path / "in.xml", tmp_path, 8)


# ------------------------------------------------------------- running with MPI

def test_four_replicas_on_two_ranks_finish_distinct_and_complete(equilibration, template, work):
    run = work / "run4"
    prepare(equilibration, template, run, "--n", "4", "--min-separation-ps", "0.03", "--seed", "5",
            "--steps", "60", "--checkpoint-stride", "20")
    p = mpirun(run)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "replicas: 4 done, 0 failed" in p.stdout
    assert re.search(r"started on rank 1", p.stdout)  # both ranks took work
    firsts, conserved = [], []
    manifest = json.loads((run / "manifest.json").read_text())
    for i in range(4):
        d = run / f"replica_{i:03d}"
        assert json.loads((d / "DONE").read_text())["steps"] == 60
        props = assert_each_step_once(d, 60)
        # the velocities arrive in i-PI with the temperature prepare computed (units, masses);
        # i-PI's NVE 'temperature' divides by 3N, prepare by the 3N - 3 of a fixed centre of mass
        assert props[0, 3] * 18 / 15 == pytest.approx(manifest["replicas"][i]["kinetic_temperature_K"], rel=1e-4)
        conserved.append(props[0, 2])
        firsts.append((d / f"replica_{i:03d}.dipole_0").read_text().splitlines()[1])
        assert np.ptp(props[:, 2]) < 1e-2  # NVE: the conserved energy (eV) stays put
    assert len(set(firsts)) == 4 and len(set(np.round(conserved, 6))) == 4
    status = json.loads((run / "status.json").read_text())
    assert {r["status"] for r in status["replicas"].values()} == {"done"}
    # a rerun has nothing to do
    p = mpirun(run)
    assert p.returncode == 0 and "4 already finished" in p.stdout


def test_sigterm_then_rerun_resumes_with_every_step_once(equilibration, template, work):
    run = work / "killed"
    steps = 400
    prepare(equilibration, template, run, "--n", "4", "--min-separation-ps", "0.03", "--seed", "8",
            "--steps", str(steps), "--checkpoint-stride", "50")
    job = subprocess.Popen([str(MPIRUN), "-n", "2", *IPI_DIPOLE, "replicas", "run", str(run), "--progress", "none"],
                           env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    props = run / "replica_000" / "replica_000.out"
    deadline = time.time() + 90
    while time.time() < deadline:  # half-way through the first replica
        if props.exists() and (ro.last_step(props, "properties") or 0) >= steps // 2:
            break
        time.sleep(0.1)
    job.send_signal(signal.SIGTERM)
    out, _ = job.communicate(timeout=90)
    assert job.returncode == 4, out  # four replicas not finished
    assert "stopped at step" in out and "rerun the same command" in out
    assert not (run / "replica_000" / "DONE").exists()

    p = mpirun(run)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "resuming from RESTART at step" in p.stdout
    for i in range(4):
        d = run / f"replica_{i:03d}"
        props = assert_each_step_once(d, steps)
        # no jump in the conserved energy (eV) at the restart
        assert np.ptp(props[:, 2]) < 1e-2 and np.abs(np.diff(props[:, 2])).max() < 3e-3


def test_hard_kill_resumes_from_the_periodic_checkpoint_after_trimming(equilibration, template, work):
    run = work / "hardkill"
    steps = 300
    prepare(equilibration, template, run, "--n", "1", "--min-separation-ps", "0.03", "--seed", "9",
            "--steps", str(steps), "--checkpoint-stride", "40")
    d = run / "replica_000"
    ipi = subprocess.Popen(IPI + ["input.xml"], cwd=d, env=_env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    props = d / "replica_000.out"
    deadline = time.time() + 60
    while time.time() < deadline:
        last = ro.last_step(props, "properties") if props.exists() else None
        if last is not None and last >= 130 and last % 40 > 10:  # past a checkpoint, mid-interval
            break
        time.sleep(0.02)
    ipi.kill()  # SIGKILL: no soft exit, no RESTART; steps after the checkpoint are on disk
    ipi.wait()
    assert not (d / "RESTART").exists()
    checkpoint = ro.read_checkpoint(d / "replica_000.checkpoint").step
    assert ro.last_step(props, "properties") > checkpoint

    p = subprocess.run(IPI_DIPOLE + ["replicas", "run", str(run), "--progress", "none"], env=_env(),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"resuming from replica_000.checkpoint at step {checkpoint}" in p.stdout
    assert "cut" in p.stdout  # the steps after the checkpoint were trimmed before resuming
    assert_each_step_once(d, steps)


def test_a_broken_replica_is_reported_and_the_others_finish(equilibration, template, work):
    run = work / "broken"
    prepare(equilibration, template, run, "--n", "3", "--min-separation-ps", "0.03", "--seed", "4",
            "--steps", "40", "--checkpoint-stride", "20")
    bad = run / "replica_001" / "input.xml"
    bad.write_text(bad.read_text().replace(str(work / "model.npz"), str(work / "missing-model.npz")))
    p = mpirun(run)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "replica_001: FAILED" in p.stdout and "missing-model.npz" in p.stdout  # the log's tail
    assert "replicas: 2 done, 1 failed" in p.stdout
    for name in ("replica_000", "replica_002"):
        assert_each_step_once(run / name, 40)
    assert not (run / "replica_001" / "DONE").exists()


def test_socket_mode_starts_one_driver_per_replica(equilibration, template, work, model):
    sock = work / "nve-socket.xml"
    text = template.read_text()
    text = re.sub(r"<ffdirect.*?</ffdirect>", "<ffsocket name='dipole' mode='unix' pbc='false'>"
                  "<address>x</address><latency>1e-4</latency></ffsocket>", text, flags=re.S)
    sock.write_text(text)
    run = work / "socket"
    driver = (f"ipi-dipole drive --model {model} --forces ase:tblite.ase:TBLite:{work / 'tblite.json'} "
              f"--structure start.xyz --pbc false --unix {{address}} --ipi-input {{ipi_input}}")
    m = prepare(equilibration, sock, run, "--n", "2", "--min-separation-ps", "0.03", "--seed", "6",
                "--steps", "40", "--checkpoint-stride", "20", "--driver", driver)
    assert m["forcefield"] == "socket"
    addresses = {r["socket"]["address"] for r in m["replicas"]}
    assert len(addresses) == 2
    p = mpirun(run)
    assert p.returncode == 0, p.stdout + p.stderr
    for r in m["replicas"]:
        d = run / r["name"]
        assert_each_step_once(d, 40)
        assert f"--unix {r['socket']['address']}" in (d / "driver.log").read_text()


def test_run_without_a_manifest_is_one_clear_line(tmp_path):
    p = subprocess.run(IPI_DIPOLE + ["replicas", "run", str(tmp_path)], env=_env(), capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2
    assert "no manifest" in p.stderr and "Traceback" not in p.stderr
