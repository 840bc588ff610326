"""The whole pipeline on the gas-phase water dimer, with tblite as the reference.

Stages (each in its own directory under the output directory, reused on a rerun):

1. ``01-sample``: Langevin MD of the dimer with GFN2-xTB forces on a 10 -> 320 K ramp
   (H mass 8 u, 1.5 fs, as in Schmiedmayer & Kresse 2024);
2. ``02-label``: GFN2-xTB energy, forces, dipole and finite-field Z* of every frame;
3. ``03-model``: the polarization model trained on Z* only, tested on held-out frames;
4. ``04-forcefield``: a POD force field trained with LAMMPS on the same labels;
5. ``05-nvt``: NVT equilibration in i-PI, forces from LAMMPS (POD) and dipole from the
   model, both served in-process by the ipi-dipole PES;
6. ``06-replicas``: N NVE replicas from uncorrelated NVT frames, spread over the MPI ranks;
7. ``07-spectrum``: the replica-averaged Green-Kubo spectrum (CSV, PNG) beside the
   GFN2-xTB harmonic frequencies of the dimer.

Every stage calls the library function behind one ``ipi-dipole`` sub-command, and prints
the command a user would type to do the same on their own data.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .stages import StageRunner


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo; ``quick()`` fits in a few minutes on 2 cores.

    Times in fs, temperatures in K.
    """

    sample_steps: int = 20000
    sample_every: int = 10
    test_fraction: float = 0.2
    n_ref: int = 300
    ff_check_runs: int = 2
    # a gas-phase dimer at 300 K dissociates within a few ps (GFN2-xTB binding energy about
    # 0.2 eV): at 150 K it stays bound for the whole run, and the bands are the dimer's
    temperature: float = 150.0
    timestep: float = 0.5
    nvt_steps: int = 40000
    replica_separation_ps: float = 2.0
    n_replicas: int = 8
    nve_steps: int = 20000
    bec_stride: int = 2
    window_cm1: float = 20.0
    seed: int = 1

    @classmethod
    def quick(cls) -> "DemoSettings":
        return cls(sample_steps=6000, ff_check_runs=0, nvt_steps=10000, replica_separation_ps=1.0,
                   n_replicas=4,
                   nve_steps=4000, window_cm1=70.0)


class DemoFailed(RuntimeError):
    """A stage of the demo failed; the message says which and where its log is."""


def _show(args: list, log=print) -> None:
    """Print the ``ipi-dipole`` command that does what the demo does next."""
    log("  $ ipi-dipole " + " ".join(shlex.quote(str(a)) for a in args))


@contextmanager
def _step(name: str):
    """Report bad input met by the library as a failed demo step (the message names the file)."""
    try:
        yield
    except InputError as exc:
        raise DemoFailed(f"'ipi-dipole {name}': {exc}") from exc


def _ipi(xml: Path, log=print) -> None:
    """Run i-PI on ``xml`` in its directory, its output going to ``ipi.log`` there."""
    from .replicas.worker import child_environment, ipi_command, tail

    logfile = xml.parent / "ipi.log"
    log(f"  $ i-pi {xml.name} > ipi.log   (in {xml.parent})")
    with open(logfile, "w") as out:
        status = subprocess.call(ipi_command() + [xml.name], cwd=xml.parent, stdout=out,
                                 stderr=subprocess.STDOUT, env=child_environment())
    if status != 0:
        raise DemoFailed(f"i-PI failed on {xml} (status {status}); last lines of {logfile}:\n{tail(logfile)}")


def _pes_path() -> str:
    from .driver import pes

    return str(Path(pes.__file__).resolve())


