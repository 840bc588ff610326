"""Compare a polarization model's predictions with a reference data set.

Prints the RMSE and the RMSPE (the RMSE over all components divided by one standard
deviation of all reference components of the evaluated set, pooled; in percent; see
ipi_dipole.metrics) of the dipole (for the non-periodic structures that carry one:
periodic dipoles are defined only up to a polarization quantum) and of the Born charges Z*.

With --json, prints one JSON object with the keys n_structures, dipole_rmse,
dipole_rmspe, bec_rmse, bec_rmspe (RMSPE as a fraction, not percent; null where the
data has no such reference).

Example:
    ipi-dipole evaluate model.npz test.extxyz --json
"""

HELP = "RMSE and RMSPE of a model's dipoles and Born charges on a data set"


def add_arguments(parser):
    parser.add_argument("model", help="model file written by 'ipi-dipole train'")
    parser.add_argument("data", help="extended-XYZ data set with reference Z* and/or dipoles")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args):
    import json

    from ipi_dipole import data, metrics
    from ipi_dipole.model import PolarizationModel

    model = PolarizationModel.load(args.model)
    structures = data.load(args.data)
    result = metrics.evaluate(model, structures, where=args.data)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.data}: {result['n_structures']} structures")
    if result["dipole_rmse"] is not None:
        pct = "n/a" if result["dipole_rmspe"] is None else f"{100 * result['dipole_rmspe']:.3f} %"
        print(f"dipole: RMSE {result['dipole_rmse']:.6f} e*A   RMSPE {pct}")
    else:
        print("dipole: no reference dipoles of molecules in the data set")
    if result["bec_rmse"] is not None:
        pct = "n/a" if result["bec_rmspe"] is None else f"{100 * result['bec_rmspe']:.3f} %"
        print(f"Z*:     RMSE {result['bec_rmse']:.6f} e     RMSPE {pct}")
    else:
        print("Z*: no reference Born charges in the data set")
    return 0
