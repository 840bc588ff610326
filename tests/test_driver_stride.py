"""The driver evaluates the model only where i-PI writes the extras (--ipi-input / --stride).

Real i-PI, real driver, unix socket, tblite forces for the water dimer: a strided run
writes the same dipoles and Born charges as the model gives at the written positions;
a restart from i-PI's RESTART at a step that is not a multiple of the strides continues
on the right phase (a wrong phase would make i-PI stop at the first frame it cannot
write); a driver stride that would miss frames of the input is refused before any step.
"""

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ipi_dipole.driver.schedule import ExtrasSchedule
from ipi_dipole.errors import InputError
from ipi_dipole.ipi_io import units

from test_driver_ipi import ENV, TBLITE, dimer_run_dir, drive_cmd, read_run, start_ipi

PROJECT = Path(__file__).resolve().parents[1]

STEPS = 23  # not a multiple of the strides, so that the restart starts off-phase


def strided_xml(run: Path, steps: int, dipole_stride: int = 2, bec_stride: int = 4) -> None:
    xml = (run / "input.xml").read_text()
    xml = re.sub(r"<total_steps>\s*\d+\s*</total_steps>", f"<total_steps> {steps} </total_steps>", xml)
    xml = xml.replace("filename='dipole' stride='1'", f"filename='dipole' stride='{dipole_stride}'")
    xml = xml.replace("filename='bec' stride='4'", f"filename='bec' stride='{bec_stride}'")
    (run / "input.xml").write_text(xml)


def run_pair(run: Path, target: str, address: str, prefix: str, *driver_args, timeout=120):
    ipi = start_ipi(run, target, prefix)
    try:
        driver = subprocess.run(drive_cmd("--model", "model.npz", "--forces", TBLITE, "--structure", "init.xyz",
                                          "--pbc", "false", "--unix", address, "--sockets-prefix", prefix,
                                          "--reconnect-wait", "0", *driver_args),
                                cwd=run, env=ENV, capture_output=True, text=True, timeout=timeout)
        # a driver that refused to start leaves i-PI waiting for a client
        status = ipi.wait(timeout=60 if driver.returncode == 0 else 2)
    finally:
        if ipi.poll() is None:
            ipi.kill()
            ipi.wait()
    return status, driver


@pytest.fixture(scope="module")
def strided_run(tmp_path_factory, dimer_model):
    root = tmp_path_factory.mktemp("stride")
    run = dimer_run_dir(root, dimer_model, steps=STEPS, address="wd-stride")
    strided_xml(run, STEPS)
    prefix = f"{root}/ipi_"
    status, driver = run_pair(run, "input.xml", "wd-stride", prefix, "--ipi-input", "input.xml")
    assert status == 0, (run / "input.xml.log").read_text()[-2000:] + driver.stderr
    return run, prefix, driver


def test_strided_run_writes_the_models_extras_and_skips_the_rest(strided_run, dimer_model):
    from ase import Atoms

    from ipi_dipole import PolarizationModel

    run, _, driver = strided_run
    assert driver.returncode == 0, driver.stderr
    assert "dipole every 2 steps, BEC every 4 steps" in driver.stderr
    # STEPS + 1 requests (the start and one per step); the model at steps 0, 2, ..., 22
    assert re.search(rf"{STEPS + 1} evaluations: .*model evaluated at {STEPS // 2 + 1} of them", driver.stderr)
    _, pos, dip, bec = read_run(run, "nve")
    assert sorted(dip) == list(range(0, STEPS + 1, 2)) and sorted(bec) == list(range(0, STEPS + 1, 4))
    model = PolarizationModel.load(run / "model.npz")
    for step in range(0, STEPS + 1, 4):  # positions are written every 4 steps
        symbols, x = pos[step]
        m, z = model.predict(Atoms(symbols, positions=x))
        np.testing.assert_allclose(units.dipole_from_ipi(dip[step]), m, atol=1e-6)
        np.testing.assert_allclose(units.bec_from_ipi(bec[step]), z, atol=1e-6)


