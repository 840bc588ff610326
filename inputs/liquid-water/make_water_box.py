#!/usr/bin/env python
"""Build a box of liquid water for the q-TIP4P/F inputs of this directory.

Writes, with the atoms in the same order (O H H per molecule, LAMMPS atom IDs 1..N):

- ``data.lmp``: LAMMPS data file (atom_style full, units real) with charges, bonds and
  angles, read by ``in.lammps``;
- ``init.xyz``: the same configuration for i-PI (CELL line, Angstrom).

Molecules (q-TIP4P/F equilibrium geometry) are placed at random positions and orientations
with minimum intermolecular distances, then relaxed with a short LAMMPS minimisation so
that the NVT equilibration starts without large forces. The density defaults to
997 kg/m^3 (300 K): 128 molecules give a cubic box of 15.66 Angstrom, the cell of the
liquid-water Born-charge data of Schienbein (J. Chem. Theory Comput. 2023).

Usage:  python make_water_box.py [--molecules 128] [--density 997] [--seed 1] [--no-minimize]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers
from ase.geometry import get_distances
from ase.units import _amu

HERE = Path(__file__).resolve().parent
#: q-TIP4P/F (Habershon, Markland, Manolopoulos, J. Chem. Phys. 131, 024501 (2009))
R_OH, THETA_HOH = 0.9419, 107.4          # Angstrom, degrees
Q_H = 0.5564                              # e; the charge -2 Q_H sits on the M site
MOLAR_MASS = atomic_masses[atomic_numbers["O"]] + 2 * atomic_masses[atomic_numbers["H"]]


def box_length(n_molecules: int, density: float) -> float:
    """Cubic box edge (Angstrom) holding ``n_molecules`` at ``density`` (kg/m^3)."""
    mass_kg = n_molecules * MOLAR_MASS * _amu
    return (mass_kg / density) ** (1.0 / 3.0) * 1e10


def water_molecule() -> np.ndarray:
    """O, H, H positions (Angstrom) of one molecule at its equilibrium geometry, O at 0."""
    half = np.radians(THETA_HOH) / 2
    return np.array([[0.0, 0.0, 0.0],
                     [R_OH * np.sin(half), R_OH * np.cos(half), 0.0],
                     [-R_OH * np.sin(half), R_OH * np.cos(half), 0.0]])


def random_rotation(rng) -> np.ndarray:
    q = rng.normal(size=4)
    a, b, c, d = q / np.linalg.norm(q)
    return np.array([[a*a + b*b - c*c - d*d, 2*(b*c - a*d), 2*(b*d + a*c)],
                     [2*(b*c + a*d), a*a - b*b + c*c - d*d, 2*(c*d - a*b)],
                     [2*(b*d - a*c), 2*(c*d + a*b), a*a - b*b - c*c + d*d]])


def random_water_box(n_molecules: int, length: float, rng, min_oo: float = 2.5,
                     min_other: float = 1.6, max_tries: int = 200000) -> Atoms:
    """Randomly inserted, non-overlapping molecules in a periodic cubic box."""
    cell = np.eye(3) * length
    positions = np.zeros((0, 3))
    shape = water_molecule()
    tries = 0
    while len(positions) < 3 * n_molecules:
        tries += 1
        if tries > max_tries:
            raise RuntimeError(f"could not insert {n_molecules} molecules in a {length:.3f} A box")
        mol = shape @ random_rotation(rng).T + rng.uniform(0, length, 3)
        if len(positions):
            _, d = get_distances(mol, positions, cell=cell, pbc=True)
            if d[0, 0::3].min() < min_oo or d.min() < min_other:
                continue
        positions = np.vstack([positions, mol])
    return Atoms("OH2" * n_molecules, positions=positions, cell=cell, pbc=True)


def write_lammps_data(path: Path, atoms: Atoms) -> None:
    """LAMMPS data file (atom_style full, units real): types O=1, H=2; bonds O-H; angles H-O-H."""
    n_mol = len(atoms) // 3
    lx, ly, lz = atoms.cell.lengths()
    lines = ["q-TIP4P/F water written by make_water_box.py (atoms O H H per molecule)", "",
             f"{len(atoms)} atoms", f"{2 * n_mol} bonds", f"{n_mol} angles", "",
             "2 atom types", "1 bond types", "1 angle types", "",
             f"0.0 {lx:.12f} xlo xhi", f"0.0 {ly:.12f} ylo yhi", f"0.0 {lz:.12f} zlo zhi", "",
             "Masses", "", f"1 {atomic_masses[8]:.5f}", f"2 {atomic_masses[1]:.5f}", "", "Atoms # full", ""]
    for i, (sym, x) in enumerate(zip(atoms.get_chemical_symbols(), atoms.positions)):
        typ, q = (1, -2 * Q_H) if sym == "O" else (2, Q_H)
        lines.append(f"{i + 1} {i // 3 + 1} {typ} {q:.4f} {x[0]:.12f} {x[1]:.12f} {x[2]:.12f}")
    lines += ["", "Bonds", ""]
    for m in range(n_mol):
        o = 3 * m + 1
        lines += [f"{2 * m + 1} 1 {o} {o + 1}", f"{2 * m + 2} 1 {o} {o + 2}"]
    lines += ["", "Angles", ""]
    for m in range(n_mol):
        o = 3 * m + 1
        lines.append(f"{m + 1} 1 {o + 1} {o} {o + 2}")
    path.write_text("\n".join(lines) + "\n")


def write_ipi_xyz(path: Path, atoms) -> None:
    """``atoms`` (an orthorhombic box) as i-PI's starting frame, cell at full precision."""
    from ipi_dipole.ipi_io import write_ipi_xyz as write

    write(path, atoms.get_chemical_symbols(), atoms.positions, atoms.cell.array.T, "positions{angstrom}")


