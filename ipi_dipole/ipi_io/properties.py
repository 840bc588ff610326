"""Reader of i-PI 3 properties files (``<properties filename='out'>``), units converted on request.

i-PI writes ``PREFIX.out`` with one header line per column,
``# column   2     --> time{femtosecond} : ...`` (``# cols. 3-5`` for a vector), then one
line per output step. A run restarted from a checkpoint appends to the same file and may
repeat steps written after the checkpoint: the last copy of each step is kept. A partly
written last line (a killed run) is dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ipi_dipole.errors import InputError

from .trajectories import keep_last_of_each_step
from .units import convert, drop_made_up_digits

_COLUMN = re.compile(r"#\s*(?:column|cols\.)\s+(\d+)(?:-(\d+))?\s*-->\s*([^\s{(:]+)"
                     r"(?:\{([^}]*)\})?(?:\(([^)]*)\))?(?:\{([^}]*)\})?\s*:")


@dataclass
class Properties:
    """Columns of an i-PI properties file, converted where the unit family is known.

    ``columns`` maps the property name as written (``time``, ``temperature``,
    ``potential``...) to its values; ``units`` to the unit written in the header (None when
    none, i.e. atomic units).
    """

    path: Path
    columns: dict
    units: dict

    def get(self, name: str, family: str, target: str) -> np.ndarray | None:
        """Column ``name`` converted to ``target`` (e.g. ``("time", "time", "femtosecond")``)."""
        if name not in self.columns:
            return None
        return convert(self.columns[name], family, self.units.get(name), target)

    def timestep_fs(self) -> float | None:
        """MD time per i-PI step (fs) from the ``time`` and ``step`` columns; None without them."""
        time = self.get("time", "time", "femtosecond")
        step = self.columns.get("step")
        if time is None or step is None or len(step) < 2 or step[-1] <= step[0]:
            return None
        return drop_made_up_digits(float((time[-1] - time[0]) / (step[-1] - step[0])))


def property_column(line: str) -> tuple[int, int, str, str | None] | None:
    """``(first, end, name, unit)`` of a properties header line ``# column N --> name{unit} : ...``.

    ``first:end`` are the 0-based columns the property fills (``# cols. 3-5`` for a
    vector); ``unit`` is None when the header gives none (atomic units). None for any
    other line.
    """
    m = _COLUMN.match(line)
    if not m:
        return None
    start, end, name, u1, args, u2 = m.groups()
    if args:
        name = f"{name}({args})"
    return int(start) - 1, int(end or start), name, u2 or u1


def read_properties(path) -> Properties:
    """Read an i-PI properties file (``# column N --> name{unit} : description`` header).

    Same header grammar as :func:`ipi.scripting.read_output`; a partly written last line
    (a killed run) is dropped instead of failing, and repeated steps keep the last copy.
    """
    path = Path(path)
    specs = []
    data_lines = []
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith("#"):
                    spec = property_column(line)
                    if spec:
                        specs.append(spec)
                elif line.strip():
                    data_lines.append(line)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    if not specs:
        raise InputError(f"{path}: no '# column N --> name' header: not an i-PI properties file")
    n_cols = max(end for _, end, _, _ in specs)
    rows = []
    for line in data_lines:
        fields = line.split()
        if len(fields) != n_cols:
            continue  # a line cut by a kill
        try:
            rows.append([float(x) for x in fields])
        except ValueError:
            continue
    table = np.array(rows, dtype=float).reshape(-1, n_cols)
    columns, units = {}, {}
    for start, end, name, unit in specs:
        col = table[:, start:end]
        columns[name] = col[:, 0] if end - start == 1 else col
        units[name] = unit
    if "step" in columns and len(table):
        keep = keep_last_of_each_step(columns["step"].astype(int))
        columns = {k: v[keep] for k, v in columns.items()}
    return Properties(path=path, columns=columns, units=units)
