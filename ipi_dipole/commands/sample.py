"""Sample molecular configurations by Langevin MD on a linear heating ramp.

The thermostat temperature rises linearly from --t-start to --t-end over the run; every
K-th frame is appended to TRAJ (flushed as it goes) with the engine's energy, forces and
dipole, ready for 'ipi-dipole label'. STRUCTURE is a file ASE can read (its last frame) or
a built-in name: water-dimer (the S22 water dimer).

Sampling as in Schmiedmayer & Kresse (H mass 8 u, 1.5 fs, 10 -> 320 K), 30 ps:
  ipi-dipole sample water-dimer -o dimer.extxyz --steps 20000 --mass H=8 \\
      --timestep-fs 1.5 --t-start 10 --t-end 320 --every 20

Charge and spin come from the structure's info (charge=Q, uhf=N or spin=2S+1).

Crystals: give a periodic STRUCTURE (e.g. a supercell in extended XYZ or POSCAR) and the
forces with --calculator ase:MODULE:CLASS[:JSON_KWARGS] (any ASE calculator, as the
driver's --forces ase:...; e.g. a fitted force field), at one --temperature; the frames
are the bulk configurations to label with 'ipi-dipole label --engine qe':
  ipi-dipole sample Cu.extxyz -o cu.extxyz --calculator ase:ase.calculators.emt:EMT \
      --temperature 300 --steps 2000 --every 100 --timestep-fs 2
"""

HELP = "sample configurations by Langevin MD on a heating ramp (tblite, PySCF or any ASE calculator)"


def add_arguments(parser):
    parser.add_argument("structure", metavar="STRUCTURE",
                        help="starting structure: a file, or a built-in name (water-dimer)")
    parser.add_argument("-o", "--output", required=True, metavar="TRAJ.extxyz",
                        help="trajectory to write (extended XYZ)")
    parser.add_argument("--engine", choices=("tblite", "pyscf"), default="tblite",
                        help="force engine (default tblite)")
    parser.add_argument("--calculator", metavar="SPEC",
                        help="forces from an ASE calculator instead of --engine: "
                             "ase:MODULE:CLASS[:JSON_KWARGS] (molecules or crystals)")
    parser.add_argument("--method", help="tblite method: GFN2-xTB (default) or GFN1-xTB")
    parser.add_argument("--xc", help="PySCF functional (default B3LYP)")
    parser.add_argument("--basis", help="PySCF basis set (default def2-SVP)")
    parser.add_argument("--steps", type=int, required=True, metavar="N", help="number of MD steps")
    parser.add_argument("--timestep-fs", type=float, default=1.5, metavar="DT",
                        help="time step in fs (default 1.5)")
    parser.add_argument("--t-start", type=float, default=10.0, metavar="K",
                        help="thermostat temperature at the first step, K (default 10)")
    parser.add_argument("--t-end", type=float, default=320.0, metavar="K",
                        help="thermostat temperature at the last step, K (default 320)")
    parser.add_argument("--temperature", type=float, metavar="K",
                        help="constant thermostat temperature: sets --t-start and --t-end")
    parser.add_argument("--friction", type=float, default=0.01, metavar="PER_FS",
                        help="Langevin friction in 1/fs (default 0.01)")
    parser.add_argument("--mass", action="append", default=[], metavar="SYMBOL=U",
                        help="atomic mass in u for one element, e.g. H=8 (repeatable)")
    parser.add_argument("--every", type=int, default=10, metavar="K",
                        help="write every K-th step (default 10)")
    parser.add_argument("--seed", type=int, help="random seed (default: a fresh one, printed)")
    parser.add_argument("--overwrite", action="store_true", help="replace TRAJ if it exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args):
    from pathlib import Path

    import numpy as np

    from ipi_dipole.engines import get_engine
    from ipi_dipole.errors import InputError
    from ipi_dipole.sampling import langevin_heating, parse_masses
    from ipi_dipole.structures import load_structure

    output = Path(args.output)
    if output.exists() and output.stat().st_size and not args.overwrite:
        raise InputError(f"{output}: exists; pass --overwrite to replace it, or choose another -o")
    from ipi_dipole.sampling import calculator_from_spec

    atoms = load_structure(args.structure)
    if args.temperature is not None:
        args.t_start = args.t_end = args.temperature
    if args.calculator:
        calculator, description = calculator_from_spec(args.calculator), args.calculator
    else:
        engine = get_engine(args.engine, method=args.method, xc=args.xc, basis=args.basis)
        engine.check(atoms, where=str(args.structure))
        calculator, description = engine.calculator(), engine.description
    masses = parse_masses(args.mass, atoms)
    seed = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
    if output.exists():
        output.unlink()
    n = langevin_heating(atoms, calculator, output, args.steps,
                         timestep_fs=args.timestep_fs, t_start=args.t_start, t_end=args.t_end,
                         friction=args.friction, masses=masses, every=args.every, seed=seed,
                         progress=not args.no_progress)
    print(f"{output}: {n} frames from {args.steps} steps of {args.timestep_fs} fs, "
          f"{args.t_start:g} -> {args.t_end:g} K, {description}, seed {seed}")
    return 0
