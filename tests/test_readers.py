"""Readers of Born charges: each against the numbers its file prints, the index convention with
non-symmetric tensors, symmetry covariance, bad input, and the ``convert`` command.

Every fixture comes through ``fixture_file`` (skips without ../shared). Damaged variants
(truncated files, other header spellings) are written to ``tmp_path`` at test time.
"""

import re

import numpy as np
import pytest

from ipi_dipole import data
from ipi_dipole.cli import main
from ipi_dipole.errors import InputError
from ipi_dipole.readers import detect_format, parse_cell, read_born
from ipi_dipole.readers.qe import read_ph_blocks

SIO2_OUTCAR = "vasp/OUTCAR_alphaSiO2_lepsilon_vasp5.4.1"
SIO2_XML = "vasp/vasprun_alphaSiO2_lepsilon_vasp6.4.1.xml"
WATER = "water_apt_schienbein/liquid-water_test.xyz"


def born(atoms):
    return data.get_born_charges(atoms)


def one(path, **kwargs):
    structures = read_born(path, **kwargs)
    assert len(structures) == 1
    return structures[0]


def eps(atoms):
    return atoms.calc.results["dielectric_tensor"]


def symmetry_residual(atoms, symprec=1e-5):
    """max |Z_j - R Z_i R^T| over the space-group operations (R Cartesian, atom i -> j)."""
    import spglib

    lattice = atoms.cell.array
    frac = atoms.get_scaled_positions()
    ops = spglib.get_symmetry((lattice, frac, atoms.numbers), symprec=symprec)
    z = born(atoms)
    worst = 0.0
    for rot, trans in zip(ops["rotations"], ops["translations"]):
        r = lattice.T @ rot @ np.linalg.inv(lattice.T)
        moved = frac @ rot.T + trans
        for i in range(len(atoms)):
            d = frac - moved[i]
            d -= np.round(d)
            j = int(np.argmin(np.linalg.norm(d @ lattice, axis=1)))
            worst = max(worst, np.abs(z[j] - r @ z[i] @ r.T).max())
    return worst, len(ops["rotations"])


# ----------------------------------------------------------------- detection
@pytest.mark.parametrize("relative, expected", [
    (SIO2_OUTCAR, "vasp-outcar"),
    ("vasp/vasprun_SnO2_lepsilon.xml.xz", "vasp-xml"),
    ("qe_ph/QE7.3.1_ch4.ph.out", "qe-ph"),
    ("qe_ph/QE6.0_alas_example05.dynG", "qe-dyn"),
    ("abinit_ddb/ZnO_gamma_becs_DDB", "abinit-ddb"),
    ("phonopy_born/BORN_NaCl", "phonopy-born"),
    ("qe_ph/phonopy_NaCl-QE_BORN", "phonopy-born"),
    (WATER, "apt-xyz"),
    ("other_codes/CRYSTAL17_NaCl_crystal.o", "crystal"),
])
def test_format_is_detected_from_content(fixture_file, relative, expected):
    assert detect_format(fixture_file(relative)) == expected


def test_unknown_format_and_pw_output_are_named(fixture_file):
    with pytest.raises(InputError, match=r"MANIFEST.txt: unknown format"):
        read_born(fixture_file("MANIFEST.txt"))
    with pytest.raises(InputError, match=r"tdep_GaN_pw.out: unknown format \(this is a pw.x output"):
        read_born(fixture_file("qe_ph/tdep_GaN_pw.out"))
    with pytest.raises(InputError, match="unknown format 'castep'"):
        read_born(fixture_file(SIO2_OUTCAR), format="castep")


# ----------------------------------------------------------------- VASP
def test_vasprun_mgo_values(fixture_file):
    a = one(fixture_file("vasp/vasprun_MgO_lepsilon_vasp6.2.1.xml"))
    assert a.get_chemical_symbols() == ["Mg", "O"] and a.pbc.all()
    np.testing.assert_allclose(born(a)[0], 1.96711316 * np.eye(3), atol=1e-8)
    np.testing.assert_allclose(born(a)[1], -1.96711316 * np.eye(3), atol=1e-8)
    np.testing.assert_allclose(eps(a), 3.16998580 * np.eye(3), atol=1e-8)
    assert a.info["code"] == "vasp" and a.info["code_version"] == "6.2.1"
    assert a.info["source"].endswith("vasprun_MgO_lepsilon_vasp6.2.1.xml")


