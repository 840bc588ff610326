"""ipi_io: the manifest's one writer and reader, and the i-PI <-> ipi-dipole unit and layout pairs."""

import json

import numpy as np
import pytest
from ase.units import Bohr

from ipi_dipole import ipi_io
from ipi_dipole.errors import InputError
from ipi_dipole.ipi_io import units


def _manifest(**changes) -> ipi_io.Manifest:
    entries = [ipi_io.ReplicaEntry(name=f"replica_{k:03d}", directory=f"replica_{k:03d}", input="input.xml",
                                   input_sha256="ab" * 32, source=f"nvt.pos_0.xyz:{10 * k}", source_step=10 * k,
                                   source_time_ps=0.005 * k, seed=100 + k, velocities="trajectory",
                                   kinetic_temperature_K=290.5 + k)
               for k in range(2)]
    entries[1].note = "frame without a cell"
    entries[1].socket = {"address": "ipid_001", "port": None}
    fields = dict(created="2025-01-01T00:00:00+00:00", command="ipi-dipole replicas prepare", ipi_dipole_version="0.1.0",
                  ipi_version="3.3", run_dir="/runs/nve", template={"path": "/t.xml", "sha256": "cd" * 32},
                  source={"trajectory": ["/nvt.pos_0.xyz"], "temperature_K": 300.0, "timestep_fs": 0.5},
                  selection={"min_separation_ps": 0.03}, velocities="from-trajectory", seed=7, steps=400,
                  nve_timestep_fs=0.5, checkpoint_stride=40, forcefield="socket", driver_command="drive {address}",
                  replicas=entries, log=["picked 2 frames"])
    fields.update(changes)
    return ipi_io.Manifest(**fields)


def test_manifest_round_trip(tmp_path):
    written = _manifest()
    path = ipi_io.write_manifest(tmp_path, written)
    assert path == tmp_path / "manifest.json" and not list(tmp_path.glob("*.tmp"))
    read = ipi_io.read_manifest(tmp_path)
    assert read == written
    assert read.equilibration_temperature_K == 300.0 and read.names() == ["replica_000", "replica_001"]
    raw = json.loads(path.read_text())
    assert raw["format"] == ipi_io.MANIFEST_FORMAT and raw["source"]["temperature_K"] == 300.0
    assert "note" not in raw["replicas"][0] and raw["replicas"][1]["socket"]["address"] == "ipid_001"


def test_manifest_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="no manifest"):
        ipi_io.read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="manifest.json: not valid JSON"):
        ipi_io.read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(InputError, match="unknown manifest format"):
        ipi_io.read_manifest(tmp_path)
    d = _manifest().to_dict()
    del d["replicas"][0]["seed"]
    (tmp_path / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(InputError, match="manifest.json: incomplete"):
        ipi_io.read_manifest(tmp_path)


def test_bec_to_ipi_then_from_ipi_is_the_identity():
    z = np.random.default_rng(3).normal(size=(5, 3, 3))     # Z[i, a, b], not symmetric
    block = units.bec_to_ipi(z)
    np.testing.assert_array_equal(units.bec_from_ipi(block), z)
    np.testing.assert_array_equal(units.bec_from_ipi(np.ravel(block)), z)   # one block written flat
    frames = np.stack([block, np.asarray(block) * 2])         # (T, 3N, 3) as read from a file
    np.testing.assert_array_equal(units.bec_from_ipi(frames), np.stack([z, 2 * z]))
    with pytest.raises(InputError, match="BEC must be"):
        units.bec_from_ipi(np.zeros((4, 3)))


def test_dipole_round_trip_and_factor():
    m = np.array([0.3, -1.2, 2.5])                            # e*Angstrom
    sent = units.dipole_to_ipi(m)                             # e*bohr
    assert sent[2] == pytest.approx(2.5 / Bohr, rel=1e-7)
    np.testing.assert_allclose(units.dipole_from_ipi(sent), m, rtol=1e-15)
    assert units.angstrom_per_bohr() == pytest.approx(Bohr, rel=1e-7)
