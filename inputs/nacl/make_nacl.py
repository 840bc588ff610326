#!/usr/bin/env python
"""Rock-salt NaCl for the inputs of this directory: i-PI's starting structure and a
Born-charge training set for the dipole model.

Writes

- ``init.xyz``: a 2x2x2 supercell of the conventional cell (64 atoms, a = 5.64 A, the
  Tosi-Fumi lattice constant near 300 K), Na and Cl alternating, in i-PI's xyz format;
- ``train.extxyz``: rattled and strained copies of it labelled with rigid-ion Born charges,
  ``Z*(Na) = +1``, ``Z*(Cl) = -1`` (times the identity), in the ipi-dipole data format.

Why rigid-ion charges: the force field of ``forcefield.lammps`` is a rigid-ion model with
formal charges +-1, whose polarization is exactly ``sum_i q_i x_i``; its Born charges are
the charges. A model trained on them gives the dipole the force field itself implies, so
the spectrum from this directory is the force field's own, consistently. First-principles
Born charges of NaCl are about 1.1 e and depend (weakly) on the configuration; for those,
label rattled supercells with a periodic code (e.g. VASP with LEPSILON), convert them with
``ipi-dipole convert`` and train on that data instead.

Usage:  python make_nacl.py [--repeat 2] [--structures 20] [--seed 7]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ase.build import bulk

from ipi_dipole import data

HERE = Path(__file__).resolve().parent
LATTICE = 5.64          # Angstrom
CHARGES = {"Na": 1.0, "Cl": -1.0}


def supercell(repeat: int):
    return bulk("NaCl", "rocksalt", a=LATTICE, cubic=True).repeat(repeat)


def write_ipi_xyz(path: Path, atoms) -> None:
    """``atoms`` (an orthorhombic box) as i-PI's starting frame, cell at full precision."""
    from ipi_dipole.ipi_io import write_ipi_xyz as write

    write(path, atoms.get_chemical_symbols(), atoms.positions, atoms.cell.array.T, "positions{angstrom}")


def training_set(repeat: int, n: int, rng) -> list:
    """Rattled (0.15 A) and strained (1 %) supercells with rigid-ion Born charges."""
    out = []
    for _ in range(n):
        atoms = supercell(repeat)
        strain = np.eye(3) + rng.normal(scale=0.01, size=(3, 3))
        atoms.set_cell(atoms.cell @ (strain + strain.T) / 2, scale_atoms=True)
        atoms.positions += rng.normal(scale=0.15, size=atoms.positions.shape)
        z = np.array([CHARGES[s] * np.eye(3) for s in atoms.get_chemical_symbols()])
        out.append(data.make_structure(atoms, z, info={"source": "rigid-ion charges, make_nacl.py"}))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2, help="supercell of the 8-atom cubic cell (default 2)")
    parser.add_argument("--structures", type=int, default=20, help="training structures (default 20)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("-o", "--directory", default=str(HERE))
    args = parser.parse_args(argv)
    out = Path(args.directory)
    out.mkdir(parents=True, exist_ok=True)
    atoms = supercell(args.repeat)
    write_ipi_xyz(out / "init.xyz", atoms)
    data.save(out / "train.extxyz", training_set(args.repeat, args.structures, np.random.default_rng(args.seed)))
    print(f"wrote {out / 'init.xyz'} ({len(atoms)} atoms) and {out / 'train.extxyz'} "
          f"({args.structures} structures with rigid-ion Born charges)")


if __name__ == "__main__":
    main()
