"""Rock-salt NaCl (Tosi-Fumi rigid ions, inputs/nacl): the finite-temperature IR spectrum at
300 K and at a low temperature, its TO peak against the harmonic TO of the same force field
and against the measured reststrahlen band (the paper's Fig. 4).

Stages (one directory each under --out, reused on a rerun with the same settings):

1. ``01-harmonic``: ``ipi-dipole harmonic`` of the 64-atom cell of inputs/nacl (a = 5.64 A,
   the cell of the MD runs), rigid-ion charges Na = +1, Cl = -1 (eps_inf = 1): the 0 K TO
   (and LO) frequencies of the force field.
2. ``02-nvt-<T>K`` and ``03-replicas-<T>K`` for each temperature: NVT (SVR, 2 fs), then N NVE
   replicas (``ipi-dipole replicas prepare`` + ``mpirun ... replicas run``), forces from
   LAMMPS in-process in i-PI, velocities every 5 steps (10 fs, Nyquist 1668 cm^-1).
3. ``04-spectra``: Green-Kubo ``alpha n`` with ``Mdot = Z*.v`` and the rigid-ion Born charges
   (the force field's own dipole, exact for a rigid-ion model:
   :mod:`ipi_dipole.analysis.fixed_charges`), replica standard errors; the measured
   ``alpha n = 4 pi k nu n`` of Querry 1987 (../shared/fixtures/exp_ionic_ir, skipped with a
   message when absent); one plot; the TO table and the check "MD TO at the low temperature
   within 5 % of the harmonic TO", printed and written to benchmarks/RESULTS_spectra.md.

The periodic Ewald sum has conducting (tin-foil) boundary conditions: the q = 0 polar mode
the dipole correlation sees is the TO, so the MD peak compares with the harmonic TO.

Usage (a few minutes on 2 cores):

    OMP_NUM_THREADS=1 python benchmarks/nacl_ir.py [--replicas 8] [--ps 20] [--temperatures 300 50]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _spectra_common as common  # noqa: E402

from ipi_dipole.stages import StageRunner  # noqa: E402

INPUTS = common.ROOT / "inputs" / "nacl"
FORCES = f"lammps:{INPUTS / 'forcefield.lammps'}"
CHARGES = {"Na": 1.0, "Cl": -1.0}
EXPERIMENT = common.FIXTURES / "exp_ionic_ir" / "NaCl_Querry1987.yml"
TIMESTEP_FS = 2.0
VEL_STRIDE = 5
#: where the TO peak is looked for (cm^-1): the reststrahlen region, below the LO
TO_WINDOW = (80.0, 240.0)
TOLERANCE = 0.05


def nvt_input(structure: Path, temperature: float, steps: int, seed: int) -> str:
    ff = common.ffdirect("lammps", forces=FORCES, structure=structure)
    return f"""<!-- nacl_ir.py: 64-atom NaCl, NVT {temperature} K (SVR), Tosi-Fumi in LAMMPS in-process -->
<simulation verbosity='low' safe_stride='100'>
  <output prefix='nvt'>
    <properties stride='10' filename='out'> [ step, time{{picosecond}}, conserved{{electronvolt}},
      temperature{{kelvin}}, potential{{electronvolt}}, pressure_md{{bar}} ] </properties>
    <trajectory filename='pos' stride='10' format='xyz' cell_units='angstrom'> positions{{angstrom}} </trajectory>
    <trajectory filename='vel' stride='10' format='xyz'> velocities </trajectory>
    <checkpoint stride='500'/>
  </output>
  <total_steps> {steps} </total_steps>
  <prng><seed> {seed} </seed></prng>
  {ff}
  <system>
    <initialize nbeads='1'>
      <file mode='xyz'> {structure} </file>
      <velocities mode='thermal' units='kelvin'> {temperature} </velocities>
    </initialize>
    <forces> <force forcefield='lammps'/> </forces>
    <ensemble> <temperature units='kelvin'> {temperature} </temperature> </ensemble>
    <motion mode='dynamics'>
      <dynamics mode='nvt'>
        <timestep units='femtosecond'> {TIMESTEP_FS} </timestep>
        <thermostat mode='svr'> <tau units='femtosecond'> 200 </tau> </thermostat>
      </dynamics>
    </motion>
  </system>