def test_vasprun_xz_sno2_full_tensors_and_phonopy_born_agree(fixture_file):
    a = one(fixture_file("vasp/vasprun_SnO2_lepsilon.xml.xz"))
    z = born(a)
    np.testing.assert_allclose(z[0], [[4.09429103, 0.47310022, 0], [0.47310060, 4.09429081, 0], [0, 0, 4.48212636]])
    np.testing.assert_allclose(z[2, 2], [-0.00021885, 0.00021885, -2.24106318])  # row 3 of O1, as printed
    np.testing.assert_allclose(np.diag(eps(a)), [4.42038879, 4.42038879, 4.77663396])
    # phonopy's BORN for SnO2 is this run symmetrised; expanded over the cell it gives every atom back,
    # with the sign pattern of the off-diagonal elements of each atom
    b = one(fixture_file("phonopy_born/BORN_SnO2"))
    assert b.get_chemical_symbols() == a.get_chemical_symbols()
    np.testing.assert_allclose(born(b), z, atol=3e-4)
    assert np.abs(z[0] - z[1]).max() > 0.9  # Sn 1 and Sn 2 differ (xy = +-0.473): a real test of the mapping


def outcar_direction_tables(path, nions):
    """The per-field-direction tables 'POSITION  DIRECTION a  BORN EFFECTIVE CHARGE' of an OUTCAR."""
    lines = path.read_text().splitlines()
    tables = {}
    for k, line in enumerate(lines):
        m = re.search(r"POSITION\s+DIRECTION\s+(\d)\s+BORN EFFECTIVE CHARGE", line)
        if m:
            rows = [lines[k + 2 + i].split()[3:6] for i in range(nions)]
            tables[int(m.group(1)) - 1] = np.array(rows, dtype=float)
    assert sorted(tables) == [0, 1, 2]
    return tables


def test_outcar_rows_are_the_field_direction(fixture_file):
    """The proof of the index convention: in the OUTCAR, VASP writes, while treating the field along
    direction a ('PIEZOELECTRIC TENSOR FIELD DIRECTION a' just before), the per-ion table 'DIRECTION a
    BORN EFFECTIVE CHARGE'; the cumulative block's row a must be that table, for tensors far from symmetric."""
    path = fixture_file(SIO2_OUTCAR)
    a = one(path)
    z = born(a)
    assert np.abs(z - z.transpose(0, 2, 1)).max() > 0.5  # the test can tell Z from Z^T
    tables = outcar_direction_tables(path, len(a))
    for field_direction, table in tables.items():
        np.testing.assert_allclose(z[:, field_direction, :], table, atol=1e-5)
    assert a.info["born_block"] == "BORN EFFECTIVE CHARGES (in e, cummulative output)"
    assert a.info["code_version"] == "5.4.1"
    np.testing.assert_allclose(np.diag(eps(a)), [2.512810, 2.512813, 2.546013])


def test_outcar_and_vasprun_share_the_orientation(fixture_file):
    """VASP 5.4.1 OUTCAR and 6.4.1 vasprun.xml of alpha-quartz displaced along the same mode (geometries
    within 0.005 A): same rows, not transposed (antisymmetric parts 0.6 e, differences between runs 0.01 e)."""
    a, b = one(fixture_file(SIO2_OUTCAR)), one(fixture_file(SIO2_XML))
    d = a.positions - b.positions
    frac = np.linalg.solve(a.cell.T, d.T).T
    assert np.abs((frac - np.round(frac)) @ a.cell).max() < 0.01
    za, zb = born(a), born(b)
    assert np.abs(za - zb).max() < 0.02
    assert np.abs(za - zb.transpose(0, 2, 1)).max() > 0.5
    # the Phonopy-Spectroscopy BORN of the undisplaced crystal, expanded by symmetry, matches too
    c = one(fixture_file("pspec_ir/BORN_alphaSiO2"))
    assert np.abs(born(c) - za).max() < 0.01


OUTCAR_HEADERS = [
    "BORN EFFECTIVE CHARGES (including local field effects) (in |e|, cummulative output)",  # 5.4.4 / 6.x
    "BORN EFFECTIVE CHARGES (including local field effects)",  # LCALCEPS
]