def test_restart_off_phase_continues_on_the_right_steps(strided_run, tmp_path, dimer_model):
    run, prefix, _ = strided_run
    restart = (run / "RESTART").read_text()
    assert re.search(rf"<step>\s*{STEPS}\s*</step>", restart), "i-PI's RESTART is not at the last step"
    (run / "RESTART").write_text(re.sub(r"<total_steps>\s*\d+\s*</total_steps>",
                                        "<total_steps> 40 </total_steps>", restart))
    status, driver = run_pair(run, "RESTART", "wd-stride", prefix, "--ipi-input", "RESTART")
    assert status == 0, (run / "RESTART.log").read_text()[-2000:] + driver.stderr
    assert f"from step {STEPS}" in driver.stderr
    _, _, dip, bec = read_run(run, "nve")
    assert sorted(dip) == list(range(0, 41, 2)) and sorted(bec) == list(range(0, 41, 4))

    # the same 40 steps in one go, the model at every step: the same numbers
    ref = dimer_run_dir(tmp_path, dimer_model, steps=40, address="wd-ref")
    strided_xml(ref, 40)
    assert run_pair(ref, "input.xml", "wd-ref", f"{tmp_path}/ipi_")[0] == 0
    _, _, ref_dip, ref_bec = read_run(ref, "nve")
    for got, want in ((dip, ref_dip), (bec, ref_bec)):
        assert sorted(got) == sorted(want)
        for step in want:
            np.testing.assert_allclose(got[step], want[step], atol=1e-6)


def test_a_stride_that_misses_frames_is_refused_before_connecting(strided_run):
    run, prefix, _ = strided_run
    driver = subprocess.run(drive_cmd("--model", "model.npz", "--forces", TBLITE, "--structure", "init.xyz",
                                      "--pbc", "false", "--unix", "nobody", "--sockets-prefix", prefix,
                                      "--connect-timeout", "0", "--ipi-input", "input.xml", "--stride", "4"),
                            cwd=run, env=ENV, capture_output=True, text=True, timeout=60)
    assert driver.returncode != 0
    assert "input.xml writes the dipole every 2 steps but the driver computes it every 4 steps" in driver.stderr
    assert "Traceback" not in driver.stderr


def _xml(tmp_path, body, name="in.xml"):
    path = tmp_path / name
    path.write_text(f"<simulation>{body}</simulation>")
    return path


OUT = """<output prefix='x'>
  <trajectory filename='d' stride='{d}' extra_type='dipole'> extras </trajectory>
  <trajectory filename='b' stride='{b}' extra_type='BEC'> extras </trajectory>
</output>"""
SYSTEM = "<system><initialize nbeads='{nbeads}'/><forces><force forcefield='f'/></forces>{motion}</system>"


def test_schedule_from_inputs_and_checkpoints(tmp_path):
    path = _xml(tmp_path, OUT.format(d=1, b=8) + SYSTEM.format(nbeads=1, motion=""))
    s = ExtrasSchedule.from_ipi_input(path)
    assert [s.wants(n) for n in range(9)] == [(True, True)] + [(True, False)] * 7 + [(True, True)]
    # a checkpoint at step 13: request 0 is step 13, the next BEC at step 16 (request 3)
    path = _xml(tmp_path, "<step> 13 </step>" + OUT.format(d=2, b=8) + SYSTEM.format(nbeads=1, motion=""))
    s = ExtrasSchedule.from_ipi_input(path)
    assert [s.wants(n) for n in range(4)] == [(False, False), (True, False), (False, False), (True, True)]
    # raw extras: everything at that stride
    raw = "<output><trajectory filename='r' stride='3'> extras </trajectory></output>"
    s = ExtrasSchedule.from_ipi_input(_xml(tmp_path, raw + SYSTEM.format(nbeads=1, motion="")))
    assert s.strides == {"dipole": [3], "BEC": [3]}
    # no extras written: the model is never needed
    s = ExtrasSchedule.from_ipi_input(_xml(tmp_path, "<output/>" + SYSTEM.format(nbeads=1, motion="")))
    assert s.wants(0) == (False, False)


