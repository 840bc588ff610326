"""Cost of our lambda = 1 descriptor with position gradients next to featomic's lambda-SOAP.

For liquid water boxes of 64 and 128 molecules, one thread on both sides, prints the median
wall time (ms) per structure of

- ours: ``Descriptor.environments`` (neighbour list, Bessel radial table, moments rho0..rho2)
  + ``features`` (N, F, 3) + ``feature_gradient_sum`` (N, 3, 3, S, F): exactly the per-structure
  calls of ``PolarizationModel`` fitting on M and Z*. Default settings: cutoff 5.5 A, 8 radial
  functions per species, 4-body blocks on the first 4 (F = 1392 features per component).
  Beside it, ``PolarizationModel.predict`` (M and Z*, contracted with the fitted coefficients,
  neighbour list reused within the skin as in MD) of a default model fitted on train10.
- featomic: ``SphericalExpansion.compute(gradients=["positions"])`` (cutoff 5.5 A, shifted
  cosine width 0.5 A, Gaussian density width 0.3 A, 8 GTOs, l <= 5; featomic's neighbour list
  included), then the lambda = 1, sigma = +1 products ``sum C(l m1, l+1 m2 | 1 mu) c_l c_(l+1)``
  for l = 0..4 (featomic's own real CG coefficients; (l+1, l) is redundant for a self-product
  and featomic drops it too) over all (species, n) channel pairs: F = 5 (2 x 8)^2 = 1280 per
  component, and their gradients summed to the same (N, 3, 3, S, F) array as ours.
  featomic's Clebsch-Gordan classes (``EquivariantPowerSpectrum``, ``DensityCorrelations``)
  refuse inputs with gradients (featomic 0.6.7: "Clebsch Gordan combinations with gradients
  not yet implemented"), so the product step is numpy here, the cheapest way found: the
  sparse per-neighbour-type gradient blocks as featomic returns them (no densifying
  ``keys_to_properties``), grouped by moved atom, one batched gemm per term and 16 moved
  atoms contracting over (centre, m); no per-pair product gradient is ever stored.
  The table also shows the spherical expansion with gradients alone (a floor for any
  featomic-based pipeline), and ``EquivariantPowerSpectrum`` (lambda = 1 key only, no
  gradients), whose features are checked equal to the ones here before timing.

featomic is not a dependency of ipi-dipole; install it in the venv to run this:
    pip install featomic        # pulls metatensor-core and metatensor-operations

Usage (threads are pinned to one here: NUMBA_NUM_THREADS=1, RAYON_NUM_THREADS=1):
    OMP_NUM_THREADS=1 python benchmarks/descriptor_vs_featomic.py [--repeat 11] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

# both sides on one thread: numba and rayon (featomic) read these when their pools start
os.environ["NUMBA_NUM_THREADS"] = "1"
os.environ["RAYON_NUM_THREADS"] = "1"

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _model_common as _common  # noqa: E402

try:
    import featomic
    import metatensor
    from featomic.clebsch_gordan import EquivariantPowerSpectrum, calculate_cg_coefficients
    from metatensor import Labels
except ImportError as error:
    print(f"featomic is not installed ({error}): pip install featomic "
          "(it brings metatensor-core and metatensor-operations)", file=sys.stderr)
    sys.exit(2)

CUTOFF, N_RADIAL, MAX_ANGULAR = 5.5, 8, 5
CHUNK = 16  # moved atoms per batched gemm of the featomic-side product step


class FeatomicLambdaSoap:
    """lambda = 1, sigma = +1 power spectrum of featomic's spherical expansion, with gradients.

    Parameters
    ----------
    numbers : sequence of int
        Atomic numbers, sorted (ours sorts symbols: H, O, which is the same order here).
    """

    def __init__(self, numbers):
        self.numbers = list(numbers)
        self.hypers = {
            "cutoff": {"radius": CUTOFF, "smoothing": {"type": "ShiftedCosine", "width": 0.5}},
            "density": {"type": "Gaussian", "width": 0.3},
            "basis": {"type": "TensorProduct", "max_angular": MAX_ANGULAR,
                      "radial": {"type": "Gto", "max_radial": N_RADIAL - 1}},
        }
        self.calculator = featomic.SphericalExpansion(**self.hypers)
        cg = calculate_cg_coefficients(2 * MAX_ANGULAR, "python-dense", "numpy", np.float64, "cpu")
        # C[m1, m2, mu] of (l, l+1 -> 1): the only lambda = 1 products with sigma = +1 besides
        # (l+1, l), redundant for a self-product (featomic filters it the same way)
        self.cg = [np.ascontiguousarray(cg.block({"l1": l, "l2": l + 1, "lambda": 1}).values[0, ..., 0])
                   for l in range(MAX_ANGULAR)]
        self.k = len(self.numbers) * N_RADIAL  # channels (neighbour species, n)

    @property
    def n_features(self) -> int:
        return MAX_ANGULAR * self.k ** 2

    def expansion(self, atoms):
        """featomic's spherical expansion with position gradients (blocks per neighbour type)."""
        return self.calculator.compute(atoms, gradients=["positions"])

    def compute(self, atoms):
        """Features (N, F, 3) and ``phi[i, mu, c, J, f] = sum_(j of species J) dP[j, f, mu]/dx_ic``
        (N, 3, 3, S, F), as our ``features`` and ``feature_gradient_sum``."""
        se = self.expansion(atoms)
        n, k, nr, kk = len(atoms), self.k, N_RADIAL, self.k ** 2
        feats = np.zeros((n, self.n_features, 3))
        acc = np.zeros((len(self.numbers), MAX_ANGULAR, n, 3, 3, k, k))  # (J, l, i, xyz, mu, K1, K2)
        for jt, z in enumerate(self.numbers):
            # the neighbour-type blocks stay apart (no keys_to_properties): each gradient sample
            # is then a neighbour of that type only, half the rows of a densified gradient
            blocks = [[se.block({"o3_lambda": l, "o3_sigma": 1, "center_type": z, "neighbor_type": u})
                       for u in self.numbers] for l in range(MAX_ANGULAR + 1)]
            centres = blocks[0][0].samples
            if any(not np.array_equal(b.samples.values, centres.values) for bl in blocks for b in bl):
                raise RuntimeError("featomic blocks of one centre type have different samples")
            values = [np.concatenate([b.values for b in bl], axis=2) for bl in blocks]  # (Nc, 2l+1, K)
            nc = len(centres)
            groups = [_by_moved_atom(blocks[0][u].gradient("positions").samples.values, n, nc)
                      for u in range(len(self.numbers))]
            for l, c in enumerate(self.cg):
                v1, v2, p, q = values[l], values[l + 1], 2 * l + 1, 2 * l + 3
                # C contracted with c_(l+1): (Nc + 1, p, mu K2), and with c_l: (Nc + 1, q, mu K1);
                # the extra zero row is what padded gradient slots point to
                a = np.zeros((nc + 1, p, 3 * k))
                a[:nc] = np.einsum("pqm,jqk->jpmk", c, v2).reshape(nc, p, 3 * k)
                b = np.zeros((nc + 1, q, 3 * k))
                b[:nc] = np.einsum("pqm,jpk->jqmk", c, v1).reshape(nc, q, 3 * k)
                feats[centres.column("atom"), l * kk:(l + 1) * kk] = np.einsum(
                    "jpn,jpmk->jnkm", v1, a[:nc].reshape(nc, p, 3, k)).reshape(nc, kk, 3)
                for u, (slot, centre) in enumerate(groups):
                    cols, g = slice(u * nr, (u + 1) * nr), slot.shape[1]
                    gd1 = blocks[l][u].gradient("positions").values
                    gd2 = blocks[l + 1][u].gradient("positions").values
                    for i0 in range(0, n, CHUNK):  # chunks of moved atoms: temporaries stay in cache
                        at = slice(i0, min(i0 + CHUNK, n))
                        m = at.stop - at.start
                        # sum_j d(c_l c_(l+1))_j / dx_i = sum_j (dc_l c_(l+1) + c_l dc_(l+1)): for
                        # each moved atom i, one gemm contracting (centre j, m) over samples (j, i)
                        d1 = gd1[slot[at]].transpose(0, 2, 4, 1, 3).reshape(m, 3 * nr, g * p)
                        t1 = (d1 @ a[centre[at]].reshape(m, g * p, 3 * k)).reshape(m, 3, nr, 3, k)
                        acc[jt, l, at, :, :, cols, :] += t1.transpose(0, 1, 3, 2, 4)
                        d2 = gd2[slot[at]].transpose(0, 1, 3, 2, 4).reshape(m, g * q, 3 * nr)
                        bt = b[centre[at]].transpose(0, 3, 1, 2).reshape(m, 3 * k, g * q)
                        t2 = (bt @ d2).reshape(m, 3, k, 3, nr)  # (i, mu, K1, xyz, n2)
                        acc[jt, l, at, :, :, :, cols] += t2.transpose(0, 3, 1, 2, 4)
        phi = acc.transpose(2, 4, 3, 0, 1, 5, 6).reshape(n, 3, 3, len(self.numbers), self.n_features)
        return feats, phi

    def check(self, atoms, feats):
        """Our products against featomic's EquivariantPowerSpectrum (lambda = 1, sigma = +1)."""
        ps = self.equivariant_power_spectrum(atoms)
        index = {(z, n): jt * N_RADIAL + n for jt, z in enumerate(self.numbers) for n in range(N_RADIAL)}
        for z in self.numbers:
            block = ps.block({"o3_lambda": 1, "o3_sigma": 1, "center_type": z})
            p = block.properties
            cols = [p.column(name) for name in ("l_1", "neighbor_1_type", "n_1", "neighbor_2_type", "n_2")]
            f = np.array([l1 * self.k ** 2 + index[t1, n1] * self.k + index[t2, n2]
                          for l1, t1, n1, t2, n2 in zip(*cols)])
            ours = feats[block.samples.column("atom")][:, f].transpose(0, 2, 1)
            if not np.allclose(ours, block.values, atol=1e-10 * np.abs(block.values).max()):
                raise RuntimeError(f"lambda = 1 products differ from EquivariantPowerSpectrum (Z = {z})")

    def equivariant_power_spectrum(self, atoms):
        if not hasattr(self, "_eps"):
            self._eps = EquivariantPowerSpectrum(featomic.SphericalExpansion(**self.hypers),
                                                 neighbor_types=self.numbers)
            self._key = Labels(["o3_lambda", "o3_sigma"], np.array([[1, 1]]))
        return self._eps.compute(atoms, selected_keys=self._key, neighbors_to_properties=True)