def ipi_input(prefix: str, init: str, *, model: Path, forcefield: Path, temperature: float,
              timestep: float, steps: int, seed: int, ensemble: str, bec_stride: int) -> str:
    """i-PI input for the dimer, PES in-process (``<ffdirect>``) with LAMMPS forces.

    ``ensemble`` is ``nvt`` (SVR thermostat, positions/velocities every 10 steps for
    picking replicas) or ``nve`` (dipole every step, BEC and velocities every
    ``bec_stride`` steps, as the Z*.v estimator needs them at the same steps).
    """
    if ensemble == "nvt":
        outputs = f"""
    <trajectory filename='pos' stride='10' format='xyz' cell_units='angstrom'> positions{{angstrom}} </trajectory>
    <trajectory filename='vel' stride='10' format='xyz'> velocities </trajectory>
    <trajectory filename='dipole' stride='10' extra_type='dipole'> extras </trajectory>"""
        dynamics = f"""<dynamics mode='nvt'>
        <timestep units='femtosecond'> {timestep} </timestep>
        <thermostat mode='svr'> <tau units='femtosecond'> 100 </tau> </thermostat>
      </dynamics>"""
        ensemble_block = f"<ensemble> <temperature units='kelvin'> {temperature} </temperature> </ensemble>"
    elif ensemble == "nve":
        outputs = f"""
    <trajectory filename='vel' stride='{bec_stride}' format='xyz'> velocities </trajectory>
    <trajectory filename='dipole' stride='1' extra_type='dipole'> extras </trajectory>
    <trajectory filename='bec' stride='{bec_stride}' extra_type='BEC'> extras </trajectory>"""
        dynamics = f"""<dynamics mode='nve'>
        <timestep units='femtosecond'> {timestep} </timestep>
      </dynamics>"""
        ensemble_block = ""
    else:
        raise ValueError(f"ensemble must be nvt or nve, got {ensemble!r}")
    return f"""<!-- ipi-dipole demo: water dimer, {ensemble.upper()} at {temperature} K, forces from the
     POD force field in LAMMPS, dipole and Born charges from the polarization model. -->
<simulation verbosity='low' safe_stride='100'>
  <output prefix='{prefix}'>
    <properties stride='10' filename='out'> [ step, time{{femtosecond}}, conserved{{electronvolt}},
      temperature{{kelvin}}, kinetic_md{{electronvolt}}, potential{{electronvolt}} ] </properties>{outputs}
    <checkpoint stride='1000'/>
  </output>
  <total_steps> {steps} </total_steps>
  <prng><seed> {seed} </seed></prng>
  <ffdirect name='dipole' pbc='false'>
    <pes> custom </pes>
    <pes_path> {_pes_path()} </pes_path>
    <parameters> {{ model: {model}, forces: lammps:{forcefield}, structure: {init}, pbc: false }} </parameters>
  </ffdirect>
  <system>
    <initialize nbeads='1'>
      <file mode='xyz'> {init} </file>
      <velocities mode='thermal' units='kelvin'> {temperature} </velocities>
    </initialize>
    <forces> <force forcefield='dipole'/> </forces>
    {ensemble_block}
    <motion mode='dynamics'>
      {dynamics}
    </motion>
  </system>
</simulation>
"""


def harmonic_frequencies(atoms, workdir: Path) -> np.ndarray:
    """GFN2-xTB harmonic wavenumbers (cm^-1, above 100) of ``atoms`` after a tight relaxation,
    computed as ``ipi-dipole harmonic`` does (:mod:`ipi_dipole.harmonic`: central differences
    of forces, rigid-body motions projected out); files in ``workdir/harmonic``."""
    from .engines import get_engine
    from .harmonic.workflow import compute_modes

    modes, _, _ = compute_modes(atoms, get_engine("tblite").calculator(), Path(workdir) / "harmonic",
                                log=lambda *a: None)
    return np.sort(modes.wavenumber_cm1[modes.wavenumber_cm1 > 100])


def _write_init(atoms, path: Path, box: float = 20.0) -> None:
    """The dimer centred in a cubic box (Angstrom), in i-PI's xyz format (i-PI insists on a cell)."""
    from .ipi_io import write_ipi_xyz

    atoms = atoms.copy()
    atoms.set_cell([box, box, box])
    atoms.center()
    write_ipi_xyz(path, atoms.get_chemical_symbols(), atoms.positions, atoms.cell.array.T,
                  "positions{angstrom}", "water dimer, gas phase (driver pbc false)")


