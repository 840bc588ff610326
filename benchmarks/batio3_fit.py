"""Bulk BaTiO3 (135 atoms, three species): fit time and test Born-charge error vs training frames.

Data: the MIT-licensed Allegro-pol BaTiO3 set in ``../shared/fixtures/bulk_batio3_allegro_pol/``
(59 frames at finite temperature, QE Born charges, read as ``born_charge`` with the
convention settled in :mod:`ipi_dipole.data`). Default hyper-parameters, trained on Z*
only (a bulk cell's dipole is defined only up to a quantum); the first 10 / 20 / 40 frames
train, the last 19 test. RMSPE = RMSE / standard deviation of all test Z* components.

    OMP_NUM_THREADS=1 python benchmarks/batio3_fit.py [--frames 10 20 40]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "bulk_batio3_allegro_pol" / "BaTiO3.xyz"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[10, 20, 40], help="training set sizes")
    args = parser.parse_args(argv)
    if not DATA.exists():
        print(f"{DATA}: missing (the shared fixtures beside the project)", file=sys.stderr)
        return 2
    from ipi_dipole import PolarizationModel, data

    frames = data.load(DATA)
    test = frames[40:]
    reference = np.concatenate([data.get_born_charges(a).ravel() for a in test])
    print(f"{DATA.name}: {len(frames)} frames of {len(frames[0])} atoms; test = frames 40-{len(frames) - 1}")
    print()
    print("| training frames | fit time (s) | test Z* RMSE (e) | test Z* RMSPE | training Z* RMSE (e) |")
    print("|---|---|---|---|---|")
    for n in args.frames:
        model = PolarizationModel(targets="bec")
        t = time.perf_counter()
        model.fit(frames[:n])
        elapsed = time.perf_counter() - t
        err = np.concatenate([(model.predict(a)[1] - data.get_born_charges(a)).ravel() for a in test])
        train_err = np.concatenate([(model.predict(a)[1] - data.get_born_charges(a)).ravel()
                                    for a in frames[:n]])
        rmse = np.sqrt(np.mean(err ** 2))
        print(f"| {n} | {elapsed:.1f} | {rmse:.4f} | {100 * rmse / reference.std():.2f} % | "
              f"{np.sqrt(np.mean(train_err ** 2)):.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
