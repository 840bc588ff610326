"""The driver with a real i-PI: NVE of the water dimer over a unix socket, in-process
(<ffdirect>), under i-pi-py_driver and <ffmpi>; what happens when i-PI dies or restarts;
one-line reports of structure/model mismatches.

The water-dimer runs use the shipped ``inputs/water-dimer`` files (only the number of
steps, the socket address and the precision of the positions file are changed), tblite
GFN2-xTB forces through the ``ase:`` back-end, and a small PolarizationModel trained on a
few tblite-labelled dimers.
"""

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

from ipi_dipole.ipi_io import units

PROJECT = Path(__file__).resolve().parents[1]
INPUTS = PROJECT / "inputs"
BIN = Path(sys.executable).parent
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
TBLITE = "ase:tblite.ase:TBLite:tblite.json"
STEPS = 200


def dimer_run_dir(root: Path, model: Path, steps: int = STEPS, address: str = "wd",
                  timestep_fs: float = 0.1) -> Path:
    """A copy of inputs/water-dimer beside ../dipole_pes.py, with the model and short runs.

    The time step goes down from the shipped 0.25 fs to 0.1 fs: over 200 steps, Verlet's
    bounded energy fluctuation at 0.25 fs (~2e-3 of the kinetic energy, modulated slowly)
    does not average out and would mask a drift at the 1e-4 level.
    """
    run = root / "water-dimer"
    made_there = shutil.ignore_patterns("model.npz", "nve*", "RESTART", "dimer-*.extxyz", "ff", "*.log", "#*")
    shutil.copytree(INPUTS / "water-dimer", run, ignore=made_there)
    shutil.copy(INPUTS / "dipole_pes.py", root / "dipole_pes.py")
    shutil.copy(model, run / "model.npz")
    for name in ("input.xml", "input-ffdirect.xml"):
        text = (run / name).read_text()
        text = re.sub(r"<total_steps>\s*\d+\s*</total_steps>", f"<total_steps> {steps} </total_steps>", text)
        text = re.sub(r"<address>\s*\S+\s*</address>", f"<address> {address} </address>", text)
        text = re.sub(r"<timestep units='femtosecond'>\s*\S+\s*</timestep>",
                      f"<timestep units='femtosecond'> {timestep_fs} </timestep>", text)
        # full-precision positions (i-PI's xyz format keeps 6 digits)
        text = re.sub(r"<trajectory filename='pos'.*?</trajectory>",
                      "<trajectory filename='pos' stride='4' format='ase'> positions{ase} </trajectory>", text)
        (run / name).write_text(text)
    return run


def start_ipi(run: Path, xml: str, prefix: str) -> subprocess.Popen:
    log = open(run / f"{xml}.log", "w")
    return subprocess.Popen([str(BIN / "i-pi"), "-S", prefix, xml], cwd=run, env=ENV,
                            stdout=log, stderr=subprocess.STDOUT)


def drive_cmd(*args):
    return [sys.executable, "-m", "ipi_dipole.cli", "drive", *args]


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def read_run(run: Path, prefix: str):
    """Properties, positions (bohr, by step), dipole and BEC extras (by step) of one run."""
    import ase.io
    from ipi.scripting import read_output, read_trajectory

    props, _ = read_output(run / f"{prefix}.out")
    frames = ase.io.read(next(run.glob(f"{prefix}.pos_0*")), ":", format="extxyz")
    # i-PI's read_trajectory mangles steps >= 10 in xyz comments; parse them here
    pos = {int(re.search(r"Step:\s+(\d+)", a.info["ipi_comment"]).group(1)):
           (a.get_chemical_symbols(), a.arrays["positions"]) for a in frames}
    dip = read_trajectory(str(run / f"{prefix}.dipole_0"), format="extras")
    bec = read_trajectory(str(run / f"{prefix}.bec_0"), format="extras")
    return (props, pos, dict(zip(dip["step"].tolist(), dip["dipole"])),
            dict(zip(bec["step"].tolist(), bec["BEC"])))