def _split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(fraction * n)))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def run_demo(out_dir, settings: DemoSettings, force: bool = False, log=print,
             stop_before_run: bool = False) -> dict:
    """Run the whole pipeline (see the module docstring); returns the stages' summaries.

    Under ``mpirun`` every rank calls this. ASE's I/O and MD use MPI collectives when they
    find mpi4py under a launcher, which would hang with one rank working alone; so rank 0
    runs the serial stages (and later the spectrum) in a child process without the MPI
    environment, while the other ranks wait, and all ranks share the replicas.
    ``stop_before_run`` stops after preparing the replicas (what that child is asked).
    """
    comm = _world()
    if comm is None:
        return _run_serial(out_dir, settings, force, log, stop_before_run)
    rank = comm.Get_rank()
    failed = False
    if rank == 0:
        failed = _serial_child(out_dir, settings, force, stop_before_run=True) != 0
    _wait_for_all(comm)
    if comm.bcast(failed, root=0):
        raise DemoFailed("the serial stages failed (see rank 0's output above)")
    from .replicas.run import run_replicas

    run_dir = StageRunner(out_dir, log=lambda *_: None).directory("06-replicas") / "run"
    if rank == 0:
        log(f"  $ mpirun -n {comm.Get_size()} ipi-dipole replicas run {run_dir}")
    run_replicas(run_dir)
    _wait_for_all(comm)
    if rank != 0:
        return {}
    # the replicas are finished (or reported): the serial path checks them and draws the spectrum
    if _serial_child(out_dir, settings, False, stop_before_run=False) != 0:
        raise DemoFailed("the spectrum stage failed (see the output above)")
    return {p.parent.name: json.loads(p.read_text())["summary"]
            for p in sorted(Path(out_dir).resolve().glob("0*/stage.json"))}


def _serial_child(out_dir, settings: DemoSettings, force: bool, stop_before_run: bool) -> int:
    """``ipi-dipole demo`` with these settings in a child process outside the MPI job."""
    from .replicas.worker import child_environment

    command = [sys.executable, "-m", "ipi_dipole.cli", "demo", "-o", str(out_dir),
               "--settings-json", json.dumps(asdict(settings))]
    command += ["--force"] * force + ["--stop-before-replicas-run"] * stop_before_run
    return subprocess.call(command, env=child_environment())


def _run_serial(out_dir, settings: DemoSettings, force: bool, log, stop_before_run: bool) -> dict:
    # as the ipi-dipole command does: tblite, LAMMPS and the i-PI children run several
    # times slower with more threads on a few shared cores; set before tblite loads
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    runner = StageRunner(out_dir, force=force, log=log)
    s = settings
    summaries = _serial_stages(runner, s, log)
    run_dir = runner.directory("06-replicas") / "run"
    replicas = _replicas_stage(runner, s, run_dir, summaries, log, stop_before_run)
    if replicas is None:
        return summaries
    summaries["06-replicas"] = replicas
    summaries["07-spectrum"] = runner.run("07-spectrum", {"replicas": replicas, "window": s.window_cm1,
                                                          "temperature": s.temperature},
                                          lambda d: _spectrum(d, run_dir, summaries, s, log))
    return summaries


def _wait_for_all(comm, poll: float = 0.2) -> None:
    """A barrier that sleeps: MPICH's blocking calls spin, and a rank waiting for rank 0's
    serial stages would take the core that rank 0 needs."""
    import time

    request = comm.Ibarrier()
    while not request.Test():
        time.sleep(poll)


def _world():
    """MPI.COMM_WORLD when started under mpirun with several ranks, else None."""
    if not any(k.startswith(("PMI_", "OMPI_COMM_WORLD", "PMIX_")) for k in os.environ):
        return None
    from mpi4py import MPI

    return MPI.COMM_WORLD if MPI.COMM_WORLD.Get_size() > 1 else None