@pytest.mark.parametrize("header", OUTCAR_HEADERS)
def test_outcar_newer_headers(fixture_file, tmp_path, header):
    text = fixture_file(SIO2_OUTCAR).read_text()
    variant = tmp_path / "OUTCAR"
    variant.write_text(text.replace("BORN EFFECTIVE CHARGES (in e, cummulative output)", header))
    a = one(variant)
    assert a.info["born_block"] == header
    np.testing.assert_allclose(born(a), born(one(fixture_file(SIO2_OUTCAR))))


def test_outcar_prefers_local_field_effects_block(fixture_file, tmp_path):
    text = fixture_file(SIO2_OUTCAR).read_text()
    old = "BORN EFFECTIVE CHARGES (in e, cummulative output)"
    start = text.index(old)
    stop = text.index("\n\n", start)
    rpa = text[start:stop].replace(old, "BORN EFFECTIVE CHARGES (excluding local field effects)")
    rpa = re.sub(r"(\s)(-?)(\d)\.(\d{5})", lambda m: f"{m.group(1)}{m.group(2)}9.{m.group(4)}", rpa)
    variant = tmp_path / "OUTCAR"
    variant.write_text(text[:stop] + "\n\n " + rpa + text[stop:])  # a later block without local fields
    assert len(re.findall("BORN EFFECTIVE CHARGES", variant.read_text())) == 2
    np.testing.assert_allclose(born(one(variant)), born(one(fixture_file(SIO2_OUTCAR))))
    only_rpa = tmp_path / "OUTCAR-rpa"
    only_rpa.write_text(variant.read_text().replace(old, "BORN CHARGES REMOVED"))
    assert np.abs(born(one(only_rpa))).max() > 9  # used when it is the only block


def test_truncated_outcar_and_vasprun_name_file_and_line(fixture_file, tmp_path):
    lines = fixture_file(SIO2_OUTCAR).read_text().splitlines(keepends=True)
    cut = next(k for k, line in enumerate(lines) if "cummulative output" in line) + 20
    bad = tmp_path / "OUTCAR"
    bad.write_text("".join(lines[:cut]))
    with pytest.raises(InputError, match=r"OUTCAR, line \d+: the 'BORN EFFECTIVE CHARGES' block is incomplete"):
        read_born(bad)
    head = "".join(lines[:800])  # past the NIONS line, before any Born block
    bad.write_text(head)
    with pytest.raises(InputError, match="no 'BORN EFFECTIVE CHARGES' block: run VASP with LEPSILON"):
        read_born(bad)
    xml = fixture_file(SIO2_XML).read_text()
    cut_xml = tmp_path / "vasprun.xml"
    cut_xml.write_text(xml[: xml.index('<array name="born_charges"') + 300])
    with pytest.raises(InputError, match=r"vasprun.xml, line \d+: broken XML"):
        read_born(cut_xml)
    cut_xz = tmp_path / "vasprun.xml.xz"
    cut_xz.write_bytes(fixture_file("vasp/vasprun_SnO2_lepsilon.xml.xz").read_bytes()[:5000])
    with pytest.raises(InputError, match=r"vasprun.xml.xz: cannot read this vasprun.xml \(EOFError"):
        read_born(cut_xz, format="vasp-xml")
    no_born = tmp_path / "vasprun-noborn.xml"
    start, stop = xml.index('<array name="born_charges"'), xml.index("</array>", xml.index('<array name="born_charges"'))
    no_born.write_text(xml[:start] + xml[stop + len("</array>"):])
    with pytest.raises(InputError, match='vasprun-noborn.xml: no <array name="born_charges">'):
        read_born(no_born)


