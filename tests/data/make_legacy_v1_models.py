"""Write the format-version-1 model files of tests/data with the code that wrote that format.

The files are our own output, kept so that tests/test_model.py checks that models written by
the last release still load and predict the same numbers. Regenerate only with the old code
(commit b520872, the last to write version 1), e.g.

    git worktree add --detach /tmp/oldtree b520872
    PYTHONPATH=/tmp/oldtree python tests/data/make_legacy_v1_models.py

Writes legacy_v1_linear.npz (4-body and rank-3 blocks), legacy_v1_kernel.npz (zeta = 2) and
legacy_v1_expected.npz (a probe structure and both models' M and Z* on it).
"""

from pathlib import Path

import numpy as np
from ase.build import molecule

from ipi_dipole import PolarizationModel, data

HERE = Path(__file__).resolve().parent
CHARGES = {"H": 0.41, "O": -0.82}


def dimer(rng):
    a, b = molecule("H2O"), molecule("H2O")
    b.rotate(60, "z")
    b.positions += [2.9, 0.0, 0.3]
    x = a + b
    x.positions += rng.normal(scale=0.1, size=x.positions.shape)
    return x


def labelled(rng, n):
    """Dimers with point-charge Born charges plus noise (only the file format matters here)."""
    out = []
    for _ in range(n):
        x = dimer(rng)
        q = np.array([CHARGES[s] for s in x.get_chemical_symbols()])
        z = q[:, None, None] * np.eye(3) + rng.normal(scale=0.05, size=(len(x), 3, 3))
        out.append(data.make_structure(x, z, dipole=q @ x.positions + rng.normal(scale=0.01, size=3)))
    return out


def main():
    import ipi_dipole.model as model_module

    assert model_module.FORMAT_VERSION == 1, "run with the code that writes format version 1"
    rng = np.random.default_rng(2024)
    train = labelled(rng, 10)
    probe = dimer(rng)
    linear = PolarizationModel(cutoff=4.5, n_radial=3, n_radial4=2, rank3_weight=0.1, n_ref=8,
                               targets="both", regularization=1e-3).fit(train)
    kernel = PolarizationModel(cutoff=4.5, n_radial=3, n_radial4=0, zeta=2, n_ref=6,
                               targets="bec").fit(train)
    linear.save(HERE / "legacy_v1_linear.npz")
    kernel.save(HERE / "legacy_v1_kernel.npz")
    m_lin, z_lin = linear.predict(probe)
    m_ker, z_ker = kernel.predict(probe)
    with open(HERE / "legacy_v1_expected.npz", "wb") as fh:
        np.savez(fh, numbers=probe.numbers, positions=probe.positions, linear_dipole=m_lin,
                 linear_bec=z_lin, kernel_dipole=m_ker, kernel_bec=z_ker)


if __name__ == "__main__":
    main()
