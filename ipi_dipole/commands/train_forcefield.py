"""Train a machine-learned force field with LAMMPS from the energies (eV) and forces
(eV/Angstrom) of a data set, and measure it on held-out structures.

The structures are split at random (seeded) into a training and a test set. --kind pod
(default) fits a proper-orthogonal-descriptor potential with LAMMPS's own `fitpod`
(ML-POD); --kind snap fits a SNAP potential (ML-SNAP bispectrum from LAMMPS
`compute snap`, linear least squares; accurate on data but, for molecules, often unstable
in MD: prefer POD). The fitted potential is then run by LAMMPS on every test structure
(`run 0`) and compared with the reference energies and forces.

Two safeguards for molecular dynamics with the result:
  guard walls   repulsive walls below 0.95 x the shortest distance of each species pair
                in the training set: exactly zero wherever the data are, they keep
                dynamics out of holes the fitted potential may have where it
                extrapolates (--no-guard: none);
  NVE check     4 short NVE runs in LAMMPS (1 ps, 300 K, real masses) from held-out
                structures must conserve energy; if not, a warning says so: the
                dynamics reaches configurations the data do not cover.

FF_DIR receives:
  forcefield.lammps   LAMMPS commands loading the potential (units metal). Line 1,
                      '# species: O H', is the atom-type order. Create box and atoms,
                      then 'include FF_DIR/forcefield.lammps'. Moved the directory? Define
                      'variable ffdir string NEW_DIR' before the include (the ipi-dipole
                      driver needs nothing: it runs the snippet from its directory).
  pod_*.pod / snap.*  the potential files; guard.table, the walls
  report.json         split, settings, test and training RMSE, NVE check, warnings
  fitpod.log ...      the LAMMPS log of the fit

Data: extended XYZ as written by ipi-dipole (energy and forces as calculator results).
Molecules (pbc F F F) and periodic structures (pbc T T T) both work, not mixed.

Example:
  ipi-dipole train-forcefield labels.extxyz -o ff --test-fraction 0.1 --seed 1
"""

HELP = "train a LAMMPS machine-learned force field (POD or SNAP) on energies and forces"


def add_arguments(parser):
    parser.add_argument("data", help="extended-XYZ data set with energies and forces")
    parser.add_argument("-o", "--output", required=True, metavar="FF_DIR",
                        help="force-field directory to write")
    parser.add_argument("--kind", choices=("pod", "snap"), default="pod",
                        help="descriptors: LAMMPS ML-POD fitpod (default) or ML-SNAP")
    parser.add_argument("--test-fraction", type=float, default=0.1, metavar="F",
                        help="fraction of structures held out for the test errors (default 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/test split (default 0)")
    parser.add_argument("--species", nargs="+", metavar="SYMBOL",
                        help="LAMMPS atom-type order (default: order of first appearance)")
    parser.add_argument("--cutoff", type=float, metavar="R",
                        help="descriptor cutoff radius in Angstrom (default 6.0 for POD, 4.0 for SNAP)")
    parser.add_argument("--no-guard", action="store_true",
                        help="no repulsive walls below the shortest training distance of each "
                             "species pair (they are zero on the data and keep MD out of the "
                             "holes an extrapolating potential can have)")
    check = parser.add_argument_group("NVE check (LAMMPS, 0.5 fs, real masses, from held-out structures)")
    check.add_argument("--check-runs", type=int, default=4, metavar="N",
                       help="short NVE runs that must conserve energy (default 4; 0: skip)")
    check.add_argument("--check-steps", type=int, default=2000, metavar="STEPS",
                       help="steps per run (default 2000 = 1 ps)")
    check.add_argument("--check-temperature", type=float, default=300.0, metavar="K",
                       help="temperature of the initial velocities (default 300 K)")
    fit = parser.add_argument_group("least-squares fit")
    fit.add_argument("--energy-weight", type=float, metavar="W",
                     help="weight of per-atom energies (default 100 for POD, 10 for SNAP)")
    fit.add_argument("--force-weight", type=float, metavar="W",
                     help="weight of force components (default 1)")
    fit.add_argument("--regularization", type=float, metavar="L",
                     help="ridge parameter (default 1e-10 for POD, 1e-8 for SNAP)")
    pod = parser.add_argument_group("POD basis (--kind pod)")
    pod.add_argument("--inner-cutoff", type=float, metavar="R",
                     help="inner radius rin in Angstrom (default 0.5)")
    pod.add_argument("--twobody-radial", type=int, metavar="N", help="two-body radial functions (default 8)")
    pod.add_argument("--threebody-radial", type=int, metavar="N",
                     help="three-body radial functions (default 6)")
    pod.add_argument("--threebody-angular", type=int, metavar="P",
                     help="three-body angular degree (default 4)")
    pod.add_argument("--fourbody-radial", type=int, metavar="N",
                     help="four-body radial functions (default 0: no four-body terms)")
    pod.add_argument("--fourbody-angular", type=int, metavar="P", help="four-body angular degree (default 0)")
    snap = parser.add_argument_group("SNAP basis (--kind snap)")
    snap.add_argument("--twojmax", type=int, metavar="J2", help="SNAP band limit 2*Jmax, even (default 8)")


