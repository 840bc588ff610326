"""Liquid water at 300 K, the whole chain: IR spectrum of a learned dipole, of q-TIP4P/F's own
charges and of experiment, on one plot and in one band table (the paper's Fig. 3).

Stages (one directory each under --out, reused on a rerun with the same settings; a killed
replica run resumes from its checkpoints):

1. ``01-model``: the polarization model trained on the Schienbein CP2K atomic polar tensors
   (../shared/fixtures/water_apt_schienbein: 10 training frames, tested on 10 others),
   ``ipi-dipole convert`` + ``train`` + ``evaluate``. Without the fixtures this stage is
   skipped with a message and only the baseline spectrum is made.
2. ``02-nvt``: NVT at 300 K (SVR thermostat), 128 q-TIP4P/F molecules at 997 kg/m^3
   (inputs/liquid-water), LAMMPS forces in-process in i-PI (``<ffdirect>``).
3. ``03-replicas``: ``ipi-dipole replicas prepare`` (N NVE replicas from NVT frames at least
   --separation-ps apart), then ``mpirun -n K ipi-dipole replicas run``. Forces from LAMMPS,
   dipole and Born charges from the model; Born charges and velocities every 8 steps (4 fs).
4. ``04-spectra``: Green-Kubo ``alpha n`` with replica standard errors, from the SAME replica
   trajectories: (a) ``Mdot = Z*.v`` with the model's Born charges; (b) ``Mdot = Z*.v`` with
   q-TIP4P/F's fixed charges (M site, :mod:`ipi_dipole.analysis.fixed_charges`). Experiment:
   ``alpha n = 4 pi k nu n`` from the measured n, k (Segelstein 1981; Hale & Querry 1973).
   One plot, the band table, and the section of benchmarks/RESULTS_spectra.md.

The spectra are classical Green-Kubo ``alpha n`` (the package's default, which is also the
harmonic quantum-corrected result; see :mod:`ipi_dipole.analysis.quantum_corrections`);
``--quantum-correction`` picks another factor. Nothing is tuned to experiment.

Usage (defaults: the issue's 8 replicas x 10 ps; about 10 min of one core per replica-10 ps):

    OMP_NUM_THREADS=1 python benchmarks/liquid_water_ir.py [--replicas 8] [--ps 10] [--ranks 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _spectra_common as common  # noqa: E402

from ipi_dipole.stages import StageRunner  # noqa: E402

INPUTS = common.ROOT / "inputs" / "liquid-water"
SCHIENBEIN = common.FIXTURES / "water_apt_schienbein"
EXPERIMENTS = {
    "Segelstein 1981": common.FIXTURES / "exp_water_ir" / "H2O_Segelstein1981.yml",
    "Hale & Querry 1973": common.FIXTURES / "exp_water_ir" / "H2O_Hale_Querry1973.yml",
}
SCHIENBEIN_CELL = 15.6627  # Angstrom, examples/liquid-water/do.sh upstream
#: the validation-tuned hyper-parameters of benchmarks/liquid_water.py (RESULTS_model.md)
TRAIN_OPTIONS = ["--cutoff", 5.0, "--n-radial", 12, "--rank3-weight", 0.1, "--regularization", 1e-2,
                 "--n-ref", 1000]
#: (name, lower, upper) in cm^-1
BANDS = [("libration", 400.0, 1000.0), ("bend", 1500.0, 1800.0), ("stretch", 2800.0, 3800.0)]
TIMESTEP_FS = 0.5
BEC_STRIDE = 8


def nvt_input(structure: Path, steps: int, seed: int) -> str:
    """NVT at 300 K, positions and velocities every 20 steps (10 fs) for picking replicas."""
    ff = common.ffdirect("lammps", forces=f"lammps:{INPUTS / 'in.lammps'}", structure=structure)
    return f"""<!-- liquid_water_ir.py: 128 q-TIP4P/F molecules, NVT 300 K (SVR), LAMMPS in-process -->