# ----------------------------------------------------------------- Quantum ESPRESSO
def test_qe_ch4_both_blocks_new_format(fixture_file):
    path = fixture_file("qe_ph/QE7.3.1_ch4.ph.out")
    blocks = read_ph_blocks(path)
    np.testing.assert_allclose(blocks.raw[0], [[0.03177, -0.05948, -0.05948], [-0.05948, 0.03177, -0.05948],
                                               [-0.05948, -0.05948, 0.03177]])
    np.testing.assert_allclose(blocks.raw[4], -0.02682 * np.eye(3))
    np.testing.assert_allclose(np.diag(blocks.asr[0]), [0.01172] * 3)
    np.testing.assert_allclose(blocks.asr[4], -0.04687 * np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.diag(blocks.dpdu[4]), [-0.12708] * 3)  # d P / du differs for C
    a = one(path)
    assert a.get_chemical_symbols() == ["H", "H", "H", "H", "C"] and a.pbc.all()
    np.testing.assert_allclose(born(a), blocks.raw)
    np.testing.assert_allclose(eps(a), 1.071771921 * np.eye(3))
    np.testing.assert_allclose(a.cell.lengths(), 15.0 * 0.529177210544, rtol=1e-6)
    np.testing.assert_allclose(a.positions[0], [0.08073 * 15 * 0.529177210544] * 3, rtol=1e-6)
    # QE's "with asr applied" block is the residual spread evenly: what convert --enforce-asr does
    np.testing.assert_allclose(born(data.enforce_asr(a)), blocks.asr, atol=2e-5)


def test_qe_ch4_old_format(fixture_file):
    a = one(fixture_file("qe_ph/QE6.0_ch4_example04.nm.out"))
    np.testing.assert_allclose(born(a)[0, 0], [0.03178, -0.05947, -0.05947])
    assert a.info["born_block"] == "d Force / dE (no sum rule)" and a.info["code_version"] == "6.0"


@pytest.mark.parametrize("relative, natoms, z00, eps00", [
    ("qe_ph/phonopy_NaCl-QE_NaCl.ph.out", 8, 1.09924, 2.472958201),  # v5.4 old format
    ("qe_ph/phonopy_test_NaCl_v7.5.ph.out", 2, 1.09885, 2.474410241),  # v7.5 new format
    ("qe_ph/tdep_GaN_ph.out", 4, 2.62847, 5.943555652),  # v7.1
    ("qe_ph/QE6.0_alas_example05.ph.out", 2, 2.14176, 8.811591229),  # last block (finite-difference eps)
])
def test_qe_ph_outputs(fixture_file, relative, natoms, z00, eps00):
    a = one(fixture_file(relative))
    assert len(a) == natoms and a.info["code"] == "quantum-espresso"
    assert born(a)[0, 0, 0] == pytest.approx(z00)
    assert eps(a)[0, 0] == pytest.approx(eps00)


def test_qe_sic_sum_rule_block(fixture_file):
    path = fixture_file("qe_ph/QE7.3.1_SiC.phG.out")
    a = one(path)
    np.testing.assert_allclose(np.diag(born(a)[0]), [2.13793] * 3)
    np.testing.assert_allclose(np.diag(born(a)[1]), [-4.39444] * 3)
    assert data.asr_violation(a) == pytest.approx(2.25651, abs=1e-4)
    np.testing.assert_allclose(born(data.enforce_asr(a)), read_ph_blocks(path).asr, atol=2e-5)  # +-3.26618


def test_qe_structure_from_pw_input(fixture_file):
    ph = fixture_file("qe_ph/tdep_GaN_ph.out")
    printed = one(ph)
    exact = one(ph, structure=fixture_file("qe_ph/tdep_GaN_pw.in"))
    np.testing.assert_allclose(exact.positions, printed.positions, atol=1e-3)
    assert exact.cell[1, 1] == pytest.approx(3.18930 * np.sqrt(3) / 2, abs=1e-4)
    np.testing.assert_allclose(born(exact), born(printed))
    with pytest.raises(InputError, match="2 atoms, but the Born charges are for 4"):
        read_born(ph, structure=fixture_file("qe_ph/phonopy_test_NaCl_v7.5.in"))


def test_qe_dyn_matches_ph_out(fixture_file):
    dyn = one(fixture_file("qe_ph/QE6.0_alas_example05.dynG"))
    ph = one(fixture_file("qe_ph/QE6.0_alas_example05.ph.out"))
    assert dyn.get_chemical_symbols() == ["Al", "As"]
    np.testing.assert_allclose(born(dyn), born(ph), atol=1e-5)
    np.testing.assert_allclose(dyn.cell.array, ph.cell.array, atol=1e-8)
    np.testing.assert_allclose(dyn.positions, ph.positions, atol=1e-6)
    assert eps(dyn)[2, 2] == pytest.approx(8.811591229130)