@pytest.mark.parametrize("system, why", [
    (SYSTEM.format(nbeads=4, motion=""), "it has 4 beads"),
    # a checkpoint keeps its beads in <beads>, not <initialize>
    ("<system><beads nbeads='4' natoms='1'/><forces><force forcefield='f'/></forces></system>", "it has 4 beads"),
    (SYSTEM.format(nbeads=1, motion="<motion mode='minimize'/>"), "its motion is 'minimize'"),
    (SYSTEM.format(nbeads=1, motion="<motion mode='dynamics'><dynamics><nmts>[1, 4]</nmts></dynamics></motion>"),
     "multiple time stepping"),
    (SYSTEM.format(nbeads=1, motion="") * 2, "several systems"),
    ("<system><forces><force forcefield='f'/><force forcefield='f'/></forces></system>",
     "forcefield 'f' serves several force components"),
])
def test_strides_refused_where_requests_are_not_one_per_step(tmp_path, system, why):
    path = _xml(tmp_path, OUT.format(d=1, b=4) + system)
    with pytest.raises(InputError, match=why):
        ExtrasSchedule.from_ipi_input(path)
    # extras every step need no counting: accepted whatever the set-up
    ExtrasSchedule.from_ipi_input(_xml(tmp_path, OUT.format(d=1, b=1) + system, "every.xml"))


def test_driver_stride_checked_against_the_input(tmp_path):
    needed = ExtrasSchedule.from_ipi_input(_xml(tmp_path, OUT.format(d=4, b=8) + SYSTEM.format(nbeads=1, motion="")))
    ExtrasSchedule.every(2, 8).check_covers(needed)
    ExtrasSchedule.every(4).check_covers(needed)
    with pytest.raises(InputError, match=r"writes the BEC every 8 steps but the driver computes it every 3"):
        ExtrasSchedule.every(4, 3).check_covers(needed)
    with pytest.raises(InputError, match=r"writes the BEC every 8 steps but the driver computes it never"):
        ExtrasSchedule.every(4, bec=False).check_covers(needed)
    with pytest.raises(InputError, match="stride=0"):
        ExtrasSchedule.every(0)
    with pytest.raises(InputError, match="no such i-PI input"):
        ExtrasSchedule.from_ipi_input(tmp_path / "missing.xml")


def test_other_forcefields_beside_the_drivers_keep_one_request_per_step(tmp_path):
    """LAMMPS's fix ipi for the forces beside the extras-only driver (liquid-water/nve-fixipi.xml)."""
    two = "<system><forces><force forcefield='lmp'/><force forcefield='dipole'/></forces></system>"
    assert ExtrasSchedule.from_ipi_input(_xml(tmp_path, OUT.format(d=8, b=8) + two)).strides["BEC"] == [8]
    shipped = PROJECT / "inputs" / "liquid-water" / "nve-fixipi.xml"
    if shipped.exists():
        assert ExtrasSchedule.from_ipi_input(shipped).strides == {"dipole": [8], "BEC": [8]}


def test_ipi_input_auto_reads_the_ipi_command_line():
    from ipi_dipole.driver.pes import input_of_this_ipi

    assert input_of_this_ipi(["/venv/bin/i-pi", "RESTART"]) == "RESTART"
    assert input_of_this_ipi(["i-pi", "-S", "/tmp/x_", "-V", "low", "nve.xml"]) == "nve.xml"
    with pytest.raises(InputError, match="only inside i-PI"):
        input_of_this_ipi(["ipi-dipole", "drive"])
    with pytest.raises(InputError, match="no input file"):
        input_of_this_ipi(["i-pi", "-S", "/tmp/x_"])