<simulation verbosity='low' safe_stride='100'>
  <output prefix='nvt'>
    <properties stride='20' filename='out'> [ step, time{{picosecond}}, conserved{{electronvolt}},
      temperature{{kelvin}}, potential{{electronvolt}}, pressure_md{{bar}} ] </properties>
    <trajectory filename='pos' stride='20' format='xyz' cell_units='angstrom'> positions{{angstrom}} </trajectory>
    <trajectory filename='vel' stride='20' format='xyz'> velocities </trajectory>
    <checkpoint stride='1000'/>
  </output>
  <total_steps> {steps} </total_steps>
  <prng><seed> {seed} </seed></prng>
  {ff}
  <system>
    <initialize nbeads='1'>
      <file mode='xyz'> {structure} </file>
      <velocities mode='thermal' units='kelvin'> 300 </velocities>
    </initialize>
    <forces> <force forcefield='lammps'/> </forces>
    <ensemble> <temperature units='kelvin'> 300 </temperature> </ensemble>
    <motion mode='dynamics'>
      <dynamics mode='nvt'>
        <timestep units='femtosecond'> {TIMESTEP_FS} </timestep>
        <thermostat mode='svr'> <tau units='femtosecond'> 100 </tau> </thermostat>
      </dynamics>
    </motion>
  </system>
</simulation>
"""


def nve_template(structure: Path, model: Path | None, steps: int, seed: int) -> str:
    """NVE replica template: Born charges (when a model is given) and velocities every 8 steps."""
    ff = common.ffdirect("water", forces=f"lammps:{INPUTS / 'in.lammps'}", structure=structure, model=model)
    extras = (f"""
    <trajectory filename='dipole' stride='1' extra_type='dipole'> extras </trajectory>
    <trajectory filename='bec' stride='{BEC_STRIDE}' extra_type='BEC'> extras </trajectory>"""
              if model is not None else "")
    return f"""<!-- liquid_water_ir.py: NVE replica, q-TIP4P/F forces (LAMMPS){' and the dipole model' * bool(model)} -->
<simulation verbosity='low' safe_stride='100'>
  <output prefix='nve'>
    <properties stride='{BEC_STRIDE}' filename='out'> [ step, time{{picosecond}}, conserved{{electronvolt}},
      temperature{{kelvin}}, potential{{electronvolt}} ] </properties>{extras}
    <trajectory filename='vel' stride='{BEC_STRIDE}' format='xyz'> velocities </trajectory>
    <checkpoint stride='1000'/>
  </output>
  <total_steps> {steps} </total_steps>
  <prng><seed> {seed} </seed></prng>
  {ff}
  <system>
    <initialize nbeads='1'>
      <file mode='xyz'> {structure} </file>
    </initialize>
    <forces> <force forcefield='water'/> </forces>
    <motion mode='dynamics'>
      <dynamics mode='nve'> <timestep units='femtosecond'> {TIMESTEP_FS} </timestep> </dynamics>
    </motion>
  </system>