def test_qe_without_born_charges_and_truncated(fixture_file, tmp_path):
    with pytest.raises(InputError, match=r"NaCl-noborn_v7.5.ph.out: no 'Effective charges' block"):
        read_born(fixture_file("qe_ph/phonopy_test_NaCl-noborn_v7.5.ph.out"))
    lines = fixture_file("qe_ph/tdep_GaN_ph.out").read_text().splitlines(keepends=True)
    cut = next(k for k, line in enumerate(lines) if "atom      3   N" in line) + 2
    bad = tmp_path / "ph.out"
    bad.write_text("".join(lines[:cut]))
    with pytest.raises(InputError, match=r"ph.out, line \d+: expected the E[xyz] row of atom 3"):
        read_born(bad)


# ----------------------------------------------------------------- ABINIT
def test_abinit_zno_reproduces_anaddb(fixture_file):
    """MANIFEST / abipy's test: anaddb with chneut = 1 gives Zn diag(2.15646571, 2.15646571, 2.19362823)
    and eps_inf diag(5.42055574, 5.42055574, 4.98835236)."""
    a = one(fixture_file("abinit_ddb/ZnO_gamma_becs_DDB"))
    assert a.get_chemical_symbols() == ["Zn", "Zn", "O", "O"] and a.pbc.all()
    assert a.cell.lengths()[0] == pytest.approx(6.2023 * 0.529177, abs=2e-3)
    z = born(data.enforce_asr(a))
    for i in (0, 1):
        np.testing.assert_allclose(np.diag(z[i]), [2.15646571, 2.15646571, 2.19362823], atol=2e-8)
        np.testing.assert_allclose(np.diag(z[i + 2]), [-2.15646571, -2.15646571, -2.19362823], atol=2e-8)
    np.testing.assert_allclose(np.diag(eps(a)), [5.42055574, 5.42055574, 4.98835236], atol=2e-7)
    residual, n_ops = symmetry_residual(a, symprec=1e-4)
    assert n_ops == 12 and residual < 1e-5


def test_abinit_new_ddb_and_missing_charges(fixture_file, tmp_path):
    a = one(fixture_file("abinit_ddb/AlAs_888k_DDB"))  # DDB version 2023 with a long-wave block
    assert a.get_chemical_symbols() == ["Al", "As"]
    # reduced -> Cartesian in the fcc cell: zion + d2E/2pi, diagonal
    np.testing.assert_allclose(born(a)[0], (3 - 5.6247603335165 / (2 * np.pi)) * np.eye(3), atol=1e-12)
    np.testing.assert_allclose(born(a)[1], (5 - 42.909187479963 / (2 * np.pi)) * np.eye(3), atol=1e-12)
    with pytest.raises(InputError, match="AlAs_444_nobecs_DDB: no Born effective charges"):
        read_born(fixture_file("abinit_ddb/AlAs_444_nobecs_DDB"))
    lines = fixture_file("abinit_ddb/ZnO_gamma_becs_DDB").read_text().splitlines(keepends=True)
    bad = tmp_path / "DDB"
    bad.write_text("".join(lines[:850]))
    with pytest.raises(InputError, match=r"DDB, line \d+: block at line 761 announces 225 elements"):
        read_born(bad)


# ----------------------------------------------------------------- phonopy BORN
def test_born_nacl_from_qe_with_structure(fixture_file):
    a = one(fixture_file("qe_ph/phonopy_NaCl-QE_BORN"), structure=fixture_file("qe_ph/phonopy_NaCl-QE_NaCl.in"))
    z = born(a)
    symbols = a.get_chemical_symbols()
    for i, s in enumerate(symbols):
        np.testing.assert_allclose(z[i], (1.105385 if s == "Na" else -1.105385) * np.eye(3), atol=1e-12)
    np.testing.assert_allclose(eps(a), 2.472958 * np.eye(3))
    assert a.info["code"] == "phonopy" and a.info["born_expanded"]


