"""Label a file of molecules with a reference engine, resumably.

Each labelled structure is appended to the output (and flushed) as soon as it is done,
with ``info['source_index']`` = its index in the input. A rerun reads what is already
there, checks that it belongs to the same input, engine and settings, and carries on
after the last structure written. A structure whose calculation fails is reported by
index and skipped: it is absent from the output, and the gap in ``source_index`` shows it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms

from .. import data
from ..errors import InputError
from .base import CalculationFailed, Engine

#: positions in the output must equal the input's to this many Angstrom (extxyz keeps 8 decimals)
POSITION_TOLERANCE = 1e-6


@dataclass
class LabelSummary:
    """What a labelling run did. Indices are positions in the input file."""

    output: Path
    selected: list[int]
    resumed: list[int] = field(default_factory=list)   # already in the output before this run
    written: list[int] = field(default_factory=list)   # labelled by this run
    failed: dict[int, str] = field(default_factory=dict)  # failed in this run: index -> reason
    failed_earlier: list[int] = field(default_factory=list)  # gaps left by an earlier run
    repaired: bool = False  # an incomplete last structure (interrupted write) was cut off

    @property
    def n_done(self) -> int:
        return len(self.resumed) + len(self.written)

    def line(self) -> str:
        text = (f"{self.output}: {self.n_done} of {len(self.selected)} selected structures labelled "
                f"({len(self.written)} now, {len(self.resumed)} from an earlier run)")
        if self.failed:
            text += f"; {len(self.failed)} failed and skipped: {_indices(sorted(self.failed))}"
        if self.failed_earlier:
            text += (f"; {len(self.failed_earlier)} missing from an earlier run (failed then, not "
                     f"retried): {_indices(self.failed_earlier)}")
        return text


def select(n_structures: int, every: int = 1, max_structures: int | None = None) -> list[int]:
    """Input indices to label: every ``every``-th structure, at most ``max_structures``."""
    if every < 1:
        raise InputError(f"--every must be >= 1, got {every}")
    if max_structures is not None and max_structures < 0:
        raise InputError(f"--max must be >= 0, got {max_structures}")
    chosen = list(range(0, n_structures, every))
    return chosen if max_structures is None else chosen[:max_structures]


def complete_frames(path: Path) -> tuple[int, int]:
    """Number of complete extended-XYZ frames at the start of ``path`` and the byte length
    they occupy. A frame is complete when its atom count line, comment line and all atom
    lines are there, each ending in a newline."""
    n_frames, end = 0, 0
    with open(path, "rb") as fh:
        while True:
            head = fh.readline()
            if not head:
                break
            try:
                n_atoms = int(head.split()[0])
            except (ValueError, IndexError):
                break
            lines = [fh.readline() for _ in range(n_atoms + 1)]
            if not head.endswith(b"\n") or not all(line.endswith(b"\n") for line in lines):
                break
            n_frames, end = n_frames + 1, fh.tell()
    return n_frames, end


def _read_done(output: Path, inputs: Sequence[Atoms], input_name: str, selection: list[int],
               engine: Engine) -> tuple[list[int], bool]:
    """Input indices already labelled in ``output`` (in order), after checking that the
    output belongs to this input and engine; cuts off an incomplete last frame."""
    size = output.stat().st_size
    if size == 0:
        return [], False
    n_frames, end = complete_frames(output)
    if n_frames == 0:
        raise InputError(f"{output}: exists but holds no complete extended-XYZ structure; "
                         "it is not a labelled data set: choose another -o or delete it")
    repaired = False
    if end < size:
        with open(output, "rb") as fh:
            fh.seek(end)
            tail = fh.read()
        try:
            int(tail.split()[0])
        except (ValueError, IndexError):
            raise InputError(f"{output}: unreadable data after structure {n_frames - 1} "
                             f"(byte {end}); not written by an interrupted label run: "
                             "choose another -o or delete it") from None
        with open(output, "r+b") as fh:  # an interrupted write: drop the partial frame
            fh.truncate(end)
            fh.flush()
            os.fsync(fh.fileno())
        repaired = True
    written = data.load(output)
    where = f"{output}"
    allowed = set(selection)
    done: list[int] = []
    for k, atoms in enumerate(written):
        source = atoms.info.get("source_index")
        if source is None:
            raise InputError(f"{where}: structure {k} has no source_index: this file was not written "
                             f"by 'ipi-dipole label' from {input_name}; choose another -o or delete it")
        source = int(source)
        label_engine = atoms.info.get("engine")
        if label_engine != engine.description:
            raise InputError(f"{where}: structure {k} was labelled with {label_engine!r}, this run uses "
                             f"{engine.description!r}; choose another -o or delete it")
        step = atoms.info.get("field_step")
        if step is None or not np.isclose(float(step), engine.field_step, rtol=1e-9, atol=0):
            raise InputError(f"{where}: structure {k} was labelled with field step {step} V/A, this run "
                             f"uses {engine.field_step} V/A; choose another -o or delete it")
        if not 0 <= source < len(inputs):
            raise InputError(f"{where}: structure {k} has source_index {source} but {input_name} has "
                             f"{len(inputs)} structures: {output} belongs to another input")
        ref = inputs[source]
        if (len(ref) != len(atoms) or np.any(ref.numbers != atoms.numbers)
                or np.abs(ref.positions - atoms.positions).max() > POSITION_TOLERANCE):
            raise InputError(f"{where}: structure {k} does not match structure {source} of {input_name}: "
                             f"{output} belongs to another input; choose another -o or delete it")
        if source not in allowed or (done and source <= done[-1]):
            raise InputError(f"{where}: structure {k} (input structure {source}) is not the next one "
                             "this selection would label (were --every/--max changed?); "
                             "choose another -o or delete it")
        done.append(source)
    return done, repaired


def label_file(input_path: str | os.PathLike, output_path: str | os.PathLike, engine: Engine,
               every: int = 1, max_structures: int | None = None, progress: bool = True,
               log=None) -> LabelSummary:
    """Label structures of ``input_path`` with ``engine``, appending to ``output_path``.

    Parameters
    ----------
    input_path, output_path : path
        Extended-XYZ input; extended-XYZ data set written (or resumed).
    engine : Engine
        The reference engine (:func:`ipi_dipole.engines.get_engine`).
    every, max_structures : int
        Label input structures ``0, every, 2*every, ...``, at most ``max_structures``.
    progress : bool
        Show a tqdm progress bar on stderr.
    log : file, optional
        Where failures are reported (default stderr).

    Returns
    -------
    LabelSummary
    """
    from tqdm import tqdm

    input_path, output_path = Path(input_path), Path(output_path)
    log = sys.stderr if log is None else log
    if output_path.exists() and input_path.exists() and output_path.samefile(input_path):
        raise InputError(f"{output_path}: the output is the input file; choose another -o")
    inputs = data.load(input_path)
    for k, atoms in enumerate(inputs):
        engine.check(atoms, where=f"{input_path}: structure {k}")
    selection = select(len(inputs), every, max_structures)
    summary = LabelSummary(output_path, selection)
    done: list[int] = []
    if output_path.exists():
        done, summary.repaired = _read_done(output_path, inputs, str(input_path), selection, engine)
        if summary.repaired:
            print(f"{output_path}: removed an incomplete last structure (interrupted write)", file=log)
    summary.resumed = done
    start = selection.index(done[-1]) + 1 if done else 0
    done_set = set(done)
    summary.failed_earlier = [i for i in selection[:start] if i not in done_set]
    todo = selection[start:]
    bar = tqdm(total=len(selection), initial=start, desc=f"label ({engine.description})",
               unit="structure", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    try:
        for index in todo:
            try:
                labelled = engine.label(inputs[index], info={"source_index": index})
            except CalculationFailed as exc:
                summary.failed[index] = str(exc)
                message = f"{input_path}: structure {index}: calculation failed, skipped: {exc}"
                if progress:
                    bar.write(message, file=log)
                else:
                    print(message, file=log)
            else:
                data.save(output_path, [labelled], append=True)
                summary.written.append(index)
            bar.update(1)
    finally:
        bar.close()
    return summary


def _indices(indices, most: int = 20) -> str:
    shown = ", ".join(str(i) for i in indices[:most])
    return shown + (f" ... ({len(indices) - most} more)" if len(indices) > most else "")