def _serial_stages(runner: StageRunner, s: DemoSettings, log) -> dict:
    from .structures import water_dimer

    summaries = {}

    def sample(d: Path) -> dict:
        from .engines import get_engine
        from .sampling import langevin_heating, parse_masses

        traj = d / "dimer-md.extxyz"
        _show(["sample", "water-dimer", "-o", traj, "--steps", s.sample_steps, "--mass", "H=8",
               "--timestep-fs", 1.5, "--t-start", 10, "--t-end", 320, "--every", s.sample_every,
               "--seed", s.seed, "--overwrite", "--no-progress"], log)
        with _step("sample"):
            atoms = water_dimer()
            engine = get_engine("tblite")
            engine.check(atoms, where="water-dimer")
            if traj.exists():
                traj.unlink()  # an interrupted run starts again: langevin_heating appends
            n = langevin_heating(atoms, engine.calculator(), traj, s.sample_steps, timestep_fs=1.5,
                                 t_start=10.0, t_end=320.0, masses=parse_masses(["H=8"], atoms),
                                 every=s.sample_every, seed=s.seed, progress=False)
        log(f"  {traj}: {n} frames from {s.sample_steps} steps of 1.5 fs, 10 -> 320 K, "
            f"{engine.description}, seed {s.seed}")
        return {"trajectory": str(traj)}

    summaries["01-sample"] = runner.run("01-sample", {"steps": s.sample_steps, "every": s.sample_every,
                                                      "seed": s.seed}, sample)

    def label(d: Path) -> dict:
        from .engines import get_engine
        from .engines.labelling import label_file

        out = d / "labelled.extxyz"
        _show(["label", summaries["01-sample"]["trajectory"], "-o", out, "--engine", "tblite"], log)
        with _step("label"):
            result = label_file(summaries["01-sample"]["trajectory"], out, get_engine("tblite"))
        log(f"  {result.line()}")
        if result.failed or result.failed_earlier:
            raise DemoFailed(f"labelling failed for some structures: {result.line()}")
        return {"data": str(out)}

    summaries["02-label"] = runner.run("02-label", {"input": summaries["01-sample"]}, label)

    def model(d: Path) -> dict:
        return _model_stage(d, summaries["02-label"]["data"], s, log)

    summaries["03-model"] = runner.run("03-model", {"data": summaries["02-label"], "n_ref": s.n_ref,
                                                    "test_fraction": s.test_fraction, "seed": s.seed}, model)
    m = summaries["03-model"]
    log(f"  polarization model (Z* only, {m['n_train']} training frames), on {m['n_structures']} "
        f"held-out frames: dipole RMSPE {100 * m['dipole_rmspe']:.2f} %, Z* RMSPE {100 * m['bec_rmspe']:.2f} %")

    def forcefield(d: Path) -> dict:
        from . import forcefield as ff_lib

        ff = d / "ff"
        _show(["train-forcefield", summaries["02-label"]["data"], "-o", ff, "--seed", s.seed,
               "--check-runs", s.ff_check_runs], log)
        with _step("train-forcefield"):
            report = ff_lib.train(summaries["02-label"]["data"], ff, seed=s.seed, check_runs=s.ff_check_runs)
        return {"forcefield": str(ff / "forcefield.lammps"), "test": report.get("test", {}),
                "warnings": report.get("warnings", [])}

    summaries["04-forcefield"] = runner.run("04-forcefield", {"data": summaries["02-label"],
                                                              "check_runs": s.ff_check_runs,
                                                              "seed": s.seed}, forcefield)
    log(f"  force field, held-out errors: {_ff_errors(summaries['04-forcefield'])}")
    for warning in summaries["04-forcefield"].get("warnings", []):
        log(f"  WARNING (force field): {warning}")

    def nvt(d: Path) -> dict:
        for old in d.glob("nvt.*"):
            old.unlink()  # an interrupted run restarts from scratch: it is short
        _write_init(water_dimer(), d / "init.xyz")
        xml = d / "nvt.xml"
        xml.write_text(ipi_input("nvt", "init.xyz", model=Path(summaries["03-model"]["model"]),
                                 forcefield=Path(summaries["04-forcefield"]["forcefield"]),
                                 temperature=s.temperature, timestep=s.timestep, steps=s.nvt_steps,
                                 seed=s.seed, ensemble="nvt", bec_stride=s.bec_stride))
        _ipi(xml, log)
        longest = _longest_oo_distance(d / "nvt.pos_0.xyz")
        if longest > 6.0:
            log(f"  WARNING: the dimer came apart during NVT (O-O up to {longest:.1f} A): the replicas "
                "will see two monomers; a lower --temperature keeps it bound")
        return {"trajectory": str(d / "nvt.pos_0.xyz"), "init": str(d / "init.xyz"),
                "longest_oo_A": round(longest, 2)}

    summaries["05-nvt"] = runner.run("05-nvt", {"model": summaries["03-model"],
                                                "forcefield": summaries["04-forcefield"],
                                                "steps": s.nvt_steps, "timestep": s.timestep,
                                                "temperature": s.temperature, "seed": s.seed}, nvt)
    return summaries


