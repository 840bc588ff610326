"""Water-dimer force fields trained by LAMMPS (POD, SNAP): accuracy vs training size,
stability of NVE dynamics, and cost per force call.

Data: the model benchmarks' water-dimer sets (benchmarks/_model_common.py: two independent
GFN2-xTB Langevin heating runs, 10 -> 320 K, H mass 8 u; a training pool of 1001 frames
and a test trajectory of 201 frames never seen in training). For each training size a
seeded random subset of the pool is fitted with ``ipi_dipole.forcefield.train`` (the
library behind ``ipi-dipole train-forcefield``, default settings unless a variant says
otherwise) and evaluated on the whole test trajectory.

Table 1, accuracy: test RMSE of per-atom energies and of force components, largest force
error, and the command's own NVE check (4 runs of 1 ps at 300 K that must conserve energy).

Table 2, MD stability: NVE runs of 5 ps (10000 steps of 0.5 fs, real masses, velocities
drawn at 300 K) in LAMMPS from every 8th test frame; a run fails when the total energy
drifts by more than 0.1 eV or LAMMPS stops (lost atoms). Variants: the guard walls off,
other cutoffs.

Table 3, cost per force call of the fitted potential (i) through ForceFieldCalculator
(ASE LAMMPSlib), (ii) the way the i-PI driver calls LAMMPS (positions written into
LAMMPS, ``run 0``, forces read back), (iii) per MD step inside LAMMPS; tblite GFN2-xTB
for comparison.

    python benchmarks/forcefield_water_dimer.py [--sizes 50 100 300 1000] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _model_common import dimer_sets, median_time  # noqa: E402

from ipi_dipole import data, forcefield  # noqa: E402
from ipi_dipole.forcefield import PODSettings  # noqa: E402


def nve_survival(ff_dir, atoms, steps=10000, seed=1, chunk=500, tolerance=0.1):
    """(stable, steps run, largest |dE| in eV, seconds per step) of one LAMMPS NVE run."""
    lmp, _ = forcefield.build_lammps(ff_dir, atoms, margin=40.0)
    lmp.commands_list([f"velocity all create 300 {seed} mom yes rot yes dist gaussian",
                       "timestep 0.0005", "fix integrate all nve", "thermo 0",
                       "thermo_modify lost error", "run 0 post no"])
    e0, drift, done = lmp.get_thermo("etotal"), 0.0, 0
    t = time.perf_counter()
    try:
        while done < steps:
            lmp.command(f"run {chunk} post no")
            done += chunk
            drift = max(drift, abs(lmp.get_thermo("etotal") - e0))
            if not drift <= tolerance:
                break
    except Exception:  # lost atoms: the run failed
        pass
    per_step = (time.perf_counter() - t) / max(done, 1)
    lmp.close()
    return done >= steps and drift <= tolerance, done, drift, per_step


def md_step_time(ff_dir, atoms, steps=400):
    """Seconds per velocity-Verlet step inside LAMMPS (50 K start: stays in the data)."""
    lmp, _ = forcefield.build_lammps(ff_dir, atoms, margin=40.0)
    lmp.commands_list(["velocity all create 50 7 mom yes rot yes dist gaussian", "timestep 0.0005",
                       "fix integrate all nve", "thermo 0", "run 10 post no"])
    t = time.perf_counter()
    lmp.command(f"run {steps} post no")
    t = (time.perf_counter() - t) / steps
    lmp.close()
    return t


def driver_style_call_time(ff_dir, frames):
    """Seconds per force call when positions are written into LAMMPS and 'run 0' is issued."""
    lmp, _ = forcefield.build_lammps(ff_dir, frames[0])
    lmp.command("run 0 post no")
    nlocal = lmp.extract_global("nlocal")
    x = lmp.numpy.extract_atom("x")[:nlocal]
    centre = x.mean(axis=0).copy()
    k = [0]

    def call():
        a = frames[k[0] % len(frames)]
        k[0] += 1
        x[:] = a.positions - a.positions.mean(axis=0) + centre
        lmp.command("run 0 post no")
        return np.array(lmp.numpy.extract_atom("f")[:nlocal])

    t = median_time(call, repeat=5, number=200)
    lmp.close()
    return t


def calculator_call_time(calc, frames, repeat, number):
    """Median seconds of one get_forces() of an ASE calculator, cycling through ``frames``."""
    k = [0]

    def call():
        a = frames[k[0] % len(frames)].copy()
        k[0] += 1
        a.calc = calc
        return a.get_forces()

    return median_time(call, repeat=repeat, number=number)


def forcefield_call_time(ff_dir, frames):
    calc = forcefield.ForceFieldCalculator(ff_dir)
    try:
        return calculator_call_time(calc, frames, repeat=5, number=100)
    finally:
        calc.close()


def tblite_call_time(frames):
    from tblite.ase import TBLite

    return calculator_call_time(TBLite(method="GFN2-xTB", verbosity=0), frames, repeat=3, number=30)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 300, 1000])
    parser.add_argument("--stability-sizes", type=int, nargs="+", default=[300, 1000])
    parser.add_argument("--quick", action="store_true", help="8 instead of 26 stability runs, 2 ps each")
    parser.add_argument("--seed", type=int, default=0, help="seed of the training subsets")
    parser.add_argument("--tables", nargs="+", default=["accuracy", "stability", "cost"],
                        choices=["accuracy", "stability", "cost"], help="which tables (default all)")
    args = parser.parse_args()

    pool_path, test_path = dimer_sets()
    pool, test = data.load(pool_path), data.load(test_path)
    print(f"training pool: {pool_path} ({len(pool)} frames); test: {test_path} ({len(test)} frames)\n")
    order = np.random.default_rng(args.seed).permutation(len(pool))

    def subset(n):
        return [pool[i] for i in order[:min(n, len(pool))]]

    with tempfile.TemporaryDirectory(prefix="ffbench-") as tmp:
        tmp = Path(tmp)
        # ---------------------------------------------------------------- accuracy
        largest = {}
        if "accuracy" in args.tables:
            print("| kind | n_train | coefficients | train + checks (s) | test E RMSE (meV/atom) | "
              "test F RMSE (eV/A) | test F max err (eV/A) | NVE check (stable/4) |")
            print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for kind in ("pod", "snap"):
            for n in args.sizes if "accuracy" in args.tables else [max(args.sizes)]:
                ff_dir = tmp / f"{kind}_{n}"
                t = time.perf_counter()
                try:
                    report = forcefield.train(subset(n), ff_dir, kind=kind, test_fraction=0.0)
                except Exception as exc:  # too few structures for the basis, ...
                    print(f"| {kind} | {n} | failed: {exc} ||||||")
                    continue
                t = time.perf_counter() - t
                largest[kind] = ff_dir
                if "accuracy" not in args.tables:
                    continue
                err = forcefield.evaluate(ff_dir, test)
                check = report["md_check"]
                print(f"| {kind} | {report['n_train']} | {report['fit']['n_coefficients']} | {t:.1f} | "
                      f"{1000 * err['energy_rmse_eV_per_atom']:.3f} | {err['force_rmse_eV_per_A']:.4f} | "
                      f"{err['force_max_error_eV_per_A']:.3f} | {check['stable_runs']}/{check['runs']} |",
                      flush=True)

        # ---------------------------------------------------------------- stability
        runs = 8 if args.quick else 26
        steps = 4000 if args.quick else 10000
        starts = [test[i] for i in np.linspace(0, len(test) - 1, runs).round().astype(int)]
        variants = [
            ("pod (defaults: cutoff 6, guard)", "pod", {}, True),
            ("pod, cutoff 6, no guard", "pod", {}, False),
            ("pod, cutoff 5.5", "pod", {"cutoff": 5.5}, True),
            ("pod, cutoff 5", "pod", {"cutoff": 5.0}, True),
            ("pod, cutoff 5, no guard", "pod", {"cutoff": 5.0}, False),
            ("snap (defaults: cutoff 4, twojmax 8, guard)", "snap", {}, True),
        ]
        if "stability" not in args.tables:
            variants = []
        else:
            print(f"\nNVE stability: {runs} runs of {steps * 0.5 / 1000:g} ps at 300 K from test frames "
                  "(fails: |dE| > 0.1 eV or lost atoms; 'failed in': the 500-step chunk)\n")
            print("| variant | n_train | test F RMSE (eV/A) | stable runs | failed in steps (start of "
                  "chunk) | largest |dE| of stable runs (meV) |")
            print("|---|---:|---:|---:|---|---:|")
        for n in args.stability_sizes if variants else []:
            for name, kind, options, guard in variants:
                ff_dir = tmp / "variant"
                settings = PODSettings(**options) if kind == "pod" else None
                forcefield.train(subset(n), ff_dir, kind=kind, settings=settings, guard=guard,
                                 test_fraction=0.0, check_runs=0)
                err = forcefield.evaluate(ff_dir, test)
                results = [nve_survival(ff_dir, a, steps=steps, seed=k + 1) for k, a in enumerate(starts)]
                stable = [r for r in results if r[0]]
                failed = sorted(r[1] for r in results if not r[0])
                worst = max((r[2] for r in stable), default=float("nan"))
                print(f"| {name} | {min(n, len(pool))} | {err['force_rmse_eV_per_A']:.4f} | "
                      f"{len(stable)}/{runs} | {', '.join(map(str, failed)) or '-'} | {1000 * worst:.2f} |",
                      flush=True)

        # ---------------------------------------------------------------- cost
        if "cost" not in args.tables:
            return
        print("\ncost per force call (6-atom water dimer, one core, OMP_NUM_THREADS=1; potentials "
              "of the largest training size):\n")
        print("| evaluator | per call |")
        print("|---|---:|")
        for kind, ff_dir in largest.items():
            print(f"| {kind}: ForceFieldCalculator (ASE LAMMPSlib) | "
                  f"{1e3 * forcefield_call_time(ff_dir, test):.3f} ms |")
            print(f"| {kind}: LAMMPS run 0, driver style | {1e3 * driver_style_call_time(ff_dir, test):.3f} ms |")
            print(f"| {kind}: LAMMPS MD step (fix nve) | {1e6 * md_step_time(ff_dir, test[0]):.1f} us |")
        print(f"| tblite GFN2-xTB (reference) | {1e3 * tblite_call_time(test):.3f} ms |")


if __name__ == "__main__":
    main()