@pytest.fixture(scope="module")
def socket_run(tmp_path_factory, dimer_model):
    root = tmp_path_factory.mktemp("socket")
    run = dimer_run_dir(root, dimer_model, address="wd-socket")
    prefix = f"{root}/ipi_"
    ipi = start_ipi(run, "input.xml", prefix)
    driver = subprocess.run(drive_cmd("--model", "model.npz", "--forces", TBLITE, "--structure", "init.xyz",
                                      "--pbc", "false", "--unix", "wd-socket", "--sockets-prefix", prefix),
                            cwd=run, env=ENV, capture_output=True, text=True, timeout=120)
    assert ipi.wait(timeout=60) == 0, (run / "input.xml.log").read_text()[-2000:]
    return run, driver


def test_socket_nve_conserves_energy_and_serves_model_extras(socket_run, dimer_model):
    from ase import Atoms

    from ipi_dipole import PolarizationModel

    run, driver = socket_run
    assert driver.returncode == 0, driver.stderr
    assert "i-PI sent EXIT" in driver.stderr
    props, pos, dip, bec = read_run(run, "nve")
    assert len(props["step"]) == STEPS + 1 and len(dip) == STEPS + 1 and len(bec) == STEPS // 4 + 1

    conserved, kinetic = props["conserved"], props["kinetic_md"]
    scale = kinetic.mean()
    drift = abs(conserved[-50:].mean() - conserved[:50].mean())
    assert drift < 1e-4 * scale, (drift, scale)
    # Verlet's bounded fluctuation; wrong force or energy units would make it O(scale)
    assert conserved.std() < 5e-3 * scale

    model = PolarizationModel.load(dimer_model)
    for step, (symbols, x) in pos.items():
        m, z = model.predict(Atoms(symbols, positions=x))
        np.testing.assert_allclose(dip[step], m * units.BOHR_PER_ANGSTROM, atol=1e-7)
        np.testing.assert_allclose(units.bec_from_ipi(bec[step]), z, atol=1e-7)

    # BEC layout, independently of the model's own Z: row 3i+b, column a = dM_a/dx_ib by
    # central differences of the dipole the model predicts
    symbols, x = pos[max(pos)]
    h = 1e-4
    b_ipi = np.asarray(bec[max(pos)])
    for i, b in [(0, 0), (2, 1), (4, 2)]:
        xp, xm = x.copy(), x.copy()
        xp[i, b] += h
        xm[i, b] -= h
        m_plus, m_minus = (model.predict(Atoms(symbols, positions=p))[0] for p in (xp, xm))
        dmdx = (m_plus - m_minus) / (2 * h)
        np.testing.assert_allclose(b_ipi[3 * i + b], dmdx, atol=1e-6)