def _model_stage(d: Path, labelled: str, s: DemoSettings, log) -> dict:
    """Train on Z* only (``ipi-dipole train``) and test on held-out frames (``evaluate``)."""
    import warnings

    from . import data, metrics
    from .model import PolarizationModel

    structures = data.load(labelled)
    train, test = _split(len(structures), s.test_fraction, s.seed)
    train_set, test_set = [structures[i] for i in train], [structures[i] for i in test]
    data.save(d / "train.extxyz", train_set)
    data.save(d / "test.extxyz", test_set)
    _show(["train", d / "train.extxyz", "-o", d / "model.npz", "--targets", "bec",
           "--n-ref", s.n_ref, "--seed", s.seed], log)
    with _step("train"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = PolarizationModel(targets="bec", n_ref=s.n_ref, seed=s.seed).fit(train_set, progress=True)
    for w in caught:
        log(f"  warning: {w.message}")
    model.save(d / "model.npz")
    fitted = metrics.evaluate(model, train_set, where=str(d / "train.extxyz"))
    log(f"  training Z* RMSE {fitted['bec_rmse']:.6f} e, dipole RMSE {fitted['dipole_rmse']:.6f} e*A")
    _show(["evaluate", d / "model.npz", d / "test.extxyz"], log)
    # the saved model, as 'evaluate' would read it
    with _step("evaluate"):
        held_out = metrics.evaluate(PolarizationModel.load(d / "model.npz"), data.load(d / "test.extxyz"))
    return {"model": str(d / "model.npz"), "n_train": int(len(train)), **held_out}


def _longest_oo_distance(trajectory: Path) -> float:
    """The largest distance (Angstrom) between the two oxygens over an i-PI trajectory."""
    from .ipi_io import read_xyz_trajectory

    series = read_xyz_trajectory(trajectory)
    oxygens = [i for i, s in enumerate(series.symbols) if s == "O"]
    return float(np.linalg.norm(series.values[:, oxygens[0]] - series.values[:, oxygens[1]], axis=1).max())


def _ff_errors(summary: dict) -> str:
    test = summary.get("test", {})
    parts = []
    if "energy_rmse_eV_per_atom" in test:
        parts.append(f"energy RMSE {1000 * test['energy_rmse_eV_per_atom']:.2f} meV/atom")
    if "force_rmse_eV_per_A" in test:
        parts.append(f"force RMSE {test['force_rmse_eV_per_A']:.4f} eV/A")
    return ", ".join(parts) or json.dumps(test)


def _replicas_stage(runner: StageRunner, s: DemoSettings, run_dir: Path, summaries, log,
                    stop_before_run: bool = False) -> dict | None:
    """Prepare and run the NVE replicas; resumable like the rest (None: stopped before running)."""
    stage_dir = runner.directory("06-replicas")
    marker = stage_dir / "stage.json"
    settings = json.loads(json.dumps({"nvt": summaries["05-nvt"], "n": s.n_replicas, "steps": s.nve_steps,
                                      "bec_stride": s.bec_stride, "separation_ps": s.replica_separation_ps,
                                      "seed": s.seed}))
    if marker.is_file() and not runner.force:
        if json.loads(marker.read_text()).get("settings") == settings:
            log(f"[6] 06-replicas: done before, reused ({stage_dir})")
            return json.loads(marker.read_text())["summary"]
    import shutil

    if marker.is_file() or runner.force:
        shutil.rmtree(stage_dir, ignore_errors=True)  # other settings: start over
    stage_dir.mkdir(parents=True, exist_ok=True)
    log(f"[6] 06-replicas: {s.n_replicas} NVE replicas of {s.nve_steps} steps in {run_dir}")
    if not (run_dir / "manifest.json").is_file():
        template = stage_dir / "nve-template.xml"
        nvt = summaries["05-nvt"]
        template.write_text(ipi_input("nve", nvt["init"], model=Path(summaries["03-model"]["model"]),
                                      forcefield=Path(summaries["04-forcefield"]["forcefield"]),
                                      temperature=s.temperature, timestep=s.timestep,
                                      steps=s.nve_steps, seed=s.seed, ensemble="nve",
                                      bec_stride=s.bec_stride))
        from .replicas.prepare import PrepareOptions, prepare

        _show(["replicas", "prepare", nvt["trajectory"], "--n", s.n_replicas, "--template", template,
               "-o", run_dir, "--seed", s.seed, "--min-separation-ps", s.replica_separation_ps,
               "--skip-ps", s.replica_separation_ps / 2], log)
        with _step("replicas prepare"):
            prepare(PrepareOptions(trajectory=[Path(nvt["trajectory"])], n=s.n_replicas, template=template,
                                   run_dir=run_dir, seed=s.seed, min_separation_ps=s.replica_separation_ps,
                                   skip_ps=s.replica_separation_ps / 2))
    if stop_before_run:
        return None
    from .replicas.run import run_replicas

    log(f"  $ ipi-dipole replicas run {run_dir}")
    not_finished = run_replicas(run_dir)
    if not_finished:
        raise DemoFailed(f"{not_finished} replica(s) did not finish; see {run_dir}/replica_*/ipi.log, "
                         "then run the demo again to resume them")
    summary = {"run_dir": str(run_dir), "n": s.n_replicas, "steps": s.nve_steps}
    marker.write_text(json.dumps({"settings": settings, "summary": summary}, indent=2))
    return summary


def _spectrum(d: Path, run_dir: Path, summaries: dict, s: DemoSettings, log) -> dict:
    from .analysis import spectrum_file
    from .structures import water_dimer

    harmonic = harmonic_frequencies(water_dimer(), d)
    np.savetxt(d / "harmonic_gfn2.txt", harmonic, fmt="%.1f",
               header="GFN2-xTB harmonic wavenumbers of the water dimer, cm^-1")
    csv, png = d / "spectrum.csv", d / "spectrum.png"
    # the temperature comes from the replicas' manifest (the NVT run's); the volume is a
    # convention for a gas-phase molecule: the 20 A box it sits in
    lines = ",".join(f"{w:.1f}" for w in harmonic)
    args = ["spectrum", run_dir, "-o", csv, "--window-cm1", s.window_cm1, "--volume", 20.0 ** 3]
    try:
        import matplotlib  # noqa: F401
        args += ["--plot", png, "--reference-lines", lines, "--reference-label", "harmonic GFN2-xTB"]
    except ImportError:
        log("  (matplotlib is not installed: no PNG; pip install matplotlib)")
        png = None
    _show(args, log)
    with _step("spectrum"):
        _write_spectrum(run_dir, csv, png, s.window_cm1, 20.0 ** 3, [float(w) for w in lines.split(",")], log)
    table = spectrum_file.read_csv(csv)
    bands = _band_table(table["wavenumber_cm1"], table["alpha_n_cm1"], harmonic)
    log("  band            harmonic GFN2-xTB (cm^-1)   MD peak (cm^-1)")
    for name, ref, peak in bands:
        log(f"  {name:<15} {ref:>10.0f}                  {peak:>8.0f}")
    return {"csv": str(csv), "png": str(png) if png else None, "harmonic_cm1": harmonic.tolist(),
            "bands": [{"band": n, "harmonic_cm1": r, "md_cm1": p} for n, r, p in bands]}


def _write_spectrum(run_dir: Path, csv: Path, png: Path | None, window_cm1: float, volume_a3: float,
                    reference_cm1: list, log, max_cm1: float = 6000.0) -> None:
    """What ``ipi-dipole spectrum`` does with the demo's options (Gaussian window, zv)."""
    from .analysis import pipeline, spectrum_file
    from .analysis.green_kubo import SpectrumSettings
    from .analysis.peaks import find_bands

    with pipeline.notes_to(log):
        replicas = pipeline.load_replicas(pipeline.find_replicas([run_dir]))
        window = SpectrumSettings(window="gaussian" if window_cm1 else "none", fwhm_cm1=window_cm1)
        result = pipeline.compute(replicas, pipeline.Options(settings=window, volume_a3=volume_a3))
    bands = find_bands(result.wavenumber_cm1, result.isotropic, max_cm1=max_cm1)
    rows = spectrum_file.write_spectrum(csv, result, bands, max_cm1=max_cm1)
    log(f"  wrote {csv} ({rows} rows; {result.n_replicas} replicas, estimator {result.info['estimator']})")
    if png is not None:
        from .analysis.plot import plot_spectrum

        plot_spectrum(png, result, bands=bands, max_cm1=max_cm1, reference_lines=reference_cm1,
                      reference_label="harmonic GFN2-xTB", title=pipeline.title(result))
        log(f"  wrote {png}")


def _band_table(wavenumber, intensity, harmonic):
    """The MD spectrum's maximum near the harmonic bend (1400-1900) and OH stretches (3200-4100 cm^-1)."""
    rows = []
    for name, lo, hi in (("HOH bend", 1400.0, 1900.0), ("OH stretch", 3200.0, 4100.0)):
        ref = harmonic[(harmonic > lo) & (harmonic < hi)]
        sel = (wavenumber > lo) & (wavenumber < hi)
        if not ref.size or not sel.any():
            continue
        peak = float(wavenumber[sel][np.argmax(intensity[sel])])
        rows.append((name, float(ref.mean()), peak))
    return rows


__all__ = ["DemoSettings", "DemoFailed", "run_demo", "ipi_input", "harmonic_frequencies"]
