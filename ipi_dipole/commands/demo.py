"""Run the whole pipeline on the gas-phase water dimer, tblite GFN2-xTB as the reference:

  1. Langevin MD with tblite to sample configurations (10 -> 320 K, H mass 8 u, 1.5 fs)
  2. tblite labels: energy, forces, dipole and finite-field Z* of every frame
  3. the polarization model trained on Z* only; its held-out RMSPE is printed
  4. a POD force field trained with LAMMPS; its held-out RMSE is printed
  5. NVT equilibration in i-PI: LAMMPS forces + model extras, served in-process
  6. N NVE replicas from uncorrelated NVT frames (shared over the ranks under mpirun)
  7. the replica-averaged IR spectrum as CSV and PNG, bands beside GFN2-xTB harmonic ones

Each stage keeps its output in DIR/NN-name and is reused on a rerun (a killed demo
continues where it stopped); --force redoes everything. Every stage is printed as the
ipi-dipole command that does it, to rerun on your own data.

  ipi-dipole demo --quick              # a few minutes on 2 cores
  mpirun -n 2 ipi-dipole demo -o demo  # the full demo, replicas on 2 ranks
"""

import argparse

HELP = "run the whole pipeline on the water dimer (sample, label, train, MD, spectrum)"


def add_arguments(parser):
    parser.add_argument("-o", "--output", default="ipi-dipole-demo", metavar="DIR",
                        help="directory for every stage's output (default ./ipi-dipole-demo)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller sampling and shorter, fewer replicas (a few minutes on 2 cores)")
    parser.add_argument("--force", action="store_true", help="redo every stage")
    parser.add_argument("--replicas", type=int, metavar="N", help="number of NVE replicas")
    parser.add_argument("--nve-steps", type=int, metavar="STEPS", help="steps per NVE replica (0.5 fs each)")
    parser.add_argument("--temperature", type=float, metavar="K",
                        help="temperature of the NVT run the replicas start from (default 150 K: "
                             "at 300 K the gas-phase dimer dissociates within a few ps)")
    # internal: how a rank of an MPI job runs the serial stages in a child process
    parser.add_argument("--settings-json", help=argparse.SUPPRESS)
    parser.add_argument("--stop-before-replicas-run", action="store_true", help=argparse.SUPPRESS)


def run(args):
    import dataclasses
    import json
    import time

    from ipi_dipole.demo import DemoFailed, DemoSettings, run_demo

    if args.settings_json:
        settings = DemoSettings(**json.loads(args.settings_json))
    else:
        settings = DemoSettings.quick() if args.quick else DemoSettings()
    changes = {k: v for k, v in (("n_replicas", args.replicas), ("nve_steps", args.nve_steps),
                                 ("temperature", args.temperature)) if v is not None}
    settings = dataclasses.replace(settings, **changes)
    start = time.perf_counter()
    try:
        summary = run_demo(args.output, settings, force=args.force,
                           stop_before_run=args.stop_before_replicas_run)
    except DemoFailed as exc:
        print(f"ipi-dipole demo: {exc}")
        return 1
    if summary and "07-spectrum" in summary:
        spectrum = summary["07-spectrum"]
        print(f"demo finished in {time.perf_counter() - start:.0f} s")
        print(f"spectrum: {spectrum['csv']}" + (f" and {spectrum['png']}" if spectrum.get("png") else ""))
    return 0