def test_born_expansion_is_symmetry_covariant_with_nonsymmetric_tensors(fixture_file):
    a = one(fixture_file("phonopy_born/BORN_Al2O3"))  # unit cell found beside it
    assert len(a) == 30 and a.info["structure_source"].endswith("POSCAR-unitcell_Al2O3")
    z = born(a)
    assert np.abs(z - z.transpose(0, 2, 1)).max() > 0.05
    np.testing.assert_allclose(z[0].ravel(), [2.96008813, -0.02948662, 0, 0.02948662, 2.96008813, 0, 0, 0, 2.92614183],
                               atol=1e-8)
    residual, n_ops = symmetry_residual(a)
    assert n_ops == 36 and residual < 1e-7
    assert data.asr_violation(a) < 1e-6


@pytest.mark.parametrize("relative, symprec, tolerance", [
    ("vasp/vasprun_SnO2_lepsilon.xml.xz", 1e-5, 5e-4),   # VASP's own tensors
    ("qe_ph/tdep_GaN_ph.out", 1e-3, 3e-4),              # values and positions printed with 5 decimals
    ("qe_ph/QE7.3.1_ch4.ph.out", 1e-3, 1e-4),
    ("pspec_ir/BORN_alphaSiO2", 1e-5, 1e-7),            # non-symmetric, expanded by phonopy
])
def test_tensors_transform_with_the_crystal_symmetry(fixture_file, relative, symprec, tolerance):
    residual, n_ops = symmetry_residual(one(fixture_file(relative)), symprec=symprec)
    assert n_ops > 1 and residual < tolerance


def test_born_all_atoms_listed_and_bad_files(fixture_file, tmp_path):
    a = one(fixture_file("phonopy_born/BORN_LiF-nosym"))  # 8 lines for 8 atoms: taken as they are
    assert len(a) == 8 and not a.info["born_expanded"]
    np.testing.assert_allclose(born(a)[:, 0, 0], [1.05312] * 4 + [-1.05426] * 4)
    with pytest.warns(UserWarning, match="BORN_SnO2: its first line lists atoms 1 3, .* are 1 13: make sure"):
        read_born(fixture_file("phonopy_born/BORN_SnO2"), structure=fixture_file("phonopy_born/POSCAR-unitcell_Al2O3"))
    with pytest.raises(InputError, match=r"BORN_LiF-nosym: 8 Born-charge lines, but the unit cell .* has 2 "
                                         r"symmetry-independent atoms \(numbers 1, 3\) and 6 atoms: wrong unit cell"):
        read_born(fixture_file("phonopy_born/BORN_LiF-nosym"),
                  structure=fixture_file("phonopy_born/POSCAR-unitcell_SnO2"))
    with pytest.raises(InputError, match="holds no structure; give its unit cell with --structure"):
        read_born(fixture_file("qe_ph/phonopy_NaCl-QE_BORN"))
    with pytest.raises(InputError, match="--structure applies to phonopy BORN and QE files, not to abinit-ddb"):
        read_born(fixture_file("abinit_ddb/ZnO_gamma_becs_DDB"), structure=fixture_file("qe_ph/tdep_GaN_pw.in"))
    bad = tmp_path / "BORN"
    bad.write_text(fixture_file("phonopy_born/BORN_NaCl").read_text().replace("1.08703 0 0", "1.08703 0 x", 1))
    with pytest.raises(InputError, match=r"BORN, line 3: expected 9 numbers"):
        read_born(bad, format="phonopy-born", structure=fixture_file("phonopy_born/POSCAR-unitcell_NaCl"))


# ----------------------------------------------------------------- APT xyz
def test_apt_xyz_with_cell(fixture_file):
    frames = read_born(fixture_file(WATER), cell=[15.6627])
    assert len(frames) == 10 and all(len(a) == 384 for a in frames)
    a = frames[0]
    assert a.pbc.all()
    np.testing.assert_allclose(a.cell.array, 15.6627 * np.eye(3))
    np.testing.assert_allclose(a.positions[0], [1.135822, 11.500335, 4.479658])
    # first O line: -1.163500 -0.092930 0.091787 -0.121646 ...: row-major, row = dipole component
    assert born(a)[0, 0, 1] == pytest.approx(-0.092930) and born(a)[0, 1, 0] == pytest.approx(-0.121646)
    z = np.concatenate([born(f) for f in frames])
    symbols = np.concatenate([f.get_chemical_symbols() for f in frames])
    mean_trace = {s: np.trace(z[symbols == s], axis1=1, axis2=2).mean() / 3 for s in ("O", "H")}
    assert mean_trace["O"] == pytest.approx(-0.92, abs=0.02) and mean_trace["H"] == pytest.approx(0.46, abs=0.02)


