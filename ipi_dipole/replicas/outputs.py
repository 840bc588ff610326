"""The output files of one i-PI run, their step records, and trimming them to a checkpoint.

i-PI 3.3 on restart (``i-pi RESTART`` or ``i-pi <checkpoint>``) opens every output
in append mode and writes the steps after the checkpoint's step again (a fresh run,
step 0, instead backs existing files up as ``#name#0#`` and starts new ones). A
restart from a periodic ``<checkpoint>`` after a hard kill therefore duplicates the
steps written between that checkpoint and the kill, unless the files are first cut
back to the checkpoint's step, which is what :func:`trim_outputs` does. The step of
each record comes from i-PI's own labels: the ``step`` column of a properties file,
``Step: N`` in the comment line of xyz/extxyz frames, the ``TITLE`` of pdb frames and
the ``#EXTRAS(...)# Step: N`` header of extras files.

Files are scanned backwards from their end, so trimming a multi-gigabyte trajectory
reads only the last few records.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from ipi_dipole import ipi_io
from ipi_dipole.errors import InputError

#: the soft-exit checkpoint that i-PI writes in its working directory
SOFT_EXIT_CHECKPOINT = "RESTART"

_STEP_RE = re.compile(rb"Step:\s*(\d+)")
_BLOCK = 1 << 20

#: trajectory formats whose records can be located by their ``Step:`` label
TRIMMABLE_FORMATS = ("xyz", "ase", "pdb")


@dataclass
class OutputFile:
    """One output stream of an i-PI input.

    Attributes
    ----------
    kind : str
        ``properties``, ``extras``, ``xyz`` (also ASE extxyz) or ``pdb``.
    base : str
        File name before i-PI's bead/format suffixes (``prefix.filename``).
    stride : int
        Steps between records; i-PI writes steps 0, stride, 2 stride, ...
    """

    kind: str
    base: str
    stride: int

    def files(self, directory: Path, claimed_longer: list[str] = ()) -> list[Path]:
        """The files of this output that exist in ``directory`` (i-PI backups ``#...#`` excluded)."""
        suffix = {"properties": "", "extras": r"(_\d+)?", "xyz": r"(_\d+)?\.(xyz|extxyz)",
                  "pdb": r"(_\d+)?\.pdb"}.get(self.kind, r"(_\d+)?(\.\w+)?")
        pattern = re.compile(re.escape(self.base) + suffix)
        out = []
        for path in sorted(Path(directory).iterdir()):
            name = path.name
            if not pattern.fullmatch(name) or not path.is_file():
                continue
            if any(name.startswith(b) for b in claimed_longer if len(b) > len(self.base)):
                continue
            out.append(path)
        return out


def _text(element, default=None):
    return element.text.strip() if element is not None and element.text else default


def read_outputs(input_xml: str | Path) -> tuple[list[OutputFile], dict | None]:
    """The property/trajectory outputs and the ``<checkpoint>`` of an i-PI input or checkpoint.

    Returns
    -------
    outputs : list of OutputFile
    checkpoint : dict or None
        ``{"base": ..., "stride": ..., "overwrite": bool}`` of the periodic checkpoint.
    """
    root = ET.parse(input_xml).getroot()
    output = root.find("output")
    system = root.find("system")
    sys_prefix = system.get("prefix", "") if system is not None else ""
    if output is None:
        return [], None
    prefix = output.get("prefix", "i-pi")

    def name(filename):
        base = f"{prefix}.{filename}" if prefix else filename
        return f"{sys_prefix}_{base}" if sys_prefix else base

    outputs, checkpoint = [], None
    for el in output:
        stride = int(el.get("stride", "1"))
        if el.tag == "properties":
            outputs.append(OutputFile("properties", name(el.get("filename", "out")), stride))
        elif el.tag == "trajectory":
            what = (_text(el, "") or "").split("{")[0].strip()
            fmt = el.get("format", "xyz")
            if what.startswith("extras"):
                kind = "extras"
            elif fmt in ("xyz", "ase"):
                kind = "xyz"
            elif fmt == "pdb":
                kind = "pdb"
            else:
                kind = fmt
            outputs.append(OutputFile(kind, name(el.get("filename", "traj")), stride))
        elif el.tag == "checkpoint":
            overwrite = el.get("overwrite", "true").strip().lower() in ("true", "1", "yes")
            checkpoint = {"base": name(el.get("filename", "restart")), "stride": stride,
                          "overwrite": overwrite}
    return outputs, checkpoint


def output_files(input_xml: str | Path, directory: str | Path) -> list[tuple[OutputFile, Path]]:
    """Every existing (output, file) pair of the run described by ``input_xml`` in ``directory``."""
    outputs, _ = read_outputs(input_xml)
    bases = [o.base for o in outputs]
    pairs = []
    for o in outputs:
        longer = [b for b in bases if b != o.base and b.startswith(o.base)]
        pairs.extend((o, f) for f in o.files(directory, longer))
    return pairs


# --------------------------------------------------------------------------- records

def _lines_backwards(f, end: int):
    """Yield ``(offset, line)`` from the end of a binary file, last line first (no newline)."""
    pos, head = end, b""
    while pos > 0:
        size = min(_BLOCK, pos)
        pos -= size
        f.seek(pos)
        chunk = f.read(size) + head
        parts = chunk.split(b"\n")
        head = parts[0]
        offset = pos + len(head) + 1
        entries = []
        for part in parts[1:]:
            entries.append((offset, part))
            offset += len(part) + 1
        yield from reversed(entries)
    yield 0, head


def _step_column(path: Path) -> int | None:
    """Index of the ``step`` column in an i-PI properties file, from its header.

    None for a file without data lines yet (i-PI has just opened it); InputError for
    data without a ``step`` column.
    """
    with open(path, "rb") as f:
        for raw in f:
            if not raw.startswith(b"#"):
                if raw.strip():
                    break
                continue
            spec = ipi_io.property_column(raw.decode("utf-8", "replace"))
            if spec and spec[2] == "step":
                return spec[0]
        else:
            return None
    raise InputError(f"{path}: the properties file has no 'step' column; cannot locate steps")


@dataclass
class Tail:
    """Where to cut a file so that it ends with the record of step ``last_step``.

    ``cut`` is the byte offset to truncate at; ``last_step`` is the step of the last
    complete record kept (None when no record is kept) and ``partial`` says whether
    an incomplete record was found at the end of the file.
    """

    cut: int
    last_step: int | None
    partial: bool
    size: int


def locate_tail(path: Path, kind: str, max_step: int) -> Tail:
    """Find the end of the last complete record with step <= ``max_step`` in an i-PI output.

    Parameters
    ----------
    path : Path
        The output file.
    kind : str
        ``properties``, ``extras``, ``xyz`` or ``pdb`` (see :class:`OutputFile`).
    max_step : int
        Keep records up to this MD step.
    """
    size = os.path.getsize(path)
    if kind == "properties":
        return _tail_properties(path, max_step, size)
    if kind in ("xyz", "extras", "pdb"):
        return _tail_frames(path, kind, max_step, size)
    raise InputError(f"{path}: i-PI output format '{kind}' cannot be trimmed to a checkpoint "
                     f"(use one of {', '.join(TRIMMABLE_FORMATS)})")


def _tail_properties(path, max_step, size):
    col = _step_column(path)
    if col is None:
        return Tail(size, None, False, size)
    cut, partial = size, False
    with open(path, "rb") as f:
        for offset, line in _lines_backwards(f, size):
            if offset + len(line) == size and line == b"":
                continue  # after the final newline
            if line.startswith(b"#"):
                return Tail(offset + len(line) + 1, None, partial, size)
            complete = offset + len(line) < size  # a newline follows
            try:
                step = int(float(line.split()[col]))
            except (IndexError, ValueError):
                step, complete = None, False
            if not complete:
                partial, cut = True, offset
            elif step > max_step:
                cut = offset
            else:
                return Tail(offset + len(line) + 1, step, partial, size)
    return Tail(cut, None, partial, size)


@dataclass
class _Record:
    start: int          # offset of the first line
    end: int            # offset just past the last line's newline (or of the file end)
    step: int | None    # None for a header cut short
    nbody: int          # lines after the header (xyz: atom lines of this frame only)
    ok: bool            # the record's own lines are whole (newline-terminated, END for pdb)
    junk_after: bool    # partial lines between this record and the next one


def _records_backwards(f, kind, size):
    """Records of an i-PI trajectory/extras file, newest first."""
    body = []  # lines after the current header, newest first
    lines = _lines_backwards(f, size)
    for offset, line in lines:
        if offset + len(line) == size and line == b"":
            continue
        if kind == "extras":
            is_header = b"#EXTRAS" in line
        elif kind == "pdb":
            is_header = line.startswith(b"TITLE")
        else:
            is_header = b"Step:" in line
        if not is_header:
            body.append((offset, line))
            continue
        m = _STEP_RE.search(line)
        step = int(m.group(1)) if m else None
        start, junk, own = offset, False, body
        if kind == "xyz":  # the atom-count line precedes the comment
            try:
                start, count = next(lines)
                natoms = int(count.strip())
            except (StopIteration, ValueError):
                yield _Record(offset, offset, None, 0, False, True)
                return
            if len(body) > natoms:
                own, junk = body[len(body) - natoms:], True
            ok = len(own) == natoms
        elif kind == "pdb":
            ok = bool(body) and body[0][1].strip() == b"END"
        else:
            ok = bool(body)
        last = own[0] if own else (offset, line)
        end = last[0] + len(last[1]) + 1
        ok = ok and end <= size and step is not None
        yield _Record(start, min(end, size), step, len(own), ok, junk)
        body = []


def _tail_frames(path, kind, max_step, size):
    """Trajectory/extras files: records start at a line carrying ``Step: N``."""
    cut, partial = size, False
    with open(path, "rb") as f:
        records = list(_first_records(_records_backwards(f, kind, size), max_step))
    # records: newest first, ending with the first one at or below max_step (if any)
    for i, rec in enumerate(records):
        ok = rec.ok
        if ok and kind == "extras" and i + 1 < len(records) and records[i + 1].ok:
            ok = rec.nbody == records[i + 1].nbody  # a block cut short keeps whole lines
        if rec.junk_after:
            partial = True
        if not ok:
            partial, cut = True, rec.start
        elif rec.step > max_step:
            cut = rec.start
        else:
            return Tail(rec.end, rec.step, partial, size)
    return Tail(cut, None, partial, size)


def _first_records(records, max_step):
    """Records down to the first complete one at or below ``max_step``, plus one more
    (the extras check compares a record with the one before it)."""
    extra = False
    for rec in records:
        yield rec
        if extra:
            return
        if rec.ok and rec.step is not None and rec.step <= max_step:
            extra = True


def last_step(path: Path, kind: str) -> int | None:
    """Step of the last complete record of an i-PI output file (None if it has none)."""
    return locate_tail(path, kind, 1 << 62).last_step


def last_expected_step(step: int, stride: int) -> int:
    """The last step <= ``step`` at which i-PI writes an output of this stride."""
    return step - step % stride


def trim_outputs(input_xml: Path, directory: Path, step: int, *, dry_run: bool = False) -> list[str]:
    """Cut every output of a run back to MD step ``step`` (the checkpoint to resume from).

    Raises :class:`InputError` when a file lacks records it should hold up to ``step``
    (output lost before the checkpoint: ``flush`` > 1 and a hard kill), since
    resuming would leave a gap.

    Returns
    -------
    list of str
        One line per file that was shortened, for the log.
    """
    notes = []
    pairs = output_files(input_xml, directory)
    if step > 0:
        present = {o.base for o, _ in pairs}
        for out in read_outputs(input_xml)[0]:
            if out.base not in present:
                raise InputError(f"{Path(directory) / out.base}*: no file, but the checkpoint is at step "
                                 f"{step}: resuming would leave a gap")
    for out, path in pairs:
        tail = locate_tail(path, out.kind, step)
        want = last_expected_step(step, out.stride)
        if tail.last_step != want:
            have = "no complete record" if tail.last_step is None else f"step {tail.last_step}"
            raise InputError(f"{path}: ends at {have} but the checkpoint is at step {step} "
                             f"(expected a record at step {want}): output written before the "
                             f"checkpoint was lost, so resuming would leave a gap")
        if tail.cut < tail.size:
            notes.append(f"{path.name}: cut {tail.size - tail.cut} bytes after step {tail.last_step}")
            if not dry_run:
                with open(path, "r+b") as f:
                    f.truncate(tail.cut)
                    f.flush()
                    os.fsync(f.fileno())
    return notes


def check_complete(input_xml: Path, directory: Path, total_steps: int) -> list[str]:
    """Problems with the outputs of a finished run (empty list when every file ends at the last step)."""
    problems = []
    pairs = output_files(input_xml, directory)
    outputs, _ = read_outputs(input_xml)
    seen = {o.base for o, _ in pairs}
    for o in outputs:
        if o.base not in seen:
            problems.append(f"output {o.base}*: no file")
    for out, path in pairs:
        tail = locate_tail(path, out.kind, total_steps)
        want = last_expected_step(total_steps, out.stride)
        if tail.last_step != want or tail.cut != tail.size:
            problems.append(f"{path.name}: last complete record at step {tail.last_step}, "
                            f"expected {want} with nothing after it")
    return problems


# ----------------------------------------------------------------------- checkpoints

@dataclass
class Checkpoint:
    path: Path
    step: int
    total_steps: int


def read_checkpoint(path: Path) -> Checkpoint | None:
    """Step and total steps of an i-PI checkpoint; None when it is unreadable (cut short by a kill)."""
    try:
        chk = ipi_io.read_ipi_input(path)
    except InputError:
        return None
    return Checkpoint(Path(path), chk.step, chk.total_steps or 0)


def checkpoints(input_xml: Path, directory: Path) -> list[Checkpoint]:
    """Readable checkpoints of the run in ``directory``, newest step first.

    Candidates: the soft-exit ``RESTART``, the ``<checkpoint>`` output (and its
    numbered files when ``overwrite`` is false), and i-PI's ``#name#N#`` backups of
    both, since a kill while a checkpoint is being overwritten leaves it truncated.
    """
    directory = Path(directory)
    _, chk = read_outputs(input_xml)
    names = [SOFT_EXIT_CHECKPOINT] + ([chk["base"]] if chk else [])
    found = []
    for path in directory.iterdir():
        n = path.name
        plain = n[1:].split("#")[0] if n.startswith("#") else n
        if any(plain == b or re.fullmatch(re.escape(b) + r"_\d+", plain) for b in names):
            c = read_checkpoint(path)
            if c is not None:
                found.append(c)
    found.sort(key=lambda c: (c.step, c.path.name == SOFT_EXIT_CHECKPOINT, not c.path.name.startswith("#")),
               reverse=True)
    return found
