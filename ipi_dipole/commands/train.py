"""Fit a derivative-learning polarization model (ipi_dipole.model.PolarizationModel)
on a data set with Born charges and/or dipoles, and save it to one .npz file.

Targets: 'bec' fits the Born charges Z* only (the dipole follows as their integral),
'dipole' the dipoles only, 'both' both, each normalised dipole component weighted
--dipole-weight times a normalised Z* component. Dipoles of periodic cells are never
fitted (they are defined only up to a polarization quantum).

Defaults (cutoff 5.5 A, 8 radial functions, 4-body channels on the first 4, 500
references per species, ridge 1e-3) suit molecules like the water dimer; for liquid water
the validation-tuned choice of benchmarks/liquid_water.py was --cutoff 5.0 --n-radial 12
--rank3-weight 0.1 --regularization 1e-2 --n-ref 1000 (Z* RMSE 0.024 e against 0.035 e with
the defaults; see benchmarks/RESULTS_model.md).

Example:
    ipi-dipole train dimers.extxyz -o model.npz --targets both
"""

HELP = "fit a polarization model (dipole and Born charges) on a data set"


def add_arguments(parser):
    parser.add_argument("data", help="extended-XYZ data set (see ipi_dipole.data)")
    parser.add_argument("-o", "--output", required=True, help="model file to write (.npz)")
    parser.add_argument("--targets", choices=("bec", "dipole", "both"), default="bec",
                        help="what to fit (default: bec)")
    parser.add_argument("--n-ref", type=int, default=500, metavar="N",
                        help="sparse reference environments per species (default 500)")
    parser.add_argument("--cutoff", type=float, default=5.5, metavar="R",
                        help="descriptor cutoff in Angstrom (default 5.5)")
    parser.add_argument("--n-radial", type=int, default=8, metavar="N",
                        help="radial basis functions per species (default 8)")
    parser.add_argument("--n-radial4", type=int, default=4, metavar="N",
                        help="radial functions per species in the 4-body features (default 4; 0: none)")
    parser.add_argument("--rank3-weight", type=float, default=0.0, metavar="W",
                        help="weight of the rank-2 x rank-3 3-body block (default 0: left out)")
    parser.add_argument("--dipole-weight", type=float, default=10.0, metavar="W",
                        help="weight of dipole components with --targets both (default 10)")
    parser.add_argument("--regularization", type=float, default=None, metavar="L",
                        help="ridge parameter of the normalised problem (default: the model's)")
    parser.add_argument("--zeta", type=int, default=0, metavar="Z",
                        help="power of the scalar kernel (0: linear model, default)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--tune", action="store_true",
                        help="choose cutoff, radial functions, ridge, ... by k-fold cross-validation on "
                             "the training set (ipi_dipole.tuning), then fit the winner on all of it")
    parser.add_argument("--tune-folds", type=int, default=3, metavar="K",
                        help="folds of --tune (contiguous blocks of structures; default 3)")
    parser.add_argument("--tune-grid", metavar="FILE",
                        help="JSON object of the axes to search with --tune, e.g. "
                             '{"regularization": [1e-3, 1e-2], "descriptor__cutoff": [5.0, 6.0]} '
                             "(default: ipi_dipole.tuning.BULK_GRID for periodic data, MOLECULE_GRID else)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args):
    import warnings

    from ipi_dipole import data, metrics
    from ipi_dipole.descriptors import DescriptorSettings
    from ipi_dipole.model import PolarizationModel

    structures = data.load(args.data)
    descriptor = DescriptorSettings(cutoff=args.cutoff, n_radial=args.n_radial,
                                    n_radial4=args.n_radial4, rank3_weight=args.rank3_weight)
    options = dict(descriptor=descriptor, n_ref=args.n_ref, targets=args.targets,
                   dipole_weight=args.dipole_weight, seed=args.seed, zeta=args.zeta)
    if args.regularization is not None:
        options["regularization"] = args.regularization
    model = PolarizationModel(**options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if args.tune:
            from ipi_dipole import tuning

            grid = _read_grid(args.tune_grid) if args.tune_grid else None
            print(f"tuning by {args.tune_folds}-fold cross-validation on {args.data}:")
            model, result = tuning.tune(model, structures, grid, args.tune_folds,
                                        progress=not args.quiet, log=print)
            print(result.table())
            best = ", ".join(f"{k}={v}" for k, v in result.best_params.items()) or "the starting settings"
            print(f"chosen: {best}")
        else:
            model.fit(structures, progress=not args.quiet)
    for w in caught:
        print(f"warning: {w.message}")
    model.save(args.output)
    info = model.training_info_
    refs = ", ".join(f"{s} {n}" for s, n in info["n_references"].items())
    print(f"{args.data}: {info['n_structures']} structures, {info['n_atoms']} atoms; "
          f"references per species: {refs}")
    # the training-set errors by the definitions of 'ipi-dipole evaluate', for comparison
    errors = metrics.evaluate(model, structures, where=args.data)
    for key, label in (("dipole", "training dipole RMSE: {:.6f} e*A"), ("bec", "training Z* RMSE:     {:.6f} e  ")):
        if errors[f"{key}_rmse"] is not None:
            rmspe = errors[f"{key}_rmspe"]
            pct = "n/a" if rmspe is None else f"{100 * rmspe:.3f} %"
            print(label.format(errors[f"{key}_rmse"]) + f"   RMSPE {pct}")
    print(f"wrote {args.output}")
    return 0


def _read_grid(path):
    """The --tune-grid JSON file: an object of axis name -> list of values."""
    import json

    from ipi_dipole.errors import InputError

    try:
        with open(path) as fh:
            grid = json.load(fh)
    except FileNotFoundError:
        raise InputError(f"{path}: no such tuning-grid file") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise InputError(f"{path}: expected an object of axis name -> non-empty list of values")
    return grid
