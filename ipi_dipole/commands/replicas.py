"""Many NVE replicas from one equilibration run, run by i-PI in parallel with MPI.

  ipi-dipole replicas prepare EQUIL_TRAJ --n N --template NVE.xml -o RUN_DIR
  mpirun -n K ipi-dipole replicas run RUN_DIR

`prepare` picks N frames of an NVT/NPT trajectory at least --min-separation-ps apart
(default: 3 integrated autocorrelation times of the run's dipole, or of its potential
energy, read from the files beside the trajectory), with their cells and velocities
(from the run, or Maxwell-Boltzmann at its temperature with zero total momentum), and
writes RUN_DIR/replica_000/input.xml, ... from an NVE template, plus RUN_DIR/manifest.json.

`run` runs every unfinished replica, one i-PI process per replica, spread over the MPI
ranks (several per rank when N > K). A replica that fails is reported with the tail of
its log while the others go on. On SIGTERM/SIGINT/SIGUSR1 the running replicas
checkpoint and stop; running the same command again resumes them from their
checkpoints (outputs are cut back to the checkpoint's step first, so every step appears
exactly once) and skips the finished ones (RUN_DIR/replica_*/DONE).

Exit status of `run`: the number of replicas not finished (0 = all finished; capped at 125).
"""

import argparse

HELP = "prepare N NVE replicas from an equilibration run, and run them with MPI (resumable)"


PREPARE_DOC = """Pick N frames of an NVT/NPT run and write one NVE i-PI input per replica.

Each RUN_DIR/replica_NNN/ gets input.xml (the template with its own seed, output prefix,
socket address or absolute <ffdirect> paths, total steps, a 'step' column in the
properties, the velocities, and a <checkpoint> written last) and start.xyz (positions
and cell). RUN_DIR/manifest.json records the source frames, times,
seeds, steps, template hash and how the separation and temperature were chosen.
Files beside EQUIL_TRAJ (i-PI input/checkpoint, properties, dipole extras, velocity
trajectory) are found by their content.
"""

RUN_DOC = """Run or resume every unfinished replica of RUN_DIR: one i-PI child process per replica,
replicas handed out to the MPI ranks by rank 0 as they become free.

  mpirun -n K ipi-dipole replicas run RUN_DIR      (or without mpirun: one rank)

A failed replica is reported with the tail of its log (RUN_DIR/replica_NNN/ipi.log) and
the others go on. SIGTERM, SIGINT or SIGUSR1 make the running replicas checkpoint and
stop; the same command resumes them, cutting each output back to the checkpoint's step
so that every MD step is written exactly once. Finished replicas have a DONE file.
RUN_DIR/status.json holds the outcome of the last invocation.

Exit status: the number of replicas not finished (0 = all finished; at most 125).
"""


