"""Throughput of ``ipi-dipole replicas run`` on this machine, and where the time goes.

System: the water dimer, GFN2-xTB forces (tblite) and the dipole and Born charges of a
small PolarizationModel (trained here on 8 tblite finite-field labels), served by the
ipi-dipole PES; NVE, 0.5 fs, the dipole written every step, BEC and velocities every
4 steps (the shipped ``inputs/water-dimer`` output settings).

Measured:

1. the force field alone: one call of the PES (tblite forces + model dipole and BEC +
   extras encoding), in-process, no i-PI;
2. one replica's cost per MD step inside i-PI, in-process (``<ffdirect>``) and over a
   unix socket (i-PI + ``ipi-dipole drive``): the slope of wall time between a short and
   a long run, so i-PI's start-up is left out; overhead = step - force field;
3. replica-steps per second of ``ipi-dipole replicas run`` for R replicas on 1 rank and
   under ``mpirun -n 2`` (wall time of the whole command, start-ups included), the
   parallel efficiency ``rate(2) / (2 rate(1))``, and the CPU time per replica-step of
   all the processes involved (which, unlike the wall time, hardly depends on what else
   runs on the machine: it shows what MPI and the scheduling loop cost);
4. the one-i-PI alternative: the same R systems in one i-PI (``<system_template>``) with
   an ``<ffmpi>`` force field served by 2 driver ranks (``mpirun -n 1 i-pi : -n 2
   i-pi-py_driver --mpi``), time to the last step.

    python benchmarks/replicas_throughput.py [--replicas 4] [--steps 1000]

The machine is shared: the load average is printed with the results.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

BIN = Path(sys.executable).parent
PROJECT = Path(__file__).resolve().parents[1]
DIMER = PROJECT / "inputs" / "water-dimer" / "init.xyz"
PES = importlib.util.find_spec("ipi_dipole.driver.pes").origin
ENV = dict(os.environ, OMP_NUM_THREADS="1", PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")


def sh(cmd, cwd=None, timeout=1800, cpu=False):
    """Run a command; its wall time (and, with cpu=True, the CPU seconds of it and its children)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return (wall, used) if cpu else wall


def setup(work: Path):
    import ase.io

    from ipi_dipole import PolarizationModel
    from ipi_dipole.engines import get_engine

    atoms = ase.io.read(DIMER)
    atoms.pbc, atoms.cell = False, None
    engine = get_engine("tblite", method="GFN2-xTB")
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(8):
        a = atoms.copy()
        a.positions += rng.normal(scale=0.05, size=a.positions.shape)
        frames.append(engine.label(a))
    PolarizationModel(n_ref=20, targets="bec").fit(frames).save(work / "model.npz")
    (work / "tblite.json").write_text('{"method": "GFN2-xTB", "verbosity": 0}')
    shutil.copy(DIMER, work / "init.xyz")


def ffdirect(work, bec=True):
    return (f"<ffdirect name='dipole' pbc='false'><pes>custom</pes><pes_path>{PES}</pes_path>"
            f"<parameters>{{ model: {work}/model.npz, forces: ase:tblite.ase:TBLite:{work}/tblite.json, "
            f"structure: {work}/init.xyz, pbc: false, bec: {str(bec).lower()} }}</parameters></ffdirect>")


SOCKET = "<ffsocket name='dipole' mode='unix' pbc='false'><address>ADDR</address><latency>1e-4</latency></ffsocket>"


def outputs(prefix):
    return f"""<output prefix='{prefix}'>
    <properties stride='1' filename='out'> [ step, time{{femtosecond}}, conserved{{electronvolt}}, temperature{{kelvin}} ] </properties>
    <trajectory filename='pos' stride='4' format='xyz'> positions{{angstrom}} </trajectory>
    <trajectory filename='vel' stride='4' format='xyz'> velocities </trajectory>
    <trajectory filename='dipole' stride='1' extra_type='dipole'> extras </trajectory>
    <trajectory filename='bec' stride='4' extra_type='BEC'> extras </trajectory>
  </output>"""


def nve_input(work, steps, forcefield, prefix="nve", init=None, velocities="<velocities mode='thermal' units='kelvin'>300</velocities>"):
    init = init or f"{work}/init.xyz"
    return f"""<simulation verbosity='low'>
  {outputs(prefix)}
  <total_steps>{steps}</total_steps>
  <prng><seed>7</seed></prng>
  {forcefield}
  <system>
    <initialize nbeads='1'><file mode='xyz'>{init}</file>{velocities}</initialize>
    <forces><force forcefield='dipole'/></forces>
    <motion mode='dynamics'><dynamics mode='nve'><timestep units='femtosecond'>0.5</timestep></dynamics></motion>
  </system>
</simulation>
"""