def test_apt_xyz_cell_errors_and_no_cell(fixture_file, tmp_path):
    path = fixture_file(WATER)
    with pytest.raises(InputError, match=r"liquid-water_test.xyz, frame 1: .* apart: wrong --cell\?"):
        read_born(path, cell=[10.0])
    with pytest.raises(InputError, match="--cell takes 1 .* got 2"):
        read_born(path, cell=[15.0, 15.0])
    with pytest.raises(InputError, match="positive lengths"):
        parse_cell([15.0, -15.0, 15.0])
    with pytest.raises(InputError, match="linearly dependent"):
        parse_cell([1, 0, 0, 0, 1, 0, 1, 1, 0])
    with pytest.raises(InputError, match="carries its own cell"):
        read_born(fixture_file(SIO2_OUTCAR), cell=[10.0])
    with pytest.warns(UserWarning, match="no cell given"):
        frames = read_born(path)
    assert not frames[0].pbc.any()
    lines = path.read_text().splitlines(keepends=True)
    bad = tmp_path / "apt.xyz"
    bad.write_text("".join(lines[:100]))
    with pytest.raises(InputError, match=r"apt.xyz, line 100: frame 1 announces 384 atoms"):
        read_born(bad, format="apt-xyz", cell=[15.6627])


# ----------------------------------------------------------------- CRYSTAL
def test_crystal_nacl(fixture_file):
    a = one(fixture_file("other_codes/CRYSTAL17_NaCl_crystal.o"))
    assert a.get_chemical_symbols() == ["Na", "Cl"]
    np.testing.assert_allclose(born(a)[0], 1.0238 * np.eye(3), atol=1e-12)
    np.testing.assert_allclose(eps(a), 1.8126 * np.eye(3))
    assert a.positions[1] == pytest.approx([2.784909785] * 3)


# ----------------------------------------------------------------- the command
def test_convert_every_format_and_validate(fixture_file, tmp_path, capsys):
    inputs = [fixture_file(p) for p in (
        SIO2_OUTCAR, "vasp/vasprun_SnO2_lepsilon.xml.xz", "vasp/vasprun_MgO_lepsilon_vasp6.2.1.xml",
        "qe_ph/QE7.3.1_ch4.ph.out", "qe_ph/phonopy_NaCl-QE_NaCl.ph.out", "qe_ph/QE6.0_alas_example05.dynG",
        "abinit_ddb/ZnO_gamma_becs_DDB", "phonopy_born/BORN_Al2O3", "other_codes/CRYSTAL17_NaCl_crystal.o")]
    out = tmp_path / "set.extxyz"
    assert main(["convert", *map(str, inputs), "-o", str(out)]) == 0
    water = tmp_path / "water.extxyz"
    assert main(["convert", str(fixture_file(WATER)), "--cell", "15.6627", "-o", str(water)]) == 0
    born_qe = tmp_path / "born.extxyz"
    assert main(["convert", str(fixture_file("qe_ph/phonopy_NaCl-QE_BORN")), "--structure",
                 str(fixture_file("qe_ph/phonopy_NaCl-QE_NaCl.in")), "-o", str(born_qe)]) == 0
    merged = tmp_path / "merged.extxyz"
    assert main(["convert", str(out), str(water), str(born_qe), "--enforce-asr", "-o", str(merged)]) == 0
    printed = capsys.readouterr().out
    assert "vasp-xml, 1 structure of 6 atoms, dielectric tensor: yes" in printed
    assert "apt-xyz, 10 structures of 384 atoms" in printed
    structures = data.load(out)
    assert len(structures) == 9
    assert [p for p in data.validate(structures) if p.severity == "error"] == []
    assert {a.info["code"] for a in structures} == {"vasp", "quantum-espresso", "abinit", "phonopy", "crystal"}
    z_back = data.get_born_charges(structures[0])
    np.testing.assert_allclose(z_back, born(one(fixture_file(SIO2_OUTCAR))))  # non-symmetric, round trip
    assert data.get_results(structures[1])["dielectric_tensor"][2, 2] == pytest.approx(4.77663396)
    all_sets = data.load(merged)
    assert len(all_sets) == 9 + 10 + 1
    assert data.validate(all_sets) == []  # sum rule enforced: not even warnings
    assert all(a.pbc.all() for a in all_sets)


