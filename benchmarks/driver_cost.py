"""Cost per MD step of the i-PI driver: forces, dipole model, extras, and i-PI's output.

For three systems (the inputs/ directories: gas-phase water dimer with tblite GFN2-xTB
forces, 128 q-TIP4P/F water molecules and 64-atom rock-salt NaCl with LAMMPS forces),
i-PI runs in this process (``ipi.scripting.InteractiveSimulation``, the driver's PES as an
``<ffdirect>`` forcefield) and the wall time per step is measured after a warm-up; the
variants below run side by side, taking turns in blocks of steps, and each counts its
fastest block (on a shared machine other processes only ever slow a block down):

- ``i-PI alone``: a zero-force PES (i-PI's ``dummy``), properties written every step;
- ``forces``: the driver with the force back-end only;
- ``+ dipole``: the model's extras, only the dipole sent and written (every step);
- ``+ BEC/S``: dipole every step, Born charges and velocities every S steps, the model
  evaluated at every step (the inputs before the driver learnt strides);
- ``+ BEC/1``: Born charges and velocities every step;
- ``shipped``: dipole, Born charges and velocities every S steps (the shipped bulk
  inputs) with ``ipi_input`` given, so that the driver evaluates the model only at the
  written steps; its ratio to ``forces`` is what an IR run costs over the plain MD.

For the dimer, the shipped set-up is also timed over a unix socket (``ipi-dipole drive``
as a separate process). Table 2 splits the driver's own time per call (force back-end,
model, JSON encoding of the extras) and gives the force field's own cost per MD step
(LAMMPS ``run`` with ``fix nve``, energy and virial at every step as i-PI needs them)
for comparison.

Models: the dimer's is fitted to 30 tblite-labelled rattled dimers; the liquid's to the
Schienbein liquid-water set (``../shared/fixtures``, 10 frames, default settings) when the
fixtures are there, else to the dimer data (same cost per atom, meaningless values);
NaCl's to the rigid-ion Born charges of ``inputs/nacl/make_nacl.py``.

    python benchmarks/driver_cost.py [--quick] [--system liquid ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
INPUTS = PROJECT / "inputs"
sys.path.insert(0, str(HERE))

XML = """<simulation verbosity='quiet' safe_stride='100000'>
  <output prefix='b'>
    <properties stride='1' filename='out'> [ step, time, conserved, temperature, potential ] </properties>
    {trajectories}
  </output>
  <total_steps> 100000000 </total_steps>
  <prng><seed> 12345 </seed></prng>
  <ffdirect name='ff' pbc='false'>
    <pes> {pes} </pes>
    {pes_path}
    <parameters> {parameters} </parameters>
  </ffdirect>
  {socket}
  <system>
    <initialize nbeads='1'>
      <file mode='xyz'> init.xyz </file>
      <velocities mode='thermal' units='kelvin'> 300 </velocities>
    </initialize>
    <forces> <force forcefield='{forcefield}'/> </forces>
    <motion mode='dynamics'>
      <dynamics mode='nve'> <timestep units='femtosecond'> {dt} </timestep> </dynamics>
    </motion>
  </system>
