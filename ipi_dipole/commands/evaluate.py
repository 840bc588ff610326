"""Compare a polarization model's predictions with a reference data set.

Prints the RMSE and the RMSPE (the RMSE over all components divided by one standard
deviation of all reference components of the evaluated set, pooled; in percent) of the
dipole (for the non-periodic structures that carry one: periodic dipoles are defined
only up to a polarization quantum) and of the Born charges Z*.

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


def evaluate(model, structures, where="data set"):
    """Error metrics of ``model`` on ``structures`` (dict of the --json keys)."""
    import numpy as np

    from ipi_dipole import data

    dm, dm_ref, dz, dz_ref = [], [], [], []
    for k, atoms in enumerate(structures):
        m, z = model.predict(atoms, where=f"{where}, structure {k}")
        z_ref = data.get_born_charges(atoms)
        if z_ref is not None:
            dz.append((z - z_ref).ravel())
            dz_ref.append(z_ref.ravel())
        results = data.get_results(atoms)
        if "dipole" in results and not atoms.pbc.any():
            dm.append(m - results["dipole"])
            dm_ref.append(np.asarray(results["dipole"], dtype=float))

    def metrics(diff, ref):
        if not diff:
            return None, None
        diff, ref = np.concatenate(diff), np.concatenate(ref)
        rmse = float(np.sqrt(np.mean(diff ** 2)))
        std = float(np.std(ref))
        return rmse, (rmse / std if std > 0 else None)

    dipole_rmse, dipole_rmspe = metrics(dm, dm_ref)
    bec_rmse, bec_rmspe = metrics(dz, dz_ref)
    return {"n_structures": len(structures), "dipole_rmse": dipole_rmse, "dipole_rmspe": dipole_rmspe,
            "bec_rmse": bec_rmse, "bec_rmspe": bec_rmspe}


def run(args):
    import json

    from ipi_dipole import data
    from ipi_dipole.model import PolarizationModel

    model = PolarizationModel.load(args.model)
    structures = data.load(args.data)
    result = evaluate(model, structures, where=args.data)
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
