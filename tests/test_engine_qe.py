"""The Quantum ESPRESSO engine: real pw.x and ph.x on a rattled 2-atom MgO cell.

One label run (ecutwfc 25 Ry, 2x2x2 shifted k-points, one rank: about 4 s) is checked
against QE's own printed numbers, parsed here with a few regular expressions independent of
ipi_dipole.readers.qe. Skipped only when pw.x is not installed (.ci/run installs it).
"""

import re
import shutil

import numpy as np
import pytest
from ase.build import bulk
from ase.units import Bohr, Ry

from ipi_dipole import data
from ipi_dipole.cli import main
from ipi_dipole.engines import get_engine, qe_pseudo
from ipi_dipole.engines.labelling import label_file
from ipi_dipole.errors import InputError
from ipi_dipole.readers import qe as qe_reader

needs_qe = pytest.mark.skipif(shutil.which("pw.x") is None or shutil.which("ph.x") is None,
                              reason="Quantum ESPRESSO (pw.x, ph.x) not installed: "
                                     "apt-get install quantum-espresso quantum-espresso-data")
SMALL = ["--ecutwfc", "25", "--kspacing", "0.25"]   # 2x2x2 shifted for the MgO primitive cell
#: |sum_i Z*_i| at SMALL settings is 0.034 e (measured); it falls with cutoff and k-points
#: (0.006 e at 40 Ry, 4x4x4), as a DFPT sum rule does when the basis converges
ASR_TOLERANCE = 0.1


def rattled_mgo():
    atoms = bulk("MgO", "rocksalt", a=4.21)
    atoms.positions[1] += [0.05, -0.03, 0.02]
    return atoms


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    root = tmp_path_factory.mktemp("qe")
    frames = root / "mgo.extxyz"
    data.save(frames, [rattled_mgo()])
    out = root / "labelled.extxyz"
    code = main(["label", str(frames), "-o", str(out), "--engine", "qe", *SMALL, "--no-progress"])
    assert code == 0
    return root, frames, out, data.load(out)[0]


def printed_born_charges(text):
    """ph.x's last 'Effective charges (d Force / dE)' table: rows Ex, Ey, Ez per atom."""
    block = text[text.rindex("Effective charges (d Force / dE) in cartesian axis"):]
    rows = re.findall(r"^\s*E[xyz]\s*\(\s*(\S+)\s+(\S+)\s+(\S+)\s*\)", block, re.MULTILINE)
    return np.array(rows[:6], dtype=float).reshape(2, 3, 3)


@needs_qe
def test_born_charges_are_ph_x_printed_table_and_obey_the_sum_rule(labelled):
    root, _, _, s = labelled
    text = (root / "labelled.qe" / "00000" / "ph.out").read_text()
    z = data.get_born_charges(s)
    np.testing.assert_array_equal(z, printed_born_charges(text))  # row = field direction, as printed
    assert 1.8 < z[0].trace() / 3 < 2.1 and -2.1 < z[1].trace() / 3 < -1.8  # Mg2+ O2- (LDA ~1.9)
    assert data.asr_violation(s) < ASR_TOLERANCE
    eps = s.calc.results["dielectric_tensor"]
    assert 2.8 < np.trace(eps) / 3 < 3.6  # LDA eps_inf of MgO ~3.1-3.2


@needs_qe
def test_energy_and_forces_are_pw_x_printed_ones_in_ev(labelled):
    root, _, _, s = labelled
    text = (root / "labelled.qe" / "00000" / "pw.out").read_text()
    energy_ry = float(re.findall(r"^!\s+total energy\s+=\s+(\S+) Ry", text, re.MULTILINE)[-1])
    forces_ry_bohr = np.array(re.findall(r"atom\s+\d+ type\s+\d+\s+force =\s+(\S+)\s+(\S+)\s+(\S+)", text)[:2],
                              dtype=float)
    # ASE's espresso reader converts with CODATA 2006 constants (QE's), ase.units is 2014:
    # they differ by 8e-8 relative
    assert s.get_potential_energy() == pytest.approx(energy_ry * Ry, rel=2e-7)
    np.testing.assert_allclose(s.get_forces(), forces_ry_bohr * Ry / Bohr, rtol=2e-7, atol=1e-8)
    assert np.abs(s.get_forces().sum(axis=0)).max() < 1e-4
    assert np.abs(s.get_forces()).max() > 0.05  # rattled: the forces are not zero


@needs_qe
def test_metadata_names_the_pseudopotentials_and_settings(labelled):
    *_, s = labelled
    assert s.info["pseudopotentials"] == "Mg=Mg.pz-n-vbc.UPF,O=O.pz-rrkjus.UPF"
    assert s.info["kpts"] == "2x2x2 shifted"
    assert "ecutwfc 25 Ry" in s.info["engine"] and "ecutrho 200 Ry" in s.info["engine"]
    assert s.info["field_step"] == 0.0 and s.info["source_index"] == 0
    assert s.info["gap_eV"] > 3 and s.info["ph_wall_s"] > 0
    assert not (np.asarray(s.calc.results.get("dipole", [])).size)  # a crystal has no single dipole
    assert not (labelled[0] / "labelled.qe" / "00000" / "tmp").exists()  # scratch removed


