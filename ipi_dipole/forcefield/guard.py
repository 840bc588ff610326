"""Guard walls: repulsive pair tables below the shortest distances of the training set.

A linear ML potential extrapolates where the data end and can open holes there (an O-H
bond collapsing, two O atoms merging); the walls keep MD out of them while leaving every
fitted energy on the data unchanged (see :func:`guard_commands`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms

from .files import DIR_VARIABLE

GUARD_TABLE = "guard.table"
#: guard wall ``E(r) = GUARD_ENERGY * ((r_wall - r) / GUARD_WIDTH)**3`` below ``r_wall``
GUARD_ENERGY = 1.0   # eV
GUARD_WIDTH = 0.1    # Angstrom
#: ``r_wall = GUARD_FACTOR * (shortest distance of that species pair in the training set)``
GUARD_FACTOR = 0.95
GUARD_POINTS = 2000


def pair_minima(structures: Sequence[Atoms], species: Sequence[str], cutoff: float) -> dict:
    """Shortest distance (Angstrom) of every species pair within ``cutoff`` in the data.

    Returns ``{(i, j): d}`` with ``i <= j`` indices into ``species``; pairs never closer
    than ``cutoff`` are absent. Periodic images count (``ase.neighborlist``).
    """
    from ase.neighborlist import neighbor_list

    index = {s: k for k, s in enumerate(species)}
    out: dict = {}
    for atoms in structures:
        probe = atoms if atoms.pbc.any() else Atoms(atoms.numbers, positions=atoms.positions)
        i, j, d = neighbor_list("ijd", probe, cutoff)
        types = np.array([index[s] for s in atoms.get_chemical_symbols()])
        a, b = np.minimum(types[i], types[j]), np.maximum(types[i], types[j])
        for key in set(zip(a.tolist(), b.tolist())):
            mask = (a == key[0]) & (b == key[1])
            out[key] = min(out.get(key, np.inf), float(d[mask].min()))
    return out


def guard_commands(ff_dir: Path, species: Sequence[str], minima: dict) -> tuple[list[str], dict]:
    """Write ``guard.table``; return the pair_coeff commands and a summary of the walls.

    The walls stand where the training set has no data: below ``GUARD_FACTOR`` times the
    shortest distance of each species pair. Inside the data they are exactly zero, so
    they change no fitted energy; outside, where a linear ML potential extrapolates and
    can open holes (an O-H bond collapsing, two O atoms merging), they push back with
    ``E = GUARD_ENERGY ((r_wall - r) / GUARD_WIDTH)^3``, zero with its first two
    derivatives at ``r_wall``.
    """
    lines = ["# ipi-dipole guard walls: E = %g eV * ((r_wall - r) / %g A)^3 for r < r_wall"
             % (GUARD_ENERGY, GUARD_WIDTH), ""]
    commands, summary = [], {}
    for (ti, tj), dmin in sorted(minima.items()):
        wall = GUARD_FACTOR * dmin
        r = np.linspace(0.2 * wall, wall, GUARD_POINTS)
        x = (wall - r) / GUARD_WIDTH
        energy = GUARD_ENERGY * x ** 3
        force = 3 * GUARD_ENERGY / GUARD_WIDTH * x ** 2
        name = f"{species[ti]}_{species[tj]}"
        lines += [name, f"N {GUARD_POINTS} R {float(r[0])!r} {float(r[-1])!r}", ""]
        lines += [f"{k + 1} {rk:.10f} {ek:.10e} {fk:.10e}" for k, (rk, ek, fk) in enumerate(zip(r, energy, force))]
        lines.append("")
        commands.append(f"pair_coeff {ti + 1} {tj + 1} table ${{{DIR_VARIABLE}}}/{GUARD_TABLE} {name} {wall!r}")
        summary[f"{species[ti]}-{species[tj]}"] = {"data_min_A": round(dmin, 6), "wall_A": round(wall, 6)}
    (ff_dir / GUARD_TABLE).write_text("\n".join(lines))
    return commands, summary


def guarded_pair_commands(style: str, coeff: str, walls: Sequence[str]) -> list[str]:
    """The ML pair style overlaid with the guard tables of :func:`guard_commands`."""
    return [f"pair_style hybrid/overlay {style} table spline {GUARD_POINTS}",
            f"pair_coeff * * {style} {coeff}", *walls]