def _by_moved_atom(samples, n_atoms, n_centres):
    """Gradient samples ``(sample, system, atom)`` grouped by moved atom, padded: ``slot``
    (N, g) indexes the samples (0 in padding), ``centre`` (N, g) their centre row (``n_centres``,
    a zero row, in padding)."""
    atom = samples[:, 2]
    order = np.argsort(atom, kind="stable")
    counts = np.bincount(atom, minlength=n_atoms)
    position = np.arange(len(atom)) - np.repeat(np.cumsum(counts) - counts, counts)
    slot = np.zeros((n_atoms, max(int(counts.max()), 1)), dtype=np.int64)
    centre = np.full(slot.shape, n_centres, dtype=np.int64)
    slot[atom[order], position] = order
    centre[atom[order], position] = samples[order, 0]
    return slot, centre


def systems(quick: bool):
    """64- and 128-molecule boxes: as benchmarks/model_speed.py (LAMMPS-equilibrated box, first
    train10 frame), else lattice boxes of randomly oriented molecules (no LAMMPS, no fixtures)."""
    import model_speed

    try:
        from ipi_dipole import data

        liquid128 = data.load(_common.liquid_water_sets()[0])[0]
    except Exception as error:  # fixtures absent: generated box, as model_speed.water_box
        print(f"note: train10 unavailable ({error}); 128 H2O lattice box instead", file=sys.stderr)
        liquid128 = model_speed.water_box(128)
    box64 = model_speed.water_box(64)
    if not quick:
        try:
            with tempfile.TemporaryDirectory(prefix="ipi_dipole_feat_") as work:
                box64, _ = model_speed.equilibrate(box64, Path(work), steps=4000)
        except Exception as error:
            print(f"note: LAMMPS equilibration failed ({error}); 64 H2O lattice box", file=sys.stderr)
    return [("64 H2O", box64), ("128 H2O", liquid128)]