</simulation>
"""


def trajectories(dipole: bool, bec_stride: int | None, dipole_stride: int = 1) -> str:
    out = []
    if dipole:
        out.append(f"<trajectory filename='dipole' stride='{dipole_stride}' extra_type='dipole'> extras </trajectory>")
    if bec_stride:
        out.append(f"<trajectory filename='bec' stride='{bec_stride}' extra_type='BEC'> extras </trajectory>")
        out.append(f"<trajectory filename='vel' stride='{bec_stride}' format='xyz'> velocities </trajectory>")
    return "\n    ".join(out)


def time_ipi(workdir: Path, xmls: dict, warmup: int, steps: int, rounds: int = 5, period: int = 1):
    """Wall seconds per MD step of in-process i-PI runs, and their ffdirect PESes.

    All runs of ``xmls`` (name -> input) live side by side and advance in turns, one
    block of ``steps // rounds`` steps each per round; a run's time is its fastest block.
    On a shared machine other processes only ever slow a block down, and taking turns
    exposes every variant to the same load. Blocks and warm-up are whole multiples of
    ``period`` (the output stride), so that every block holds the same written steps.
    """
    from ipi.scripting import InteractiveSimulation

    old = os.getcwd()
    os.chdir(workdir)
    try:
        sims = {}
        for name, xml in xmls.items():
            xml = xml.replace("<output prefix='b'>", f"<output prefix='b-{name}'>")
            # the file the driver's ipi_input names: the input this run is started from
            Path(f"b-{name}.xml").write_text(xml)
            sims[name] = InteractiveSimulation(xml)
            sims[name].run(-(-warmup // period) * period)
        block = max(period, (steps // rounds) // period * period)
        best = {name: np.inf for name in sims}
        for _ in range(rounds):
            for name, sim in sims.items():
                t0 = time.perf_counter()
                sim.run(block)
                best[name] = min(best[name], (time.perf_counter() - t0) / block)
        pes = {name: next((ff.driver for ff in sim.fflist.values() if hasattr(ff, "driver")), None)
               for name, sim in sims.items()}
        return best, pes
    finally:
        os.chdir(old)


def driver_split(workdir: Path, params: dict, calls: int, blocks: int = 5):
    """The PES's own time per call (s) in force back-end, model and JSON encoding.

    A fresh PES is called directly along a straight path from the i-PI configuration of
    ``init.xyz`` (bohr), each atom moving 0.01 bohr per call (an MD step's worth); fastest
    of ``blocks`` blocks, as in :func:`time_ipi`.
    """
    from ipi.utils.io import read_file_name

    from ipi_dipole.driver.pes import DipolePES

    old = os.getcwd()
    os.chdir(workdir)
    try:
        ret = read_file_name("init.xyz")
        cell, positions = np.array(ret["cell"].h), np.array(ret["atoms"].q).reshape(-1, 3)
        pes = DipolePES(**params)
        step = np.random.default_rng(0).normal(scale=0.01 / np.sqrt(3), size=positions.shape)
        pes.compute_structure(cell, positions)
        best, k = None, 0
        for _ in range(blocks):
            pes.timings.update(forces=0.0, model=0.0, extras=0.0, calls=0)
            for _ in range(max(1, calls // blocks)):
                k += 1
                pes.compute_structure(cell, positions + k * step)
            split = {key: pes.timings[key] / pes.timings["calls"] for key in ("forces", "model", "extras")}
            if best is None or sum(split.values()) < sum(best.values()):
                best = split
        pes.close()
        return best
    finally:
        os.chdir(old)


# --------------------------------------------------------------------------- systems

def dimer_frames(n, seed=0):
    from ipi_dipole.engines.tblite_engine import TBLiteEngine
    from ipi_dipole.structures import water_dimer

    rng = np.random.default_rng(seed)
    engine = TBLiteEngine()
    frames = []
    for _ in range(n):
        atoms = water_dimer()
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        frames.append(engine.label(atoms))
    return frames


def fit(frames, path, **kw):
    from ipi_dipole import PolarizationModel

    t = time.perf_counter()
    PolarizationModel(targets="bec", **kw).fit(frames).save(path)
    return time.perf_counter() - t


def setup_dimer(work: Path):
    work.mkdir()
    for name in ("init.xyz", "tblite.json"):
        shutil.copy(INPUTS / "water-dimer" / name, work / name)
    fit(dimer_frames(30), work / "model.npz", n_ref=100)
    return dict(name="water dimer (6 atoms)", forces="ase:tblite.ase:TBLite:tblite.json", pbc="false",
                dt=0.25, stride=4, lammps_md=None, model_note="30 rattled dimers, n_ref 100")


def setup_liquid(work: Path):
    work.mkdir()
    for name in ("init.xyz", "data.lmp", "in.lammps"):
        shutil.copy(INPUTS / "liquid-water" / name, work / name)
    try:
        from _model_common import liquid_water_sets

        from ipi_dipole import data

        train, _ = liquid_water_sets()
        frames = data.load(train)
        note = "Schienbein liquid water, 10 frames, default settings"
        kw = {}
    except Exception as exc:  # no fixtures: same cost per atom, meaningless values
        print(f"(liquid-water fixtures unavailable: {exc}; using the dimer model)")
        frames, note, kw = dimer_frames(30), "water dimers (fixtures missing)", {"n_ref": 100}
    fit(frames, work / "model.npz", **kw)
    return dict(name="liquid water (384 atoms)", forces="lammps:in.lammps", pbc="auto", dt=0.5,
                stride=8, lammps_md=("in.lammps", 0.5), model_note=note)


def setup_nacl(work: Path):
    work.mkdir()
    shutil.copy(INPUTS / "nacl" / "forcefield.lammps", work / "forcefield.lammps")
    subprocess.run([sys.executable, str(INPUTS / "nacl" / "make_nacl.py"), "-o", str(work)],
                   check=True, capture_output=True)
    from ipi_dipole import data

    fit(data.load(work / "train.extxyz"), work / "model.npz", n_ref=50)
    return dict(name="NaCl (64 atoms)", forces="lammps:forcefield.lammps", pbc="auto", dt=2.0,
                stride=5, lammps_md=None, model_note="rigid-ion Z*, 20 structures, n_ref 50")


def lammps_md_step(work: Path, in_file: str, dt_fs: float, steps: int) -> float:
    """Seconds per MD step of LAMMPS itself (fix nve), with the energy and the virial
    computed at every step as i-PI needs them (fastest of five blocks)."""
    from ipi_dipole.lammps_runtime import new_lammps

    lmp = new_lammps()
    old = os.getcwd()
    os.chdir(work)
    try:
        lmp.file(in_file)
    finally:
        os.chdir(old)
    lmp.commands_string(f"velocity all create 300 1\nfix 1 all nve\ntimestep {dt_fs}\n"
                        "compute vir all pressure NULL virial\nthermo_style custom step pe c_vir[*]\n"
                        "thermo 1\nrun 20")
    best = np.inf
    block = max(1, steps // 5)
    for _ in range(5):
        t = time.perf_counter()
        lmp.command(f"run {block}")
        best = min(best, (time.perf_counter() - t) / block)
    lmp.close()
    return best


def socket_step(work: Path, system, warmup: int, steps: int) -> float:
    """Per-step wall time of i-PI with the driver as a separate process on a unix socket."""
    prefix = str(work / "s_")
    address = "bench"
    sock = (f"<ffsocket name='sock' mode='unix' pbc='false'><address> {address} </address></ffsocket>")
    xml = XML.format(trajectories=trajectories(True, system["stride"]), pes="dummy", pes_path="",
                     parameters="{}", socket=sock, forcefield="sock", dt=system["dt"])
    xml = xml.replace("<simulation ", f"<simulation sockets_prefix='{prefix}' ")
    from ipi.scripting import InteractiveSimulation

    old = os.getcwd()
    os.chdir(work)
    driver = None
    try:
        sim = InteractiveSimulation(xml)
        driver = subprocess.Popen([str(Path(sys.executable).parent / "ipi-dipole"), "drive", "--model", "model.npz",
                                   "--forces", system["forces"], "--structure", "init.xyz", "--pbc", system["pbc"],
                                   "--unix", address, "--sockets-prefix", prefix],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sim.run(warmup)
        best = np.inf
        for _ in range(5):
            t0 = time.perf_counter()
            sim.run(max(1, steps // 5))
            best = min(best, (time.perf_counter() - t0) / max(1, steps // 5))
        return best
    finally:
        os.chdir(old)
        if driver is not None:
            driver.kill()
            driver.wait()


def extras_io_cost(natoms: int, repeat: int = 50) -> dict:
    """Seconds per frame for the extras of ``natoms`` atoms: our JSON encoding, i-PI's JSON
    decoding (every step, written or not), and i-PI's writing of one BEC frame (its own
    formatting, ``%16.8e`` per number, then write, flush and fsync as i-PI does)."""
    import json

    bec = np.random.default_rng(0).normal(size=(3 * natoms, 3))
    out = {}
    t = time.perf_counter()
    for _ in range(repeat):
        text = json.dumps({"dipole": [0.1, 0.2, 0.3], "BEC": bec.tolist()})
    out["encode"] = (time.perf_counter() - t) / repeat
    t = time.perf_counter()
    for _ in range(repeat):
        np.asarray(json.loads(text)["BEC"], dtype=float)
    out["decode"] = (time.perf_counter() - t) / repeat
    with tempfile.NamedTemporaryFile("w", dir=HERE, suffix=".bec") as fh:
        t = time.perf_counter()
        for _ in range(repeat):
            fh.write("\n".join(" ".join("%16.8e" % x for x in row) for row in bec) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        out["write"] = (time.perf_counter() - t) / repeat
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (noisier)")
    parser.add_argument("--system", action="append", choices=["dimer", "liquid", "nacl"],
                        help="only these systems (repeatable; default all three)")
    args = parser.parse_args(argv)
    chosen = {"dimer": setup_dimer, "liquid": setup_liquid, "nacl": setup_nacl}
    wanted = {chosen[name] for name in (args.system or chosen)}
    scale = 0.25 if args.quick else 1.0
    pes_path = PROJECT / "driver" / "pes.py"
    rows, parts = [], []
    with tempfile.TemporaryDirectory(prefix="ipi-dipole-bench-") as tmp:
        tmp = Path(tmp)
        for setup, n_steps in ((setup_dimer, 2000), (setup_liquid, 200), (setup_nacl, 1000)):
            if setup not in wanted:
                continue
            work = tmp / setup.__name__
            system = setup(work)
            steps = max(20, int(n_steps * scale))
            warm = max(5, steps // 10)
            base = dict(structure="init.xyz", pbc=system["pbc"])

            def xml(pes="custom", model=True, bec=True, dipole=True, bec_stride=None, dipole_stride=1,
                    written_only=None):
                params = {**base, "forces": system["forces"]}
                if model:
                    params.update(model="model.npz", bec=str(bec).lower())
                if written_only:
                    params.update(ipi_input=f"b-{written_only}.xml")
                param_text = "{" + ", ".join(f"{k}: {v}" for k, v in params.items()) + "}" if pes == "custom" else "{}"
                return XML.format(trajectories=trajectories(dipole, bec_stride, dipole_stride), pes=pes,
                                  pes_path=f"<pes_path> {pes_path} </pes_path>" if pes == "custom" else "",
                                  parameters=param_text, socket="", forcefield="ff", dt=system["dt"])

            times, pes_of = time_ipi(work, {
                "alone": xml(pes="dummy", model=False, dipole=False),
                "forces": xml(model=False, dipole=False),
                "dipole": xml(bec=False),
                "stride": xml(dipole=True, bec_stride=system["stride"]),
                "every": xml(dipole=True, bec_stride=1),
                "shipped": xml(dipole=True, bec_stride=system["stride"], dipole_stride=system["stride"],
                               written_only="shipped"),
            }, warm, steps, period=system["stride"])
            t_alone, t_forces, t_dipole, t_stride, t_every, t_shipped = (
                times[k] for k in ("alone", "forces", "dipole", "stride", "every", "shipped"))
            calls = pes_of["shipped"].timings
            evaluated = f"{calls['model_calls']}/{calls['calls']}"
            for p in pes_of.values():
                if hasattr(p, "close"):
                    p.close()
            t_socket = socket_step(work, system, warm, steps) if setup is setup_dimer else None
            t_md = lammps_md_step(work, *system["lammps_md"], steps) if system["lammps_md"] else None
            split = driver_split(work, dict(base, forces=system["forces"], model="model.npz"), steps)
            ms = lambda x: "-" if x is None else f"{1e3 * x:.2f}"  # noqa: E731
            rows.append(f"| {system['name']} | {steps} | {ms(t_alone)} | {ms(t_forces)} | {ms(t_dipole)} | "
                        f"{ms(t_stride)} (S={system['stride']}) | {ms(t_every)} | {ms(t_socket)} | "
                        f"{ms(t_shipped)} ({evaluated}) | {t_stride / t_forces:.2f} | {t_shipped / t_forces:.2f} |")
            parts.append(f"| {system['name']} | {ms(split['forces'])} | {ms(t_md)} | {ms(split['model'])} | "
                         f"{ms(split['extras'])} | {system['model_note']} |")
            print(json.dumps({"system": system["name"], "alone": t_alone, "forces_step": t_forces,
                              "dipole": t_dipole, "bec_stride": t_stride, "bec_every": t_every,
                              "shipped": t_shipped, "model_evaluated": evaluated,
                              "socket": t_socket, "lammps_md": t_md, **split}), flush=True)
    print()
    print("Wall time per MD step (ms), i-PI and the driver's PES in one process (ffdirect); "
          "`socket, BEC/S`: the BEC/S set-up with `ipi-dipole drive` on a unix socket; `shipped`: "
          "everything every S steps, model evaluated only there (calls with the model / all calls); "
          "the ratios are to `forces` (target for the shipped liquid water: at most 1.5).")
    print()
    print("| system | steps | i-PI alone | forces | + dipole | + BEC/S | + BEC/1 | socket, BEC/S "
          "| shipped | BEC/S / forces | shipped / forces |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    print("The driver's time per call (ms), from the same runs, and the force field's own MD step.")
    print()
    print("| system | force back-end | LAMMPS MD step (fix nve, energy + virial every step) | model (M and Z*) "
          "| JSON extras | model trained on |")
    print("|---|---|---|---|---|---|")
    print("\n".join(parts))
    print()
    print("Extras I/O per frame (ms): JSON encoding in the driver, JSON decoding in i-PI (every "
          "step), i-PI writing one BEC frame (format + write + fsync, on this machine's disk).")
    print()
    print("| atoms | encode | decode | write BEC frame |")
    print("|---|---|---|---|")
    for n in (6, 64, 384):
        c = extras_io_cost(n)
        print(f"| {n} | {1e3 * c['encode']:.2f} | {1e3 * c['decode']:.2f} | {1e3 * c['write']:.2f} |")


if __name__ == "__main__":
    main()
