"""The files of a force-field directory: the ``forcefield.lammps`` snippet, ``report.json``.

See :mod:`ipi_dipole.forcefield` for what the directory holds and how the snippet finds
its potential files (the LAMMPS variable ``ffdir``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from ..errors import InputError

SNIPPET = "forcefield.lammps"
REPORT = "report.json"
SPECIES_TAG = "# species:"
#: the LAMMPS variable through which the snippet finds its potential files
DIR_VARIABLE = "ffdir"


def read_species(ff_dir: str | os.PathLike) -> list[str]:
    """LAMMPS atom-type order of a force field: the ``# species:`` line of its snippet."""
    path = Path(ff_dir) / SNIPPET
    if not path.is_file():
        raise InputError(f"{ff_dir}: not a force-field directory (no {SNIPPET})")
    with open(path) as fh:
        first = fh.readline()
    if not first.startswith(SPECIES_TAG) or not first[len(SPECIES_TAG):].split():
        raise InputError(f"{path}: line 1 must be '{SPECIES_TAG} A B ...' (the atom-type order)")
    return first[len(SPECIES_TAG):].split()


def read_report(ff_dir: str | os.PathLike) -> dict:
    """The ``report.json`` of a force-field directory (settings and test errors)."""
    path = Path(ff_dir) / REPORT
    if not path.is_file():
        raise InputError(f"{ff_dir}: no {REPORT}")
    with open(path) as fh:
        return json.load(fh)


def check_path_for_lammps(path: str | os.PathLike) -> Path:
    """Absolute ``path``, or InputError if LAMMPS cannot substitute it (whitespace)."""
    path = Path(path).resolve()
    if any(c.isspace() for c in str(path)):
        raise InputError(f"{path}: LAMMPS cannot load force-field files from a path containing "
                         "blanks (its variable substitution splits words); use a directory "
                         "without whitespace")
    return path


def lammps_commands(ff_dir: str | os.PathLike) -> list[str]:
    """The LAMMPS commands that load the force field in ``ff_dir``, wherever it now lives.

    Run them after the box and the atoms exist (``units metal``; atom types in the order
    of :func:`read_species`).
    """
    ff_dir = check_path_for_lammps(ff_dir)
    read_species(ff_dir)
    return [f"variable {DIR_VARIABLE} string {ff_dir}", f"include {ff_dir / SNIPPET}"]


def write_snippet(ff_dir: Path, species: Sequence[str], commands: Sequence[str],
                  probe: str, comments: Sequence[str] = ()) -> Path:
    """Write ``forcefield.lammps``: species line, comments, ``ffdir`` set-up, commands.

    ``commands`` refer to the potential files as ``${ffdir}/NAME``; ``probe`` is the name
    of one of them, used to test whether ``ffdir`` points at the files.
    """
    ff_dir = check_path_for_lammps(ff_dir)
    lines = [f"{SPECIES_TAG} {' '.join(species)}"]
    lines += [f"# {c}" for c in comments]
    lines += [
        "# Interaction commands only (units metal: eV, Angstrom); create the box and the atoms",
        "# first, atom type k = k-th species above. The potential files are found through the",
        f"# variable '{DIR_VARIABLE}': a value defined before this include wins ('variable "
        f"{DIR_VARIABLE} string DIR'",
        f"# or 'lmp -var {DIR_VARIABLE} DIR'); else the directory where this was written; if the",
        "# files are not there (directory moved), the current directory (the ipi-dipole driver",
        "# runs this from the snippet's own directory).",
        f"variable {DIR_VARIABLE} index {ff_dir}",
        f"variable {DIR_VARIABLE}_found equal is_file(${{{DIR_VARIABLE}}}/{probe})",
        f'if "${{{DIR_VARIABLE}_found}} == 0" then "variable {DIR_VARIABLE} delete" '
        f'"variable {DIR_VARIABLE} index ."',
    ]
    lines += list(commands)
    path = ff_dir / SNIPPET
    path.write_text("\n".join(lines) + "\n")
    return path
