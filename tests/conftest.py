"""Shared test helpers.

Third-party fixture files live in ``../shared/fixtures`` beside the project (several
carry licences that forbid copying them here). Tests that need them ask for the
``fixtures_dir`` fixture, which skips with a clear reason on a clone without them.
"""

import os
from pathlib import Path

import numpy as np
import pytest

PROJECT = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = Path(os.environ.get("IPI_DIPOLE_FIXTURES", PROJECT.parent / "shared" / "fixtures"))

# One OpenMP thread: LAMMPS and BLAS are ~8x slower per call with more on 2 cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """``../shared/fixtures``, or skip: those files are not distributed with the project."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"third-party fixtures not found at {SHARED_FIXTURES} "
                    "(they sit beside the project in ../shared and are not redistributed)")
    return SHARED_FIXTURES


@pytest.fixture(scope="session")
def fixture_file(fixtures_dir):
    """Function returning the path of one fixture file, skipping when it is missing."""
    def get(relative: str) -> Path:
        path = fixtures_dir / relative
        if not path.exists():
            pytest.skip(f"fixture {relative} not found in {fixtures_dir}")
        return path
    return get


@pytest.fixture(scope="session")
def dimer_model(tmp_path_factory) -> Path:
    """A small PolarizationModel file fitted to tblite Born charges of 8 rattled water dimers.

    Real GFN2-xTB labels (about 30 ms in all): what the driver, replica and analysis tests
    serve as extras. Not accurate, only real.
    """
    from ipi_dipole import PolarizationModel
    from ipi_dipole.engines.tblite_engine import TBLiteEngine
    from ipi_dipole.structures import water_dimer

    rng = np.random.default_rng(0)
    engine = TBLiteEngine()
    frames = []
    for _ in range(8):
        atoms = water_dimer()
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        frames.append(engine.label(atoms))
    path = tmp_path_factory.mktemp("dimer_model") / "model.npz"
    PolarizationModel(n_ref=20, targets="bec").fit(frames).save(path)
    return path