def test_convert_reports_bad_input_in_one_line(fixture_file, tmp_path, capsys):
    out = tmp_path / "x.extxyz"
    assert main(["convert", str(fixture_file("abinit_ddb/AlAs_444_nobecs_DDB")), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "AlAs_444_nobecs_DDB: no Born effective charges" in err[0]
    assert not out.exists()
    assert main(["convert", str(tmp_path / "missing.OUTCAR"), "-o", str(out)]) == 2
    assert "missing.OUTCAR: no such file" in capsys.readouterr().err
    assert main(["convert", str(fixture_file(WATER)), "--cell", "1", "2", "-o", str(out)]) == 2
    assert "--cell takes 1" in capsys.readouterr().err


# --- other people's extended XYZ: the Born-charge array under another name ------------------

def _quantum_wrapped(dp, cell):
    """Cell-dipole change (e*Angstrom) reduced modulo the polarization quantum e*L (orthorhombic)."""
    lengths = np.diag(cell)
    return dp - np.round(dp / lengths) * lengths


def test_batio3_born_charge_key_and_row_convention(fixture_file):
    path = fixture_file("bulk_batio3_allegro_pol/BaTiO3.xyz")
    frames = read_born(path)  # detected: born_charge
    assert len(frames) == 59 and all(len(a) == 135 for a in frames)
    assert all(data.get_born_charges(a) is not None for a in frames)
    # Convention from the data: dP between nearby frames ~ sum_i Z_i . dr_i with Z rows = dipole
    # component; the transpose reading fits clearly worse.
    raw = data.load(path)
    err = {"row": [], "transpose": []}
    for k in range(1, len(frames)):
        a0, a1 = frames[k - 1], frames[k]
        d = a1.positions - a0.positions
        d -= np.round(d @ np.linalg.inv(a0.cell)) @ a0.cell
        if np.abs(d).max() > 0.3:
            continue
        z = 0.5 * (data.get_born_charges(a0) + data.get_born_charges(a1))
        dp = np.asarray(raw[k].calc.results["polarization"]) - np.asarray(raw[k - 1].calc.results["polarization"])
        for name, sub in (("row", "iab,ib->a"), ("transpose", "iba,ib->a")):
            err[name].append(_quantum_wrapped(np.einsum(sub, z, d) - dp, np.asarray(a0.cell)))
    assert len(err["row"]) >= 10
    rms = {k: float(np.sqrt(np.mean(np.square(v)))) for k, v in err.items()}
    # measured: 13 pairs within 0.3 A, rms 0.037 (row) vs 0.131 (transpose) e*Angstrom
    assert rms["row"] < 0.5 * rms["transpose"], rms


def test_bec_key_option_and_clear_errors(tmp_path):
    import ase.io
    from ase import Atoms

    atoms = Atoms("HF", positions=[[0, 0, 0], [0, 0, 0.92]], cell=[5, 5, 5], pbc=True)
    z = np.array([np.diag([0.4, 0.4, 0.5]), -np.diag([0.4, 0.4, 0.5])])
    z[0, 0, 2] = 0.1  # asymmetric: the row-major reading must survive
    z[1, 0, 2] = -0.1
    atoms.arrays["myZ"] = z.reshape(2, 9)
    src = tmp_path / "foreign.xyz"
    ase.io.write(src, atoms, format="extxyz")
    with pytest.raises(InputError, match="--bec-key"):
        read_born(src, format="extxyz")
    got = read_born(src, format="extxyz", bec_key="myZ")
    np.testing.assert_allclose(data.get_born_charges(got[0]), z)
    with pytest.raises(InputError, match="'nope'"):
        read_born(src, format="extxyz", bec_key="nope")
    out = tmp_path / "set.extxyz"
    assert main(["convert", str(src), "--bec-key", "myZ", "-o", str(out)]) == 0
    np.testing.assert_allclose(data.get_born_charges(data.load(out)[0]), z)