@needs_qe
def test_rerun_resumes_and_work_dirs_are_read_back(labelled, capsys):
    root, frames, out, s = labelled
    before = out.read_text()
    assert main(["label", str(frames), "-o", str(out), "--engine", "qe", *SMALL, "--no-progress"]) == 0
    assert out.read_text() == before and "1 from an earlier run" in capsys.readouterr().out
    again = root / "again.extxyz"  # a new output, same work dir: read back, not recomputed
    assert main(["label", str(frames), "-o", str(again), "--engine", "qe", *SMALL, "--no-progress",
                 "--work-dir", str(root / "labelled.qe")]) == 0
    t = data.load(again)[0]
    assert t.info["reused"] and np.array_equal(data.get_born_charges(t), data.get_born_charges(s))
    # other settings: the output is refused rather than mixed
    assert main(["label", str(frames), "-o", str(out), "--engine", "qe", "--ecutwfc", "20",
                 "--kspacing", "0.25", "--no-progress"]) == 2
    assert "labelled with" in capsys.readouterr().err


@needs_qe
def test_scf_failure_is_reported_by_structure_and_skipped(tmp_path, capsys):
    frames = tmp_path / "mgo.extxyz"
    data.save(frames, [rattled_mgo()])
    engine = get_engine("qe", ecutwfc=20, kspacing=0.25, electron_maxstep=2, work_dir=tmp_path / "w")
    summary = label_file(frames, tmp_path / "out.extxyz", engine, progress=False, log=None)
    assert list(summary.failed) == [0]
    assert "structure 0" in summary.failed[0] and "did not converge after 2 iterations" in summary.failed[0]
    assert "structure 0: calculation failed, skipped" in capsys.readouterr().err


@needs_qe
def test_bad_inputs_are_one_line_errors(tmp_path, capsys, monkeypatch):
    molecule = tmp_path / "molecule.extxyz"
    atoms = rattled_mgo()
    atoms.pbc = False
    data.save(molecule, [atoms])
    assert main(["label", str(molecule), "-o", str(tmp_path / "o.extxyz"), "--engine", "qe"]) == 2
    assert "not a 3D-periodic crystal" in capsys.readouterr().err
    xenon = tmp_path / "xe.extxyz"
    data.save(xenon, [bulk("Xe", "fcc", a=6.2)])
    assert main(["label", str(xenon), "-o", str(tmp_path / "o.extxyz"), "--engine", "qe"]) == 2
    err = capsys.readouterr().err
    assert "no LDA pseudopotential for Xe in /usr/share/espresso/pseudo" in err and "Traceback" not in err
    aluminium = tmp_path / "al.extxyz"
    data.save(aluminium, [bulk("Al", "fcc", a=4.05)])
    assert main(["label", str(aluminium), "-o", str(tmp_path / "o.extxyz"), "--engine", "qe"]) == 2
    assert "3 valence electrons, an odd number: a metal" in capsys.readouterr().err
    assert main(["label", str(molecule), "-o", str(tmp_path / "o.extxyz"), "--ecutwfc", "30"]) == 2
    assert "--ecutwfc is an option of --engine qe" in capsys.readouterr().err
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(InputError, match="pw.x .* not installed .* apt-get install quantum-espresso"):
        get_engine("qe")


def test_pseudopotential_choice_by_element_and_functional(tmp_path):
    if not qe_pseudo.DEBIAN_PSEUDO_DIR.is_dir():
        pytest.skip("Debian's quantum-espresso-data is not installed")
    chosen = qe_pseudo.choose(["Pb", "Ti", "O", "O"])
    assert {s: p.path.name for s, p in chosen.items()} == {
        "Pb": "Pb.pz-d-van.UPF", "Ti": "Ti.pz-sp-van_ak.UPF", "O": "O.pz-rrkjus.UPF"}
    assert chosen["O"].z_valence == 6 and chosen["Pb"].z_valence == 14 and chosen["O"].ultrasoft
    assert qe_pseudo.choose(["O"], functional="pbe")["O"].path.name == "O.pbe-rrkjus.UPF"
    assert qe_pseudo.choose(["O"], explicit={"O": "O.pz-van_ak.UPF"})["O"].path.name == "O.pz-van_ak.UPF"
    with pytest.raises(InputError, match="mix functionals"):
        qe_pseudo.choose(["O", "Mg"], explicit={"O": "O.pbe-rrkjus.UPF"})
    with pytest.raises(InputError, match="no PBE pseudopotential for Mg"):
        qe_pseudo.choose(["Mg"], functional="pbe")
    own = tmp_path / "sssp"  # a library with one file per element: used whatever its name says
    own.mkdir()
    shutil.copy(qe_pseudo.DEBIAN_PSEUDO_DIR / "Mg.pz-n-vbc.UPF", own / "mg_lda_v1.upf")
    assert qe_pseudo.choose(["Mg"], own)["Mg"].path.name == "mg_lda_v1.upf"


def test_qe_output_helpers():
    assert qe_reader.qe_wall_time("     PWSCF        :   1m36.00s CPU   1m38.50s WALL\n") == 98.5
    assert qe_reader.qe_wall_time("     PHONON       :   1h 2m CPU   1h 3m WALL\n") == 3780
    assert qe_reader.qe_wall_time("     PWSCF        :      0.40s CPU      0.42s WALL\n") == 0.42
    text = "     highest occupied, lowest unoccupied level (ev):     8.1233    9.8765\n"
    assert qe_reader.pw_band_edges(text) == (8.1233, 9.8765)
    crash = ("\n %%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%\n     Error in routine readpp (1):\n"
             "     file /x/Mg.UPF not found\n %%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%\n")
    assert qe_reader.qe_error(crash) == "readpp: file /x/Mg.UPF not found"


@needs_qe
def test_mpirun_is_the_one_beside_pw_x():
    from ipi_dipole.engines.qe_engine import find_mpirun

    pw_x = shutil.which("pw.x")
    beside = __import__("pathlib").Path(pw_x).parent / "mpirun"
    if beside.is_file():
        assert find_mpirun(pw_x) == str(beside)