def time_force_field(work, calls=400):
    """Seconds per PES call in-process (forces + model + extras)."""
    import ase.io

    from ipi_dipole.driver.pes import DipolePES

    pes = DipolePES(model=str(work / "model.npz"), forces=f"ase:tblite.ase:TBLite:{work}/tblite.json",
                    structure=str(work / "init.xyz"), pbc="false")
    atoms = ase.io.read(DIMER)
    bohr = 1.8897261254578281
    cell = np.eye(3) * 20 * bohr
    rng = np.random.default_rng(1)
    pos = [(atoms.positions + rng.normal(scale=0.02, size=atoms.positions.shape)) * bohr for _ in range(calls)]
    for p in pos[:20]:
        pes.compute_structure(cell, p)
    t = time.perf_counter()
    for p in pos:
        pes.compute_structure(cell, p)
    return (time.perf_counter() - t) / calls


def time_ipi_step(work, mode, short=200, long=1200):
    """Seconds per MD step of one i-PI run (slope between two run lengths), and start-up seconds."""
    times = []
    for steps in (short, long):
        d = work / f"step_{mode}_{steps}"
        d.mkdir(exist_ok=True)
        if mode == "direct":
            (d / "in.xml").write_text(nve_input(work, steps, ffdirect(work)))
            times.append(sh([sys.executable, str(BIN / "i-pi"), "in.xml"], cwd=d))
        else:
            addr = f"bench{os.getpid()}_{steps}"
            (d / "in.xml").write_text(nve_input(work, steps, SOCKET.replace("ADDR", addr)))
            t = time.perf_counter()
            ipi = subprocess.Popen([sys.executable, str(BIN / "i-pi"), "in.xml"], cwd=d, env=ENV,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            drv = subprocess.Popen([str(BIN / "ipi-dipole"), "drive", "--model", str(work / "model.npz"),
                                    "--forces", f"ase:tblite.ase:TBLite:{work}/tblite.json",
                                    "--structure", str(work / "init.xyz"), "--pbc", "false", "--unix", addr],
                                   cwd=d, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            ipi.wait()
            drv.wait(timeout=60)
            times.append(time.perf_counter() - t)
    per_step = (times[1] - times[0]) / (long - short)
    return per_step, times[0] - short * per_step


def prepare_run(work, name, replicas, steps):
    nvt = work / "nvt"
    if not (nvt / "nvt.pos_0.xyz").exists():
        nvt.mkdir(exist_ok=True)
        text = nve_input(work, 1000, ffdirect(work), prefix="nvt")
        text = text.replace("<dynamics mode='nve'><timestep units='femtosecond'>0.5</timestep></dynamics>",
                            "<dynamics mode='nvt'><timestep units='femtosecond'>0.5</timestep>"
                            "<thermostat mode='svr'><tau units='femtosecond'>10</tau></thermostat></dynamics>")
        text = text.replace("</system>", "<ensemble><temperature units='kelvin'>300</temperature></ensemble></system>")
        (nvt / "nvt.xml").write_text(text)
        sh([sys.executable, str(BIN / "i-pi"), "nvt.xml"], cwd=nvt)
    (work / "nve.xml").write_text(nve_input(work, steps, ffdirect(work)))
    run = work / name
    sh([str(BIN / "ipi-dipole"), "replicas", "prepare", str(nvt / "nvt.pos_0.xyz"), "--n", str(replicas),
        "--template", str(work / "nve.xml"), "-o", str(run), "--min-separation-ps", "0.05", "--seed", "1",
        "--checkpoint-stride", str(max(1, steps // 4)), "--force"])
    return run


def time_replicas(work, replicas, steps, ranks):
    run = prepare_run(work, f"run_{ranks}", replicas, steps)
    cmd = [str(BIN / "ipi-dipole"), "replicas", "run", str(run), "--progress", "none"]
    if ranks > 1:
        cmd = [str(BIN / "mpirun"), "-n", str(ranks)] + cmd
    return sh(cmd, cpu=True)


def time_one_ipi(work, replicas, steps, drivers=2):
    """R systems in one i-PI with <ffmpi> and `drivers` driver ranks: seconds to the last step."""
    d = work / "one_ipi"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    instances = "\n".join(f"    <instance> [ {i} ] </instance>" for i in range(replicas))
    (d / "in.xml").write_text(f"""<simulation verbosity='low' threading='true'>
  {outputs('all')}
  <total_steps>{steps}</total_steps>
  <prng><seed>1</seed></prng>
  <ffmpi name='dipole' pbc='false'/>
  <system_template>
    <labels> [ IDX ] </labels>
{instances}
    <template>
      <system prefix='rIDX'>
        <initialize nbeads='1'><file mode='xyz'>{work}/init.xyz</file>
          <velocities mode='thermal' units='kelvin'>300</velocities></initialize>
        <forces><force forcefield='dipole'/></forces>
        <motion mode='dynamics'><dynamics mode='nve'><timestep units='femtosecond'>0.5</timestep></dynamics></motion>
      </system>
    </template>
  </system_template>
</simulation>
""")
    cmd = [str(BIN / "mpirun"), "-n", "1", sys.executable, str(BIN / "i-pi"), "in.xml", ":", "-n", str(drivers),
           sys.executable, str(BIN / "i-pi-py_driver"), "--mpi", "-m", "custom", "-P", PES, "-o",
           f"model={work}/model.npz,forces=ase:tblite.ase:TBLite:{work}/tblite.json,"
           f"structure={work}/init.xyz,pbc=false"]
    t = time.perf_counter()
    job = subprocess.Popen(cmd, cwd=d, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    last = [d / f"r{i}_all.out" for i in range(replicas)]
    while time.perf_counter() - t < 1800:
        if all(p.exists() and _last_step(p) >= steps for p in last):
            break
        if job.poll() is not None:
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - t
    try:
        job.wait(timeout=30)
    except subprocess.TimeoutExpired:  # i-PI 3.3's ffmpi does not always shut its drivers down
        os.killpg(job.pid, 9)
        job.wait()
    if not all(p.exists() and _last_step(p) >= steps for p in last):
        raise RuntimeError(f"one-i-PI run did not finish: see {d}")
    return elapsed


def _last_step(path):
    lines = [l for l in path.read_text().splitlines() if l.strip() and not l.startswith("#")]
    return int(float(lines[-1].split()[0])) if lines else -1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--replicas", type=int, default=4)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--keep", help="work directory to keep (default: a temporary one)")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="replicas_bench_")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    setup(work)

    t_ff = time_force_field(work)
    step_direct, start_direct = time_ipi_step(work, "direct")
    step_socket, start_socket = time_ipi_step(work, "socket")
    rs = args.replicas * args.steps
    timed = {k: time_replicas(work, args.replicas, args.steps, k) for k in (1, 2)}
    wall = {k: v[0] for k, v in timed.items()}
    cpu = {k: v[1] for k, v in timed.items()}
    one = time_one_ipi(work, args.replicas, args.steps)

    load = os.getloadavg()
    print(f"\nwater dimer, {args.replicas} replicas x {args.steps} NVE steps; load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores\n")
    print("| quantity | value |")
    print("|---|---|")
    print(f"| force field alone (PES call: tblite forces + model dipole/BEC) | {t_ff * 1e3:.2f} ms |")
    print(f"| one i-PI step, `<ffdirect>` | {step_direct * 1e3:.2f} ms (overhead {1e3 * (step_direct - t_ff):.2f} ms, "
          f"{100 * (step_direct - t_ff) / step_direct:.0f} % of the step); start-up {start_direct:.1f} s |")
    print(f"| one i-PI step, unix socket + `ipi-dipole drive` | {step_socket * 1e3:.2f} ms (overhead "
          f"{1e3 * (step_socket - t_ff):.2f} ms, {100 * (step_socket - t_ff) / step_socket:.0f} %); "
          f"start-up {start_socket:.1f} s |")
    print(f"| `replicas run`, 1 rank | {rs / wall[1]:.0f} replica-steps/s ({wall[1]:.1f} s wall, "
          f"{1e3 * cpu[1] / rs:.2f} CPU ms per replica-step) |")
    print(f"| `mpirun -n 2 replicas run` | {rs / wall[2]:.0f} replica-steps/s ({wall[2]:.1f} s wall, "
          f"{1e3 * cpu[2] / rs:.2f} CPU ms per replica-step) |")
    print(f"| parallel efficiency, 2 ranks | {wall[1] / (2 * wall[2]):.2f} |")
    print(f"| one i-PI, `<system_template>` + `<ffmpi>`, 2 driver ranks | {rs / one:.0f} replica-steps/s "
          f"({one:.1f} s to the last step) |")
    print(f"\nwork directory: {work}")


if __name__ == "__main__":
    main()