def add_arguments(parser):
    sub = parser.add_subparsers(dest="replicas_command", metavar="{prepare,run}")
    sub.required = True

    p = sub.add_parser("prepare", help="write N replica inputs and a manifest from an NVT/NPT trajectory",
                       description=PREPARE_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trajectory", nargs="+", metavar="EQUIL_TRAJ",
                   help="i-PI xyz/pdb trajectory, extended XYZ, or several i-PI checkpoint files")
    p.add_argument("--n", type=int, required=True, help="number of replicas")
    p.add_argument("--template", required=True, help="i-PI XML with NVE dynamics")
    p.add_argument("-o", "--output", required=True, metavar="RUN_DIR", help="directory to create")
    p.add_argument("--min-separation-ps", type=float, metavar="PS",
                   help="minimum time between starting frames (default: 3 integrated autocorrelation "
                        "times of the run's dipole or potential energy)")
    p.add_argument("--skip-ps", type=float, metavar="PS",
                   help="ignore the start of the run (default: one separation)")
    p.add_argument("--velocities", choices=["auto", "from-trajectory", "maxwell-boltzmann"], default="auto",
                   help="auto: from the run when it has them, else Maxwell-Boltzmann")
    p.add_argument("--velocity-trajectory", metavar="FILE",
                   help="i-PI velocity trajectory (default: found beside EQUIL_TRAJ by content)")
    p.add_argument("--properties", metavar="FILE",
                   help="i-PI properties file of the run (default: found beside EQUIL_TRAJ by content)")
    p.add_argument("--temperature", type=float, metavar="K",
                   help="temperature for Maxwell-Boltzmann velocities (default: the run's)")
    p.add_argument("--equil-timestep-fs", type=float, metavar="FS",
                   help="time step of the equilibration run (default: from its input or properties)")
    p.add_argument("--frame-interval-fs", type=float, metavar="FS",
                   help="time between frames, for trajectories without step numbers")
    p.add_argument("--seed", type=int, help="base seed (default: random, recorded in the manifest)")
    p.add_argument("--steps", type=int, help="NVE steps per replica (default: the template's <total_steps>)")
    p.add_argument("--checkpoint-stride", type=int, metavar="STEPS",
                   help="steps between checkpoints (default: the template's, else min(1000, steps/10))")
    p.add_argument("--driver", metavar="COMMAND",
                   help="for <ffsocket> templates: the driver client to start per replica, with "
                        "{address}, {port} or {socket_path} where its socket goes and {ipi_input} for "
                        "the XML i-PI was started on (input.xml or the checkpoint it resumes from), e.g. "
                        "\"ipi-dipole drive --model m.npz --forces lammps:in.lmp --unix {address} "
                        "--ipi-input {ipi_input}\"")
    p.add_argument("--force", action="store_true", help="overwrite an existing run directory")
    p.set_defaults(_replicas=_run_prepare)

    r = sub.add_parser("run", help="run (or resume) the replicas of RUN_DIR, under mpirun or alone",
                       description=RUN_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("run_dir", metavar="RUN_DIR")
    r.add_argument("--threads", type=int, metavar="T",
                   help="OMP_NUM_THREADS for each i-PI/driver (default: the environment's, else 1)")
    r.add_argument("--stop-grace", type=float, default=30.0, metavar="S",
                   help="seconds a replica gets to checkpoint after a stop request before SIGTERM (default 30)")
    r.add_argument("--status-interval", type=float, metavar="S",
                   help="seconds between status lines when not on a terminal (default 60)")
    r.add_argument("--progress", choices=["auto", "bar", "lines", "none"], default="auto")
    r.add_argument("--only", nargs="+", metavar="NAME", help="run only these replicas (e.g. replica_003)")
    r.set_defaults(_replicas=_run_run)


def run(args):
    return args._replicas(args)


def _run_prepare(args):
    from pathlib import Path

    from ipi_dipole.errors import InputError
    from ipi_dipole.replicas import PrepareOptions, prepare

    if args.n < 1:
        raise InputError("--n must be at least 1")
    prepare(PrepareOptions(
        trajectory=[Path(t) for t in args.trajectory], n=args.n, template=Path(args.template),
        run_dir=Path(args.output), min_separation_ps=args.min_separation_ps, skip_ps=args.skip_ps,
        velocities=args.velocities,
        velocity_trajectory=Path(args.velocity_trajectory) if args.velocity_trajectory else None,
        properties=Path(args.properties) if args.properties else None,
        temperature=args.temperature, equil_timestep_fs=args.equil_timestep_fs,
        frame_interval_fs=args.frame_interval_fs, seed=args.seed, steps=args.steps,
        checkpoint_stride=args.checkpoint_stride, driver=args.driver, force=args.force))
    return 0


def _run_run(args):
    from ipi_dipole.replicas import run_replicas

    return run_replicas(args.run_dir, threads=args.threads, stop_grace=args.stop_grace,
                        status_interval=args.status_interval, progress=args.progress, only=args.only)