_POD_OPTIONS = {"cutoff": "cutoff", "inner_cutoff": "inner_cutoff", "energy_weight": "energy_weight",
                "force_weight": "force_weight", "regularization": "regularization",
                "twobody_radial": "twobody_radial", "threebody_radial": "threebody_radial",
                "threebody_angular": "threebody_angular", "fourbody_radial": "fourbody_radial",
                "fourbody_angular": "fourbody_angular"}
_SNAP_OPTIONS = {"cutoff": "cutoff", "energy_weight": "energy_weight", "force_weight": "force_weight",
                 "regularization": "regularization", "twojmax": "twojmax"}


def _settings(args):
    from ipi_dipole.errors import InputError

    if args.kind == "pod":
        from ipi_dipole.forcefield import PODSettings as cls
        options, other = _POD_OPTIONS, _SNAP_OPTIONS
    else:
        from ipi_dipole.forcefield import SNAPSettings as cls
        options, other = _SNAP_OPTIONS, _POD_OPTIONS
    wrong = [k for k in other if k not in options and getattr(args, k) is not None]
    if wrong:
        raise InputError(f"--{wrong[0].replace('_', '-')} does not apply to --kind {args.kind}")
    given = {field: getattr(args, opt) for opt, field in options.items() if getattr(args, opt) is not None}
    return cls(**given)


def run(args):
    from ipi_dipole import forcefield

    settings = _settings(args)
    print(f"training a {args.kind.upper()} force field on {args.data} ...", flush=True)
    report = forcefield.train(args.data, args.output, kind=args.kind, test_fraction=args.test_fraction,
                              seed=args.seed, species=args.species, settings=settings,
                              guard=not args.no_guard, check_runs=args.check_runs,
                              check_steps=args.check_steps, check_temperature_K=args.check_temperature)
    fit = report["fit"]
    print(f"species (LAMMPS types 1..): {' '.join(report['species'])}")
    print(f"structures: {report['n_train']} train, {report['n_test']} test; "
          f"{fit['n_coefficients']} coefficients; fit {report['seconds']['fit']:.1f} s")
    print(f"{'set':<6} {'n':>5} {'E RMSE (meV/atom)':>18} {'F RMSE (eV/A)':>14} {'F max err (eV/A)':>17}")
    for name in ("train", "test"):
        e = report[name]
        if e["n"]:
            print(f"{name:<6} {e['n']:>5} {1000 * e['energy_rmse_eV_per_atom']:>18.3f} "
                  f"{e['force_rmse_eV_per_A']:>14.4f} {e['force_max_error_eV_per_A']:>17.4f}")
    if report["guard"]:
        walls = ", ".join(f"{k} {v['wall_A']:.2f}" for k, v in report["guard"]["pairs"].items())
        print(f"guard walls (A): {walls}")
    check = report["md_check"]
    if check["runs"]:
        drift = max(r["max_abs_drift_eV"] for r in check["details"])
        print(f"NVE check: {check['stable_runs']}/{check['runs']} runs of {check['steps']} steps at "
              f"{check['temperature_K']:g} K conserve energy (largest |dE| {1000 * drift:.2f} meV)")
    for w in report["warnings"]:
        print(f"warning: {w}")
    print(f"wrote {args.output}/forcefield.lammps (include it after creating box and atoms) "
          f"and {args.output}/report.json")
    return 0