def test_ffdirect_and_py_driver_and_ffmpi_give_the_same_numbers(socket_run, tmp_path, dimer_model):
    run_socket, _ = socket_run
    ref_props, _, ref_dip, ref_bec = read_run(run_socket, "nve")

    # in-process <ffdirect>, the same input otherwise (same seed, same thermal velocities)
    run = dimer_run_dir(tmp_path, dimer_model, steps=STEPS)
    subprocess.run([str(BIN / "i-pi"), "input-ffdirect.xml"], cwd=run, env=ENV, check=True,
                   capture_output=True, timeout=120)
    props, _, dip, bec = read_run(run, "nve-direct")
    np.testing.assert_allclose(props["conserved"], ref_props["conserved"], rtol=1e-12)
    for got, ref in ((dip, ref_dip), (bec, ref_bec)):
        assert sorted(got) == sorted(ref)
        np.testing.assert_allclose(np.array([got[s] for s in sorted(got)]),
                                   np.array([ref[s] for s in sorted(ref)]), atol=1e-12)

    # the same PES file under i-PI's own python driver (socket) and under <ffmpi> (MPI)
    short = 20
    params = f"model=model.npz,forces={TBLITE},structure=init.xyz,pbc=false"
    pes_file = str(PROJECT / "driver" / "pes.py")
    for tag in ("py", "mpi"):
        sub = dimer_run_dir(tmp_path / tag, dimer_model, steps=short, address=f"wd-{tag}")
        xml = (sub / "input.xml").read_text().replace("<output prefix='nve'>", f"<output prefix='{tag}'>")
        if tag == "mpi":
            xml = re.sub(r"<ffsocket.*?</ffsocket>", "<ffmpi name='dipole' pbc='false'> </ffmpi>", xml, flags=re.S)
        (sub / "input.xml").write_text(xml)
        prefix = f"{tmp_path}/{tag}_"
        if tag == "py":
            ipi = start_ipi(sub, "input.xml", prefix)
            subprocess.run([str(BIN / "i-pi-py_driver"), "-u", "-a", f"wd-{tag}", "-S", prefix, "-m", "custom",
                            "-P", pes_file, "-o", params], cwd=sub, env=ENV, check=True, capture_output=True,
                           timeout=120)
            assert ipi.wait(timeout=60) == 0
        else:
            subprocess.run([str(BIN / "mpirun"), "-n", "1", str(BIN / "i-pi"), "input.xml", ":", "-n", "1",
                            str(BIN / "i-pi-py_driver"), "--mpi", "-m", "custom", "-P", pes_file, "-o", params],
                           cwd=sub, env=ENV, check=True, capture_output=True, timeout=120)
        props, _, dip, _ = read_run(sub, tag)
        np.testing.assert_allclose(props["conserved"], ref_props["conserved"][: short + 1], rtol=1e-12)
        np.testing.assert_allclose(np.array([dip[s] for s in range(short + 1)]),
                                   np.array([ref_dip[s] for s in range(short + 1)]), atol=1e-12)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_driver_exits_without_spinning_when_ipi_is_killed(tmp_path, dimer_model):
    run = dimer_run_dir(tmp_path, dimer_model, steps=1000000, address="wd-kill")
    prefix = f"{tmp_path}/ipi_"
    ipi = start_ipi(run, "input.xml", prefix)
    driver = subprocess.Popen(drive_cmd("--model", "model.npz", "--forces", TBLITE, "--structure", "init.xyz",
                                        "--pbc", "false", "--unix", "wd-kill", "--sockets-prefix", prefix,
                                        "--reconnect-wait", "1"),
                              cwd=run, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out = run / "nve.out"
        wait_for(lambda: out.exists() and len(out.read_text().splitlines()) > 30, 60, "i-PI to run 20 steps")
        cpu_before = _cpu_seconds(driver.pid)
        ipi.send_signal(signal.SIGKILL)
        ipi.wait(timeout=10)
        t0 = time.monotonic()
        # reap with wait4 to get the driver's own CPU time
        while True:
            pid, status, usage = os.wait4(driver.pid, os.WNOHANG)
            if pid:
                break
            assert time.monotonic() - t0 < 5.0, "driver still alive 5 s after i-PI was killed"
            time.sleep(0.02)
        elapsed = time.monotonic() - t0
        driver.returncode = os.waitstatus_to_exitcode(status)
        cpu_after = usage.ru_utime + usage.ru_stime
        stderr = driver.stderr.read()
    finally:
        for p in (ipi, driver):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert driver.returncode == 1, stderr
    assert "lost i-PI" in stderr and "did not come back" in stderr
    assert elapsed < 3.0
    # waiting 1 s for a restarted i-PI and exiting costs a few tens of ms, not a spinning core
    assert cpu_after - cpu_before < 0.3 * elapsed + 0.2, (cpu_after - cpu_before, elapsed)


def test_driver_reconnects_to_a_restarted_ipi(tmp_path, dimer_model):
    run = dimer_run_dir(tmp_path, dimer_model, steps=1000000, address="wd-again")
    prefix = f"{tmp_path}/ipi_"
    ipi = start_ipi(run, "input.xml", prefix)
    driver = subprocess.Popen(drive_cmd("--model", "model.npz", "--forces", TBLITE, "--structure", "init.xyz",
                                        "--pbc", "false", "--unix", "wd-again", "--sockets-prefix", prefix,
                                        "--reconnect-wait", "30"),
                              cwd=run, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out = run / "nve.out"
        wait_for(lambda: out.exists() and len(out.read_text().splitlines()) > 20, 60, "i-PI to run")
        ipi.send_signal(signal.SIGKILL)
        ipi.wait(timeout=10)
        Path(prefix + "wd-again").unlink()  # a killed i-PI leaves its socket file behind
        xml = (run / "input.xml").read_text()
        xml = re.sub(r"<total_steps>\s*\d+\s*</total_steps>", "<total_steps> 10 </total_steps>", xml)
        (run / "second.xml").write_text(xml.replace("<output prefix='nve'>", "<output prefix='second'>"))
        time.sleep(0.5)
        ipi = start_ipi(run, "second.xml", prefix)
        assert ipi.wait(timeout=60) == 0
        _, stderr = driver.communicate(timeout=30)
    finally:
        for p in (ipi, driver):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert driver.returncode == 0, stderr
    assert "reconnected to i-PI" in stderr
    assert len((run / "second.out").read_text().splitlines()) > 10


def test_mismatches_are_reported_in_one_line(tmp_path, dimer_model):
    run = dimer_run_dir(tmp_path, dimer_model, steps=10, address="wd-bad")
    # species the model does not know: reported before connecting
    bad = subprocess.run(drive_cmd("--model", "model.npz", "--species", "Na,Cl,Na,Cl,Na,Cl", "--unix", "nowhere",
                                   "--forces", "none"), cwd=run, env=ENV, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "species mismatch" in bad.stderr
    assert "Na, Cl" in bad.stderr or "Cl, Na" in bad.stderr

    # a structure with fewer atoms than i-PI's: reported at the first request
    (run / "monomer.xyz").write_text("3\nwater\nO 0 0 0\nH 0.95 0 0\nH 0 0.95 0\n")
    prefix = f"{tmp_path}/ipi_"
    ipi = start_ipi(run, "input.xml", prefix)
    try:
        bad = subprocess.run(drive_cmd("--model", "model.npz", "--forces", "none", "--structure", "monomer.xyz",
                                       "--unix", "wd-bad", "--sockets-prefix", prefix, "--pbc", "false"),
                             cwd=run, env=ENV, capture_output=True, text=True, timeout=60)
    finally:
        ipi.kill()
        ipi.wait()
    assert bad.returncode == 2
    last = bad.stderr.strip().splitlines()[-1]
    assert "Traceback" not in bad.stderr
    assert "atom count mismatch: i-PI sent 6 atoms but monomer.xyz has 3" in last


def test_extras_of_a_periodic_triclinic_cell(dimer_model):
    """i-PI's cell (columns, bohr, a non-symmetric matrix) reaches the model as ASE's cell
    (rows, Angstrom): the extras equal the model's own prediction for the periodic cell,
    which differs from the isolated molecules' (images within the cutoff)."""
    from ase import Atoms

    from ipi_dipole import PolarizationModel
    from ipi_dipole.driver.pes import DipolePES
    from ipi_dipole.structures import water_dimer

    cell = np.array([[6.5, 0.0, 0.0], [1.2, 6.0, 0.0], [-0.8, 0.9, 6.8]])
    atoms = Atoms(water_dimer().get_chemical_symbols(), positions=water_dimer().positions + 2.0,
                  cell=cell, pbc=True)
    pes = DipolePES(model=str(dimer_model), forces="none", species="O H H O H H")
    ipi_cell = cell.T * units.BOHR_PER_ANGSTROM
    assert np.abs(ipi_cell - ipi_cell.T).max() > 1.0
    pot, force, vir, extras = pes(ipi_cell, atoms.positions * units.BOHR_PER_ANGSTROM)
    assert pot == 0.0 and not force.any() and not vir.any()
    extras = json.loads(extras)
    model = PolarizationModel.load(dimer_model)
    m, z = model.predict(atoms)
    np.testing.assert_allclose(extras["dipole"], m * units.BOHR_PER_ANGSTROM, atol=1e-10)
    np.testing.assert_allclose(units.bec_from_ipi(extras["BEC"]), z, atol=1e-10)
    isolated = atoms.copy()
    isolated.pbc = False
    isolated.cell = np.zeros((3, 3))
    assert np.abs(model.predict(isolated)[1] - z).max() > 1e-3
    wrong = atoms.copy()
    wrong.cell = cell.T  # the transposed cell must give other numbers
    assert np.abs(model.predict(wrong)[1] - z).max() > 1e-3


def test_the_model_runs_on_one_numba_thread_in_ipis_worker_thread(dimer_model, monkeypatch):
    """numba's thread count is per thread; i-PI's <ffdirect> calls the PES from a worker
    thread, where numba would otherwise use every core (and oversubscribe replicas)."""
    from concurrent.futures import ThreadPoolExecutor

    import numba

    from ipi_dipole.driver.pes import DipolePES
    from ipi_dipole.structures import water_dimer

    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    pes = DipolePES(model=str(dimer_model), forces="none", species="O H H O H H", pbc="false")
    cell = np.eye(3) * 20 * units.BOHR_PER_ANGSTROM
    positions = water_dimer().positions * units.BOHR_PER_ANGSTROM

    def call():
        pes(cell, positions)
        return numba.get_num_threads()

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(call).result() == 1