</simulation>
"""


def nve_template(structure: Path, steps: int, seed: int) -> str:
    ff = common.ffdirect("lammps", forces=FORCES, structure=structure)
    return f"""<!-- nacl_ir.py: NVE replica of 64-atom NaCl, velocities every {VEL_STRIDE} steps -->
<simulation verbosity='low' safe_stride='100'>
  <output prefix='nve'>
    <properties stride='{VEL_STRIDE}' filename='out'> [ step, time{{picosecond}}, conserved{{electronvolt}},
      temperature{{kelvin}}, potential{{electronvolt}} ] </properties>
    <trajectory filename='vel' stride='{VEL_STRIDE}' format='xyz'> velocities </trajectory>
    <checkpoint stride='1000'/>
  </output>
  <total_steps> {steps} </total_steps>
  <prng><seed> {seed} </seed></prng>
  {ff}
  <system>
    <initialize nbeads='1'>
      <file mode='xyz'> {structure} </file>
    </initialize>
    <forces> <force forcefield='lammps'/> </forces>
    <motion mode='dynamics'>
      <dynamics mode='nve'> <timestep units='femtosecond'> {TIMESTEP_FS} </timestep> </dynamics>
    </motion>
  </system>
</simulation>
"""


def stage_harmonic(d: Path, log) -> dict:
    common.cli(["harmonic", INPUTS / "init.xyz", "--forces", FORCES, "--charges", "Na=1,Cl=-1",
                "--eps-inf", 1, "--no-relax", "-o", d / "harmonic"], log)
    summary = json.loads((d / "harmonic" / "summary.json").read_text())
    active = [w for w, ir in zip(summary["wavenumber_cm1"], summary["ir_active"]) if ir]
    return {"to_cm1": float(np.mean(active)), "lo_cm1": float(max(summary.get("lo_wavenumber_cm1", [np.nan]))),
            "spectrum": str(d / "harmonic" / "spectrum.csv")}


def stage_nvt(d: Path, temperature: float, steps: int, seed: int, log) -> dict:
    for old in d.glob("nvt.*"):
        old.unlink()
    (d / "nvt.xml").write_text(nvt_input(INPUTS / "init.xyz", temperature, steps, seed))
    common.ipi(d / "nvt.xml", log)
    props = np.loadtxt(d / "nvt.out", ndmin=2)
    temps = props[len(props) // 5:, 3]
    return {"trajectory": str(d / "nvt.pos_0.xyz"), "steps": steps, "mean_temperature_K": round(float(temps.mean()), 1)}


def stage_replicas(d: Path, nvt: dict, args, log) -> dict:
    run_dir = d / "run"
    if not (run_dir / "manifest.json").is_file():
        template = d / "nve-template.xml"
        template.write_text(nve_template(INPUTS / "init.xyz", args.steps, args.seed))
        common.cli(["replicas", "prepare", nvt["trajectory"], "--n", args.replicas, "--template", template,
                    "-o", run_dir, "--seed", args.seed, "--min-separation-ps", args.separation_ps,
                    "--skip-ps", args.skip_ps, "--force"], log)
    common.mpirun_replicas(run_dir, args.ranks, log)
    return {"run_dir": str(run_dir), "replicas": args.replicas, "steps": args.steps,
            "ps": args.steps * TIMESTEP_FS / 1000}


def spectrum_of(run_dir: Path, args):
    from ipi_dipole.analysis import pipeline, runs
    from ipi_dipole.analysis.fixed_charges import with_fixed_charges
    from ipi_dipole.analysis.green_kubo import SpectrumSettings

    replicas = [with_fixed_charges(runs.load_replica(r), CHARGES) for r in runs.find_runs([run_dir])]
    options = pipeline.Options(estimator="zv", settings=SpectrumSettings(fwhm_cm1=args.window_cm1))
    return pipeline.compute(replicas, options)


def read_harmonic_spectrum(path: Path):
    from ipi_dipole.analysis import spectrum_file

    table = spectrum_file.read_csv(path)
    return table["wavenumber_cm1"], table["alpha_n_cm1"]


def stage_spectra(d: Path, harmonic: dict, runs_by_t: dict, args, log) -> dict:
    from ipi_dipole.analysis import spectrum_file

    out = {"md": {}, "harmonic_to_cm1": harmonic["to_cm1"], "harmonic_lo_cm1": harmonic["lo_cm1"]}
    results = {}
    for t, rep in runs_by_t.items():
        result = spectrum_of(Path(rep["run_dir"]), args)
        results[t] = result
        spectrum_file.write_csv(d / f"md-{t:g}K.csv", result,
                                [f"nacl_ir.py: NaCl {t:g} K, rigid-ion Z* (Na +1, Cl -1), zv, "
                                 f"{result.n_replicas} replicas, window FWHM {args.window_cm1} cm^-1",
                                 "units: wavenumber_cm1 cm^-1; alpha_n_* cm^-1"], max_cm1=600.0)
        each = np.array([s.isotropic for s in result.spectra])
        stats = common.band_stats(result.wavenumber_cm1, each, *TO_WINDOW)
        stats["temperature_K"] = float(np.mean(result.info["temperature_k"]))
        stats["max_lag_fs"] = float(result.info["max_lag_fs"])
        out["md"][f"{t:g}"] = stats
    measured = None
    if EXPERIMENT.is_file():
        from ipi_dipole.analysis.experiment import read_experiment

        measured = read_experiment(EXPERIMENT)
        out["experiment"] = common.experiment_stats(measured, *TO_WINDOW)
        sel = (measured.wavenumber_cm1 >= TO_WINDOW[0]) & (measured.wavenumber_cm1 <= TO_WINDOW[1])
        out["experiment"]["k_max_cm1"] = float(measured.wavenumber_cm1[sel][np.argmax(measured.k[sel])])
    else:
        log(f"  {EXPERIMENT} not found: the measured spectrum is left out")
    plot(d / "spectrum.png", results, read_harmonic_spectrum(Path(harmonic["spectrum"])), harmonic, measured)
    out["plot"] = str(d / "spectrum.png")
    return out


def plot(path: Path, results: dict, harmonic_curve, harmonic: dict, measured) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.6), dpi=130)
    hi = 400.0
    for k, (t, result) in enumerate(sorted(results.items(), reverse=True)):
        x, y, e = result.wavenumber_cm1, result.isotropic, result.isotropic_stderr
        sel = x <= hi
        ax.plot(x[sel], y[sel], color=f"C{k}", lw=1.2, label=f"MD {t:g} K, {result.n_replicas} replicas")
        if np.all(np.isfinite(e[sel])):
            ax.fill_between(x[sel], (y - 2 * e)[sel], (y + 2 * e)[sel], color=f"C{k}", alpha=0.3, lw=0)
    ax.axvline(harmonic["to_cm1"], color="C3", ls=":", lw=1.0,
               label=f"harmonic TO (same force field) {harmonic['to_cm1']:.1f}")
    if measured is not None:
        sel = measured.wavenumber_cm1 <= hi
        ax.plot(measured.wavenumber_cm1[sel], measured.alpha_n_cm1[sel], color="k", ls="--", lw=1.0,
                label="experiment, Querry 1987")
    ax.set_xlim(0, hi)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(r"wavenumber (cm$^{-1}$)")
    ax.set_ylabel(r"$\alpha(\omega)\,n(\omega)$ (cm$^{-1}$)")
    ax.set_title("rock-salt NaCl, Tosi-Fumi rigid ions (64 atoms), classical Green-Kubo; bands +-2 SE", fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def report(summaries: dict, args) -> tuple[str, bool]:
    sp = summaries["04-spectra"]
    to = sp["harmonic_to_cm1"]
    low = f"{min(args.temperatures):g}"
    lines = ["## Rock-salt NaCl (benchmarks/nacl_ir.py)", ""]
    reps = summaries[f"03-replicas-{low}K"]
    lines.append(f"Command: `OMP_NUM_THREADS=1 python benchmarks/nacl_ir.py --replicas {reps['replicas']} "
                 f"--ps {reps['ps']:g} --temperatures {' '.join(f'{t:g}' for t in args.temperatures)}`")
    lines.append("")
    lines.append(f"64 atoms (2x2x2 conventional cells, a = 5.64 A), Tosi-Fumi rigid ions in LAMMPS "
                 f"(inputs/nacl), NVT then {reps['replicas']} NVE replicas of {reps['ps']:g} ps per temperature "
                 f"(2 fs step); Mdot = Z*.v with the rigid-ion charges (Na +1, Cl -1, exact for this force field); "
                 f"Gaussian window FWHM {args.window_cm1:g} cm^-1; classical Green-Kubo. Harmonic: "
                 f"`ipi-dipole harmonic` at the same cell (phonopy, Gamma), TO {to:.1f} cm^-1, LO {sp['harmonic_lo_cm1']:.1f} "
                 f"cm^-1 (eps_inf = 1 of rigid ions). Experiment: alpha n = 4 pi k nu n from Querry 1987 n, k.")
    lines += ["", f"TO peak: maximum of alpha n in {TO_WINDOW[0]:.0f}-{TO_WINDOW[1]:.0f} cm^-1; +- standard error over "
              "the replicas.", "", "| source | TO peak (cm^-1) | vs harmonic TO | integral (cm^-2) |", "|---|---|---|---|"]
    lines.append(f"| harmonic, same force field (0 K) | {to:.1f} | - | - |")
    for t, s in sorted(sp["md"].items(), key=lambda kv: float(kv[0])):
        lines.append(f"| MD {float(t):g} K (T = {s['temperature_K']:.1f} K) | {common.fmt(s['peak'], s['peak_se'], 1)} "
                     f"| {100 * (s['peak'] / to - 1):+.1f} % | {common.fmt(s['area'], s['area_se'])} |")
    if "experiment" in sp:
        e = sp["experiment"]
        lines.append(f"| experiment, Querry 1987 (alpha n max; k max at {e['k_max_cm1']:.1f}) | {e['peak']:.1f} "
                     f"| {100 * (e['peak'] / to - 1):+.1f} % | {e['area']:.0f} |")
    md_low = sp["md"][low]["peak"]
    ok = abs(md_low / to - 1) <= TOLERANCE
    lines += ["", f"Check: the MD TO peak at {low} K is {md_low:.1f} cm^-1, {100 * abs(md_low / to - 1):.1f} % from the "
              f"harmonic TO {to:.1f} cm^-1: {'PASS' if ok else 'FAIL'} (tolerance {100 * TOLERANCE:.0f} %).",
              "", f"Plot: `{Path(sp['plot']).relative_to(common.ROOT)}` (written by the run, not committed)."]
    return "\n".join(lines), ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(common.HERE / "_output" / "nacl-ir"))
    parser.add_argument("--replicas", type=int, default=8)
    parser.add_argument("--ps", type=float, default=20.0, help="length of each NVE replica (ps)")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[300.0, 50.0], metavar="K")
    parser.add_argument("--separation-ps", type=float, default=1.0)
    parser.add_argument("--skip-ps", type=float, default=2.0)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--window-cm1", type=float, default=8.0, help="Gaussian window FWHM (cm^-1)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--no-results", action="store_true", help="do not write RESULTS_spectra.md")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    args.steps = int(round(args.ps * 1000 / TIMESTEP_FS))
    nvt_steps = int(round((args.skip_ps + args.replicas * args.separation_ps + 0.5) * 1000 / TIMESTEP_FS))

    runner = StageRunner(args.out, force=args.force)
    summaries = {"01-harmonic": runner.run("01-harmonic", {"forces": FORCES, "charges": CHARGES},
                                           lambda d: stage_harmonic(d, print))}
    runs_by_t = {}
    for t in args.temperatures:
        seed = args.seed + int(t)
        nvt = runner.run(f"02-nvt-{t:g}K", {"T": t, "steps": nvt_steps, "seed": seed},
                         lambda d: stage_nvt(d, t, nvt_steps, seed, print))
        summaries[f"02-nvt-{t:g}K"] = nvt
        summaries[f"03-replicas-{t:g}K"] = runs_by_t[t] = runner.run(
            f"03-replicas-{t:g}K", {"nvt": nvt, "n": args.replicas, "steps": args.steps, "seed": args.seed,
                                    "separation_ps": args.separation_ps, "skip_ps": args.skip_ps},
            lambda d: stage_replicas(d, nvt, args, print))
    summaries["04-spectra"] = runner.run(
        "04-spectra", {"runs": {f"{t:g}": r for t, r in runs_by_t.items()}, "harmonic": summaries["01-harmonic"],
                       "window": args.window_cm1, "version": 1},
        lambda d: stage_spectra(d, summaries["01-harmonic"], runs_by_t, args, print))
    text, ok = report(summaries, args)
    print(text)
    (runner.root / "report.md").write_text(text + "\n")
    if not args.no_results:
        common.write_section("nacl", text)
        print(f"wrote {common.RESULTS}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