def time_predict(model, atoms, repeat):
    """Median ``predict`` (M and Z*) time on slightly moved copies, as an MD step."""
    rng = np.random.default_rng(1)
    moving = atoms.copy()
    model.predict(moving)

    def step():
        moving.positions += rng.normal(scale=0.005, size=moving.positions.shape)
        model.predict(moving)

    return _common.median_time(step, repeat=repeat, number=3)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=11, help="timings per median (default 11)")
    parser.add_argument("--quick", action="store_true",
                        help="3 repeats, lattice 64-molecule box, no fitted model (no predict column)")
    args = parser.parse_args()
    repeat = 3 if args.quick else args.repeat
    if os.environ.get("OMP_NUM_THREADS") != "1":
        print("warning: OMP_NUM_THREADS is not 1: BLAS (both sides) is not single-threaded", file=sys.stderr)
    import numba

    from ipi_dipole import PolarizationModel, data
    from ipi_dipole.descriptors import DescriptorSettings, make_descriptor

    ours = make_descriptor(["H", "O"], DescriptorSettings())
    theirs = FeatomicLambdaSoap([1, 8])
    model = None
    if not args.quick:
        model = PolarizationModel().fit(data.load(_common.liquid_water_sets()[0]))
    print(f"featomic {featomic.__version__}, metatensor-core {metatensor.__version__}, "
          f"numba threads {numba.get_num_threads()}, RAYON_NUM_THREADS={os.environ['RAYON_NUM_THREADS']}")
    print(f"ours: {DescriptorSettings()}, {ours.n_features} features per component")
    print(f"featomic: {theirs.hypers}, lambda = 1 products l x (l+1), l < {MAX_ANGULAR}: "
          f"{theirs.n_features} features per component")

    def run_ours(atoms):
        env = ours.environments(atoms)
        return ours.features(env), ours.feature_gradient_sum(env)

    rows = []
    for name, atoms in systems(args.quick):
        f_ours, g_ours = run_ours(atoms)  # numba compile, warm-up
        for _ in range(2):  # featomic's first calls are slower (allocations, splines)
            f_theirs, g_theirs = theirs.compute(atoms)
        theirs.check(atoms, f_theirs)
        assert g_ours.shape[:4] == g_theirs.shape[:4], (g_ours.shape, g_theirs.shape)
        t_ours = _common.median_time(lambda: run_ours(atoms), repeat=repeat)
        t_theirs = _common.median_time(lambda: theirs.compute(atoms), repeat=repeat)
        t_se = _common.median_time(lambda: theirs.expansion(atoms), repeat=repeat)
        t_eps = _common.median_time(lambda: theirs.equivariant_power_spectrum(atoms), repeat=repeat)
        t_pred = None if model is None else time_predict(model, atoms, repeat)
        rows.append((name, len(atoms), t_ours, t_theirs, t_se, t_eps, t_pred))

    print(f"\nmedian of {repeat}, one thread, per structure\n")
    print("| system | atoms | ours: features per component | ours: features + gradients (ms) "
          "| featomic: features per component | featomic: features + gradients (ms) | ratio featomic/ours "
          "| featomic: spherical expansion + gradients only (ms) "
          "| featomic: EquivariantPowerSpectrum lambda=1, no gradients (ms) | ours: predict M and Z* (ms) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, n, t_o, t_f, t_se, t_eps, t_p in rows:
        pred = "-" if t_p is None else f"{1e3 * t_p:.1f}"
        print(f"| {name} | {n} | {ours.n_features} | {1e3 * t_o:.1f} | {theirs.n_features} | {1e3 * t_f:.1f} "
              f"| {t_f / t_o:.2f} | {1e3 * t_se:.1f} | {1e3 * t_eps:.1f} | {pred} |")


if __name__ == "__main__":
    main()