</simulation>
"""


def stage_model(d: Path, log) -> dict:
    train_xyz, test_xyz = SCHIENBEIN / "liquid-water_train10.xyz", SCHIENBEIN / "liquid-water_test.xyz"
    for name, src in (("train", train_xyz), ("test", test_xyz)):
        common.cli(["convert", src, "--format", "apt-xyz", "--cell", SCHIENBEIN_CELL,
                    "-o", d / f"{name}.extxyz"], log)
    common.cli(["train", d / "train.extxyz", "-o", d / "model.npz", "--targets", "bec", "--quiet",
                *TRAIN_OPTIONS], log)
    common.cli(["evaluate", d / "model.npz", d / "test.extxyz"], log)
    from ipi_dipole import data, metrics
    from ipi_dipole.model import PolarizationModel

    held_out = metrics.evaluate(PolarizationModel.load(d / "model.npz"), data.load(d / "test.extxyz"))
    return {"model": str(d / "model.npz"), **{k: float(v) for k, v in held_out.items()
                                                if isinstance(v, (int, float))}}


def stage_nvt(d: Path, steps: int, seed: int, log) -> dict:
    for old in d.glob("nvt.*"):
        old.unlink()  # an interrupted equilibration starts again: it is the cheap part
    (d / "nvt.xml").write_text(nvt_input(INPUTS / "init.xyz", steps, seed))
    common.ipi(d / "nvt.xml", log)
    props = np.loadtxt(d / "nvt.out", ndmin=2)
    temps = props[len(props) // 5:, 3]
    return {"trajectory": str(d / "nvt.pos_0.xyz"), "steps": steps,
            "mean_temperature_K": round(float(temps.mean()), 1)}


def stage_replicas(d: Path, nvt: dict, model: Path | None, args, log) -> dict:
    run_dir = d / "run"
    if not (run_dir / "manifest.json").is_file():
        template = d / "nve-template.xml"
        template.write_text(nve_template(INPUTS / "init.xyz", model, args.steps, args.seed))
        common.cli(["replicas", "prepare", nvt["trajectory"], "--n", args.replicas, "--template", template,
                    "-o", run_dir, "--seed", args.seed, "--min-separation-ps", args.separation_ps,
                    "--skip-ps", args.skip_ps, "--force"], log)
    start = time.perf_counter()
    common.mpirun_replicas(run_dir, args.ranks, log)
    return {"run_dir": str(run_dir), "replicas": args.replicas, "steps": args.steps,
            "ps": args.steps * TIMESTEP_FS / 1000, "wall_s_this_call": round(time.perf_counter() - start)}


def compute_spectra(run_dir: Path, has_model: bool, args, log):
    """Model and baseline spectra (ReplicaAverage) from the same replica trajectories."""
    from ipi_dipole.analysis import pipeline, runs
    from ipi_dipole.analysis.fixed_charges import QTIP4PF_GAMMA, QTIP4PF_Q_M, m_site_born_charges, with_fixed_charges
    from ipi_dipole.analysis.green_kubo import SpectrumSettings

    found = runs.find_runs([run_dir])
    log(f"  reading {len(found)} replicas in {run_dir}")
    replicas = [runs.load_replica(r) for r in found]
    options = pipeline.Options(estimator="zv", settings=SpectrumSettings(fwhm_cm1=args.window_cm1),
                               quantum_correction=args.quantum_correction)
    out = {}
    if has_model:
        out["model"] = pipeline.compute(replicas, options)
    charges = m_site_born_charges(QTIP4PF_Q_M, QTIP4PF_GAMMA)
    out["baseline"] = pipeline.compute([with_fixed_charges(r, charges) for r in replicas], options)
    return out, charges


def stage_spectra(d: Path, replicas: dict, has_model: bool, args, log) -> dict:
    from ipi_dipole.analysis import spectrum_file
    from ipi_dipole.analysis.experiment import read_experiment

    spectra, charges = compute_spectra(Path(replicas["run_dir"]), has_model, args, log)
    summary = {"charges": charges, "bands": {}, "experiment": {}}
    for name, result in spectra.items():
        comments = [f"liquid_water_ir.py: {name} spectrum, estimator {result.info['estimator']}, "
                    f"{result.n_replicas} replicas, window FWHM {args.window_cm1} cm^-1, "
                    f"quantum correction {args.quantum_correction}",
                    "units: wavenumber_cm1 cm^-1; alpha_n_* cm^-1 (replica mean and standard error)"]
        spectrum_file.write_csv(d / f"{name}.csv", result, comments, max_cm1=5000.0)
        each = np.array([s.isotropic for s in result.spectra])
        summary["bands"][name] = {b: common.band_stats(result.wavenumber_cm1, each, lo, hi)
                                  for b, lo, hi in BANDS}
        summary["temperature_K"] = float(np.mean(result.info["temperature_k"]))
        summary["volume_A3"] = float(np.mean(result.info["volume_a3"]))
        summary["max_lag_fs"] = float(result.info["max_lag_fs"])
    measured = {}
    for label, path in EXPERIMENTS.items():
        if path.is_file():
            measured[label] = read_experiment(path)
            summary["experiment"][label] = {b: common.experiment_stats(measured[label], lo, hi)
                                            for b, lo, hi in BANDS}
        else:
            log(f"  {path} not found: {label} left out")
    plot(d / "spectrum.png", spectra, measured, args)
    summary["plot"] = str(d / "spectrum.png")
    return summary


def plot(path: Path, spectra: dict, measured: dict, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.6), dpi=130)
    styles = {"model": ("C0", "model (Schienbein CP2K Z*)"), "baseline": ("C1", "q-TIP4P/F fixed charges")}
    for name, result in spectra.items():
        color, label = styles[name]
        x, y, e = result.wavenumber_cm1, result.isotropic, result.isotropic_stderr
        sel = x <= 4500
        ax.plot(x[sel], y[sel], color=color, lw=1.2, label=f"{label}, {result.n_replicas} replicas")
        if np.all(np.isfinite(e[sel])):
            ax.fill_between(x[sel], (y - 2 * e)[sel], (y + 2 * e)[sel], color=color, alpha=0.3, lw=0)
    for (label, m), ls in zip(measured.items(), ("--", ":")):
        sel = (m.wavenumber_cm1 >= 50) & (m.wavenumber_cm1 <= 4500)
        ax.plot(m.wavenumber_cm1[sel], m.alpha_n_cm1[sel], color="k", lw=1.0, ls=ls, label=f"experiment, {label}")
    ax.set_xlim(0, 4500)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(r"wavenumber (cm$^{-1}$)")
    ax.set_ylabel(r"$\alpha(\omega)\,n(\omega)$ (cm$^{-1}$)")
    corr = "classical Green-Kubo" if args.quantum_correction == "none" else f"{args.quantum_correction} QCF"
    ax.set_title(f"liquid water 300 K, 128 q-TIP4P/F molecules, NVE replicas; {corr}; bands +-2 SE", fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def report(summaries: dict, args) -> str:
    sp = summaries["04-spectra"]
    rep = summaries["03-replicas"]
    model = summaries.get("01-model")
    lines = ["## Liquid water, 300 K (benchmarks/liquid_water_ir.py)", ""]
    lines += [f"Command: `OMP_NUM_THREADS=1 python benchmarks/liquid_water_ir.py --replicas {rep['replicas']} "
              f"--ps {rep['ps']:g} --ranks {args.ranks}`"
              + ("" if (rep["replicas"], rep["ps"]) == (8, 10) else
                 f" (a smaller run than the script's default 8 x 10 ps)."), ""]
    lines.append(f"128 q-TIP4P/F molecules (inputs/liquid-water, LAMMPS), NVT {summaries['02-nvt']['steps'] * TIMESTEP_FS / 1000:g} ps "
                 f"at 300 K (mean {summaries['02-nvt']['mean_temperature_K']} K), then {rep['replicas']} NVE replicas "
                 f"of {rep['ps']:g} ps (0.5 fs step); Green-Kubo with Mdot = Z*.v every 4 fs, correlation up to "
                 f"{sp['max_lag_fs']:g} fs, Gaussian window FWHM {args.window_cm1:g} cm^-1, T = "
                 f"{sp['temperature_K']:.1f} K, V = {sp['volume_A3']:.1f} A^3.")
    if model:
        lines.append(f"Model: trained on the Schienbein CP2K polar tensors (10 frames, hyper-parameters of "
                     f"benchmarks/liquid_water.py); held-out Z* RMSE {model.get('bec_rmse', float('nan')):.4f} e "
                     f"on the 10 test frames.")
    else:
        lines.append("Model: not trained (../shared/fixtures/water_apt_schienbein absent); baseline only.")
    q = sp["charges"]
    lines.append(f"Baseline: q-TIP4P/F's own charges on the same trajectories, Z*(O) = gamma q_M = {q['O']:.5f} e, "
                 f"Z*(H) = q_H + (1-gamma)/2 q_M = {q['H']:.5f} e (gamma = 0.73612, q_M = -1.1128 e; LAMMPS's "
                 "TIP4P places M at r_O + alpha/2 (r_H1 + r_H2 - 2 r_O) with the constant alpha = "
                 "0.1471 A / (cos(theta0/2) r0) = 0.2638, i.e. gamma = 0.7362: the same linear M site).")
    qc = {"none": "none: the classical Green-Kubo alpha n (identical to the harmonic quantum correction, "
                  "see ipi_dipole.analysis.quantum_corrections)"}.get(args.quantum_correction, args.quantum_correction)
    lines.append(f"Quantum correction factor: {qc}. Experiment: alpha n = 4 pi k nu n from the measured n, k "
                 "(refractiveindex.info, 25 C). Nothing tuned to experiment.")
    lines += ["", "Peak position (cm^-1) and integrated alpha n over the band window (cm^-2); +- is the "
              "standard error over the replicas (each replica's own peak and integral).", ""]
    lines.append("| band (window, cm^-1) | source | peak (cm^-1) | integral (cm^-2) |")
    lines.append("|---|---|---|---|")
    labels = {"model": "model (CP2K Z*)", "baseline": "q-TIP4P/F charges"}
    for band, lo, hi in BANDS:
        for name in ("model", "baseline"):
            if name in sp["bands"]:
                b = sp["bands"][name][band]
                lines.append(f"| {band} ({lo:.0f}-{hi:.0f}) | {labels[name]} | {common.fmt(b['peak'], b['peak_se'])} "
                             f"| {common.fmt(b['area'], b['area_se'])} |")
        for label, bands in sp["experiment"].items():
            b = bands[band]
            lines.append(f"| {band} ({lo:.0f}-{hi:.0f}) | experiment, {label} | {common.fmt(b['peak'])} "
                         f"| {common.fmt(b['area'])} |")
    lines += ["", f"Plot: `{Path(sp['plot']).relative_to(common.ROOT)}` (written by the run, not committed)."]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(common.HERE / "_output" / "liquid-water-ir"))
    parser.add_argument("--replicas", type=int, default=8)
    parser.add_argument("--ps", type=float, default=10.0, help="length of each NVE replica (ps)")
    parser.add_argument("--separation-ps", type=float, default=1.0,
                        help="minimum time between the NVT frames the replicas start from (ps)")
    parser.add_argument("--skip-ps", type=float, default=2.0, help="NVT equilibration not used for replicas (ps)")
    parser.add_argument("--ranks", type=int, default=2, help="MPI ranks for the replicas")
    parser.add_argument("--window-cm1", type=float, default=20.0, help="Gaussian window FWHM (cm^-1)")
    parser.add_argument("--quantum-correction", default="none", choices=["none", "harmonic", "schofield", "standard"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-results", action="store_true", help="do not write RESULTS_spectra.md")
    parser.add_argument("--force", action="store_true", help="redo every stage")
    args = parser.parse_args(argv)
    args.steps = int(round(args.ps * 1000 / TIMESTEP_FS))
    nvt_steps = int(round((args.skip_ps + args.replicas * args.separation_ps + 0.5) * 1000 / TIMESTEP_FS))

    runner = StageRunner(args.out, force=args.force)
    summaries = {}
    model = None
    if (SCHIENBEIN / "liquid-water_train10.xyz").is_file():
        summaries["01-model"] = runner.run("01-model", {"train": TRAIN_OPTIONS},
                                           lambda d: stage_model(d, print))
        model = Path(summaries["01-model"]["model"])
        print(f"  model: held-out Z* RMSE {summaries['01-model'].get('bec_rmse', float('nan')):.4f} e")
    else:
        print(f"SKIP model (a): {SCHIENBEIN} is not there (third-party fixtures); "
              "running the q-TIP4P/F baseline (b) only")
    summaries["02-nvt"] = runner.run("02-nvt", {"steps": nvt_steps, "seed": args.seed},
                                     lambda d: stage_nvt(d, nvt_steps, args.seed, print))
    summaries["03-replicas"] = runner.run(
        "03-replicas", {"nvt": summaries["02-nvt"], "model": str(model), "n": args.replicas, "steps": args.steps,
                        "separation_ps": args.separation_ps, "skip_ps": args.skip_ps, "seed": args.seed},
        lambda d: stage_replicas(d, summaries["02-nvt"], model, args, print))
    summaries["04-spectra"] = runner.run(
        "04-spectra", {"replicas": summaries["03-replicas"], "window": args.window_cm1,
                       "qc": args.quantum_correction, "version": 1},
        lambda d: stage_spectra(d, summaries["03-replicas"], model is not None, args, print))
    text = report(summaries, args)
    print(text)
    (runner.root / "report.md").write_text(text + "\n")
    if not args.no_results:
        common.write_section("liquid-water", text)
        print(f"wrote {common.RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
