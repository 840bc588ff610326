"""Does the polynomial kernel help? Water dimer, N = 100, the linear vs polynomial kernels.

Same data and splits as dimer_learning_curve.py (one draw of 100 training structures,
seed 100; test on the held-out run). The polynomial kernel multiplies the lambda = 1
kernel by ((1 + k) / 2)^zeta, k the cosine similarity of standardised invariants; its fit
builds the kernel design matrix with one gradient pass per reference component, so it is
run on the 2- and 3-body descriptors (n_radial4 = 0) to stay affordable, next to the linear
model with the same descriptors.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/dimer_polynomial_kernel.py [--zetas 0 1 2]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _model_common as _common  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zetas", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-train", type=int, default=100)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from ipi_dipole import PolarizationModel, data
    from ipi_dipole.descriptors import DescriptorSettings

    pool_path, test_path = _common.dimer_sets()
    pool, test = data.load(pool_path), data.load(test_path)
    order = np.random.default_rng(0).permutation(len(pool))
    candidates = [pool[i] for i in order[:-200]]
    subset = [candidates[i] for i in np.random.default_rng(100).choice(len(candidates), args.n_train, replace=False)]
    print("| model | target | dipole RMSPE | Z* RMSPE | fit time |")
    print("|---|---|---|---|---|")
    for zeta in args.zetas:
        for targets in ("bec", "both"):
            t = time.perf_counter()
            model = PolarizationModel(DescriptorSettings(n_radial4=0), targets=targets, regularization=1e-3,
                                      zeta=zeta).fit(subset)
            dt = time.perf_counter() - t
            r = _common.errors(model, test)
            name = "linear" if zeta == 0 else f"polynomial, zeta = {zeta}"
            print(f"| 2-/3-body, {name} | {targets} | {100 * r['dipole_rmspe']:.3f} % | {100 * r['bec_rmspe']:.2f} % "
                  f"| {dt:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