def minimize(directory: Path) -> np.ndarray:
    """Relax data.lmp with in.lammps (LAMMPS conjugate gradients); returns positions (A)."""
    import os

    from ipi_dipole.lammps_runtime import new_lammps

    lmp = new_lammps()
    cwd = os.getcwd()
    os.chdir(directory)  # in.lammps reads data.lmp from its own directory
    try:
        lmp.file("in.lammps")
    finally:
        os.chdir(cwd)
    lmp.commands_string("min_style cg\nminimize 1.0e-6 1.0e-4 500 5000")
    ids = lmp.numpy.extract_atom("id")[: lmp.extract_global("nlocal")]
    x = lmp.numpy.extract_atom("x")[: lmp.extract_global("nlocal")]
    image = lmp.numpy.extract_atom("image")[: lmp.extract_global("nlocal")]
    # unwrap so that every molecule stays whole in init.xyz
    box = np.array(lmp.extract_box()[1]) - np.array(lmp.extract_box()[0])
    ix = np.stack([(image & 1023) - 512, ((image >> 10) & 1023) - 512, (image >> 20) - 512], axis=1)
    out = np.empty((len(ids), 3))
    out[ids - 1] = x + ix * box
    lmp.close()
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--molecules", type=int, default=128)
    parser.add_argument("--density", type=float, default=997.0, help="kg/m^3 (default 997)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-minimize", action="store_true", help="skip the LAMMPS relaxation")
    parser.add_argument("-o", "--directory", default=str(HERE),
                        help="where to write data.lmp and init.xyz (default: this directory)")
    args = parser.parse_args(argv)
    out = Path(args.directory)
    out.mkdir(parents=True, exist_ok=True)
    length = box_length(args.molecules, args.density)
    atoms = random_water_box(args.molecules, length, np.random.default_rng(args.seed))
    write_lammps_data(out / "data.lmp", atoms)
    if not args.no_minimize:
        if not (out / "in.lammps").exists():
            (out / "in.lammps").write_text((HERE / "in.lammps").read_text())
        atoms.positions = minimize(out)
        write_lammps_data(out / "data.lmp", atoms)
    write_ipi_xyz(out / "init.xyz", atoms)
    print(f"wrote {out / 'data.lmp'} and {out / 'init.xyz'}: {args.molecules} H2O, "
          f"cubic box {length:.4f} A, {args.density:g} kg/m^3")


if __name__ == "__main__":
    main()
