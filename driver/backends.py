"""Force back-ends of the i-PI driver: energy, forces and virial for one configuration.

A back-end is chosen by a SPEC string (see :func:`make_backend`):

``lammps:IN_FILE``
    LAMMPS in-process through its Python module (any ``pair_style``), see
    :class:`LammpsBackend` for the two accepted input styles.
``ase:MODULE:CLASS[:JSON_KWARGS]``
    Any ASE calculator, e.g. ``ase:tblite.ase:TBLite:{"method":"GFN2-xTB","verbosity":0}``
    or ``ase:ase.calculators.emt:EMT``. JSON_KWARGS may also be the path of a JSON file
    (i-PI's ``<parameters>`` and ``-o`` syntaxes cannot carry commas or braces).
``none``
    Zero energy and forces: the driver then only serves the dipole and Born-charge
    extras, beside LAMMPS's own ``fix ipi`` client (see ``inputs/README.md``).

Every back-end works in ASE units: positions and cell in Angstrom (cell vectors as rows),
energy in eV, forces in eV/Angstrom, virial ``W_ab = sum_i x_ia F_ib`` in eV (zero for
non-periodic systems). Unit conversion to i-PI happens in :mod:`ipi_dipole.ipi_io.units`.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import sys
from pathlib import Path

import numpy as np

from ipi_dipole import lammps_runtime
from ipi_dipole.errors import InputError


class ForceBackend:
    """Base class: the interface every back-end implements."""

    #: short description used in messages
    label = "force back-end"

    def setup(self, symbols: list[str], positions: np.ndarray | None = None) -> None:
        """Prepare for structures with these species (in i-PI's atom order).

        Parameters
        ----------
        symbols : list of str
            Chemical symbols, one per atom, in i-PI's order.
        positions : array (N, 3), optional
            A representative configuration (Angstrom), when one is known, so that
            back-ends can check their input before the first request.
        """

    def species_hint(self) -> list[str] | None:
        """Species the back-end itself knows (in atom order), or None."""
        return None

    def compute(self, positions: np.ndarray, cell: np.ndarray, pbc: bool):
        """Energy (eV), forces (N, 3, eV/A) and virial (3, 3, eV) of one configuration.

        Parameters
        ----------
        positions : array (N, 3)
            Angstrom.
        cell : array (3, 3)
            Lattice vectors as rows, Angstrom (ignored when ``pbc`` is False).
        pbc : bool
            Whether the system is periodic in all three directions.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release external resources (LAMMPS instance, ...)."""


class ZeroBackend(ForceBackend):
    """Zero energy, forces and virial: the driver serves only the extras."""

    label = "none (zero forces, extras only)"

    def compute(self, positions, cell, pbc):
        return 0.0, np.zeros((len(positions), 3)), np.zeros((3, 3))


class ASEBackend(ForceBackend):
    """Any ASE calculator, created from its module and class names.

    Parameters
    ----------
    module, cls : str
        Where the calculator class lives, e.g. ``"tblite.ase"`` and ``"TBLite"``.
    kwargs : dict
        Keyword arguments of the calculator's constructor.
    """

    def __init__(self, module: str, cls: str, kwargs: dict | None = None):
        self.kwargs = dict(kwargs or {})
        self.label = f"ASE calculator {module}.{cls}"
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            raise InputError(f"ase:{module}:{cls}: cannot import module {module!r} ({exc})") from exc
        try:
            self.calculator_class = getattr(mod, cls)
        except AttributeError:
            raise InputError(f"ase:{module}:{cls}: module {module!r} has no {cls!r}") from None
        self.atoms = None

    def setup(self, symbols, positions=None):
        from ase import Atoms

        try:
            calc = self.calculator_class(**self.kwargs)
        except Exception as exc:
            raise InputError(f"{self.label}: cannot create it with {self.kwargs} ({exc})") from exc
        self.atoms = Atoms(symbols)
        self.atoms.calc = calc

    def compute(self, positions, cell, pbc):
        from ase.calculators.calculator import PropertyNotImplementedError

        from ipi_dipole.ipi_io.units import virial_from_stress

        atoms = self.atoms
        atoms.pbc = pbc
        atoms.cell = cell if pbc else np.zeros((3, 3))
        atoms.positions = positions
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
        virial = np.zeros((3, 3))
        if pbc:
            try:
                virial = virial_from_stress(atoms.get_stress(voigt=False), atoms.get_volume())
            except PropertyNotImplementedError:
                if not getattr(self, "_warned_stress", False):
                    print(f"ipi-dipole driver: {self.label} gives no stress: virial set to zero "
                          "(fine for NVE/NVT, wrong for NPT)", file=sys.stderr)
                    self._warned_stress = True
        return float(energy), np.asarray(forces, dtype=float), virial


# --------------------------------------------------------------------------- LAMMPS

#: commands that must come before the box is created (style (b) inputs)
_HEADER_COMMANDS = {"units", "atom_style", "atom_modify", "dimension", "newton", "boundary",
                    "processors"}
#: commands that would move atoms, run dynamics or talk to i-PI themselves
_DROPPED_COMMANDS = {"run", "minimize", "rerun", "min_style", "write_restart", "write_data",
                     "write_dump"}
#: fix styles that integrate, thermostat or connect to i-PI (fix langevin would add random
#: forces during the setup of "run 0")
_DROPPED_FIX = re.compile(r"^(ipi|nve.*|nvt.*|npt.*|nph.*|langevin.*|gle|gld|temp/.*|press/.*"
                          r"|box/relax|rigid.*|shake|rattle|dt/reset|momentum|recenter)$")
_BUILDS_SYSTEM = re.compile(r"^\s*(read_data|read_restart|create_box)\b", re.MULTILINE)
_SPECIES_LINE = re.compile(r"^\s*#\s*species\s*:\s*(.+?)\s*$", re.MULTILINE | re.IGNORECASE)


def _lammps_commands(text: str) -> list[str]:
    """Logical LAMMPS commands of an input text: '&' continuations joined, comments dropped."""
    text = re.sub(r"&[ \t]*\n", " ", text)
    out = []
    for line in text.splitlines():
        line = _strip_comment(line).strip()
        if line:
            out.append(line)
    return out


def _strip_comment(line: str) -> str:
    """A LAMMPS line without its comment: '#' outside single or double quotes."""
    quote = None
    for k, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            return line[:k]
    return line


@contextlib.contextmanager
def _working_directory(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


class LammpsBackend(ForceBackend):
    """LAMMPS in-process, through its Python module.

    Two input styles for ``IN_FILE``:

    (a) the file builds the system (it contains ``read_data``, ``read_restart`` or
        ``create_box``): the usual input written for LAMMPS's ``fix ipi``. Atoms must have
        IDs 1..N in i-PI's order. ``run``/``minimize`` commands and integrator, thermostat
        and ``fix ipi`` fixes are dropped (listed on stderr).
    (b) the file holds only interaction commands (``pair_style``, ``pair_coeff``, ...,
        optionally ``units``/``atom_style`` and ``set type ... charge ...``) plus a comment
        line ``# species: O H`` giving the LAMMPS type order. The driver creates the box and
        the atoms from i-PI's structure (default ``units metal``), with masses from
        :data:`ase.data.atomic_masses`. This is what ``ipi-dipole train-forcefield`` writes.

    Relative paths in the file are resolved from the file's directory. The LAMMPS box
    follows i-PI's cell at every request (NPT works): a general cell is rotated to LAMMPS's
    lower-triangular form with :class:`ase.calculators.lammps.Prism`, positions are
    wrapped into it, and forces and virial are rotated back. Energy, forces and virial
    are converted from the LAMMPS ``units`` (metal, real, electron, ...) to eV and Angstrom.
    The first request (and the first after a cell change) runs LAMMPS's full set-up
    (``run 0``); later ones a single force step without it (``run 1 pre no``, nothing
    integrates), which re-neighbours only when atoms moved more than half the skin: about
    the cost of one LAMMPS MD step.

    Parameters
    ----------
    in_file : str or Path
        The LAMMPS input.
    log : str, optional
        LAMMPS log file (default: none).
    """

    def __init__(self, in_file, log: str | None = None):
        self.in_file = Path(in_file).resolve()
        self.label = f"LAMMPS ({in_file})"
        if not self.in_file.is_file():
            raise InputError(f"{in_file}: no such LAMMPS input file")
        self.text = self.in_file.read_text()
        self.builds_system = bool(_BUILDS_SYSTEM.search(self.text))
        self.type_species = None
        if not self.builds_system:
            m = _SPECIES_LINE.search(self.text)
            if not m:
                raise InputError(f"{in_file}: neither builds the system (read_data, read_restart, "
                                 "create_box) nor has a '# species: A B ...' line giving the "
                                 "LAMMPS type order")
            self.type_species = m.group(1).replace(",", " ").split()
        self.log = log
        self.lmp = None
        self.symbols = None
        self._cell = None       # cell (rows, Angstrom) of the current LAMMPS box
        self._pbc = None
        self._rot = np.eye(3)   # ASE -> LAMMPS: v_lmp = v_ase @ rot
        if self.builds_system:
            self._build_from_file()

    # -- construction ---------------------------------------------------------------
    def _new_instance(self):
        self.lmp = lammps_runtime.new_lammps(self.log)

    def _run_commands(self, commands: list[str], where: str):
        # relative paths in the input are meant from the input's directory
        with _working_directory(self.in_file.parent):
            lammps_runtime.run_commands(self.lmp, commands, where)

    def _filtered(self, commands: list[str]) -> list[str]:
        self._kspace_commands = [c for c in commands if c.split()[0] in ("kspace_style", "kspace_modify")]
        kept, dropped = [], []
        for cmd in commands:
            words = cmd.split()
            if words[0] in _DROPPED_COMMANDS or (
                    words[0] == "fix" and len(words) > 3 and _DROPPED_FIX.match(words[3])):
                dropped.append(cmd)
            else:
                kept.append(cmd)
        if dropped:
            print(f"ipi-dipole driver: {self.in_file.name}: ignoring {len(dropped)} command(s) that "
                  f"would run dynamics or move atoms: " + "; ".join(dropped), file=sys.stderr)
        return kept

    def _finish_setup(self):
        """Unit factors, periodicity, and the computes read back after every force call."""
        self.units = self.lmp.extract_global("units")
        from ase.calculators.lammps.unitconvert import UNITSETS, convert

        if self.units not in UNITSETS:
            raise InputError(f"{self.in_file}: LAMMPS 'units {self.units}' is not supported "
                             f"(use one of {', '.join(u for u in UNITSETS if u != 'ASE')})")
        self._length = convert(1.0, "distance", "ASE", self.units)   # LAMMPS length per A
        self._energy = convert(1.0, "energy", self.units, "ASE")     # eV per LAMMPS energy
        self._force = convert(1.0, "force", self.units, "ASE")       # eV/A per LAMMPS force
        self._nktv2p = float(self.lmp.extract_global("nktv2p"))
        periodic = list(self.lmp.extract_box()[5])
        if any(periodic) and not all(periodic):
            raise InputError(f"{self.in_file}: mixed periodic and non-periodic boundaries are not "
                             "supported by the driver")
        self.lammps_periodic = all(periodic)
        cmds = ["compute ipidipole_pe all pe"]
        thermo = "thermo_style custom step c_ipidipole_pe"
        if self.lammps_periodic:
            cmds.append("compute ipidipole_vir all pressure NULL virial")
            thermo += " " + " ".join(f"c_ipidipole_vir[{k}]" for k in range(1, 7))
        # i-PI may send any configuration: check displacements at every request
        cmds += [thermo, "thermo_modify norm no lost error", "thermo 0",
                 "neigh_modify every 1 delay 0 check yes"]
        self._run_commands(cmds, "driver set-up")
        self.natoms = int(self.lmp.get_natoms())
        self._needs_setup = True

    def _build_from_file(self):
        """Style (a): the input file builds the system itself."""
        self._new_instance()
        self._run_commands(self._filtered(_lammps_commands(self.text)), str(self.in_file))
        self._finish_setup()
        ids = np.sort(self._local("id"))
        if not np.array_equal(ids, np.arange(1, self.natoms + 1)):
            raise InputError(f"{self.in_file}: atom IDs must be 1..N in i-PI's atom order")
        # velocities play no part in forces; zeroing them keeps data files' velocities
        # out of any kinetic term
        self._run_commands(["velocity all set 0.0 0.0 0.0"], "driver set-up")

    def _build_from_species(self, cell, pbc, positions):
        """Style (b): create box and atoms, then the interaction commands of the file."""
        from ase import Atoms

        commands = self._filtered(_lammps_commands(self.text))
        header = [c for c in commands if c.split()[0] in _HEADER_COMMANDS]
        body = [c for c in commands if c.split()[0] not in _HEADER_COMMANDS]
        atoms = Atoms(self.symbols, positions=positions, cell=cell if pbc else None, pbc=pbc)
        self._new_instance()
        # a shrink-wrapped box for molecules: it follows the atoms wherever i-PI moves them
        box = lammps_runtime.create_box(self.lmp, atoms, self.type_species, header=header,
                                        where=str(self.in_file), run=self._run_commands)
        self._rot = box.rotation
        self._lammps_cell = box.cell
        self._run_commands(body, str(self.in_file))
        self._finish_setup()
        self._cell = np.array(cell, dtype=float) if pbc else None
        self._pbc = pbc

    # -- helpers --------------------------------------------------------------------
    def _local(self, name):
        nlocal = self.lmp.extract_global("nlocal")
        return self.lmp.numpy.extract_atom(name)[:nlocal]

    def _set_rotation(self, cell):
        """Rotation to LAMMPS's lower-triangular cell; returns (lx, ly, lz, xy, xz, yz) in A."""
        box, self._rot, self._lammps_cell = lammps_runtime.lammps_cell(cell)
        return box

    def _to_lammps(self, positions, pbc):
        from ase.geometry import wrap_positions

        x = positions @ self._rot
        if pbc:
            x = wrap_positions(x, cell=self._lammps_cell, pbc=True, eps=0.0)
        return x

    def _set_box(self, cell):
        """Make the LAMMPS box i-PI's cell (rotated); atom positions are set afterwards."""
        lx, ly, lz, xy, xz, yz = self._set_rotation(cell) * self._length
        g = lambda v: f"{float(v):.17g}"  # noqa: E731
        cmds = []
        tilted = max(abs(xy), abs(xz), abs(yz)) > 0.0
        if tilted and not self.lmp.extract_setting("triclinic"):
            # LAMMPS wants kspace redefined after an orthogonal box turns triclinic
            cmds += ["change_box all triclinic"] + self._kspace_commands
        box = f"change_box all x final 0 {g(lx)} y final 0 {g(ly)} z final 0 {g(lz)}"
        if tilted or self.lmp.extract_setting("triclinic"):
            box += f" xy final {g(xy)} xz final {g(xz)} yz final {g(yz)}"
        self._run_commands(cmds + [box + " units box"], "driver (new cell)")
        self._cell = np.array(cell, dtype=float)
        self._needs_setup = True

    # -- interface ------------------------------------------------------------------
    def species_hint(self):
        """Species guessed from the LAMMPS masses (style (a) only): the nearest standard mass."""
        if not self.builds_system:
            return None
        from ase.data import atomic_masses, chemical_symbols

        masses = self._per_atom_masses()
        z = np.abs(atomic_masses[None, 1:] - masses[:, None]).argmin(axis=1) + 1
        return [chemical_symbols[k] for k in z]

    def _per_atom_masses(self):
        """Per-atom masses in g/mol (= amu: LAMMPS's mass unit in metal, real and electron)."""
        ids = self._local("id")
        if self.lmp.extract_setting("rmass_flag"):
            m = self._local("rmass")
        else:
            m = self.lmp.numpy.extract_atom("mass")[self._local("type")]
        return np.asarray(m, dtype=float)[np.argsort(ids)]

    def setup(self, symbols, positions=None):
        self.symbols = list(symbols)
        if self.builds_system:
            if len(self.symbols) != self.natoms:
                raise InputError(f"{self.in_file} has {self.natoms} atoms but the structure has "
                                 f"{len(self.symbols)}")
            self._check_masses()
        else:
            unknown = sorted(set(self.symbols) - set(self.type_species))
            if unknown:
                raise InputError(f"structure has species {', '.join(unknown)} missing from the "
                                 f"'# species: {' '.join(self.type_species)}' line of {self.in_file}")

    def _check_masses(self):
        guess = self.species_hint()
        bad = [i for i, (g, s) in enumerate(zip(guess, self.symbols)) if g != s]
        if bad:
            i = bad[0]
            print(f"ipi-dipole driver: warning: {self.in_file.name}: the LAMMPS mass of atom {i + 1} "
                  f"suggests {guess[i]} but the structure says {self.symbols[i]} ({len(bad)} such "
                  "atoms): check that both list the atoms in the same order (ignore this if you "
                  "changed masses on purpose)", file=sys.stderr)

    def compute(self, positions, cell, pbc):
        positions = np.asarray(positions, dtype=float)
        if self.builds_system:
            if self.lmp is None:
                raise RuntimeError("LAMMPS back-end used after close()")
            if len(positions) != self.natoms:
                raise InputError(f"i-PI sent {len(positions)} atoms but {self.in_file} has {self.natoms}")
            pbc = self.lammps_periodic
            if pbc and (self._cell is None or not np.array_equal(cell, self._cell)):
                self._set_box(cell)
        else:
            if self.lmp is None or pbc != self._pbc:
                self.close()
                self._build_from_species(cell, pbc, positions)
            elif pbc and not np.array_equal(cell, self._cell):
                self._set_box(cell)
        # positions go straight into LAMMPS's own array, in the order of its atom IDs
        ids = self._local("id") - 1
        x = self._local("x")
        if pbc and not self._needs_setup:
            # each atom goes to the periodic image nearest to where LAMMPS has it: atoms
            # move continuously and LAMMPS wraps them when it re-neighbours, as in its own
            # MD (wrapping here would make an atom crossing the box face force a
            # re-neighbouring at almost every step)
            box = self._lammps_cell * self._length
            target = (positions @ self._rot)[ids] * self._length
            frac = np.linalg.solve(box.T, (target - x).T).T
            x += (frac - np.round(frac)) @ box
        else:
            x[:] = self._to_lammps(positions, pbc)[ids] * self._length
        # A full set-up (what "run 0" does) costs 2-3 MD steps; after the first request and
        # while the box stays, one step without set-up does what fix ipi does: LAMMPS
        # re-neighbours when atoms moved more than half the skin, else it only refreshes
        # the ghost atoms, then computes forces. Nothing integrates, so atoms stay put.
        command = "run 0 post no" if self._needs_setup else "run 1 pre no post no"
        try:
            self.lmp.command(command)
            self._needs_setup = False
        except Exception as exc:
            msg = str(exc).strip().replace("\n", " ")
            raise InputError(f"{self.in_file}: LAMMPS failed: {msg}") from exc
        ids = self._local("id") - 1
        forces = np.empty_like(positions)
        forces[ids] = self._local("f")
        forces = forces @ self._rot.T * self._force
        energy = float(lammps_runtime.global_compute(self.lmp, "ipidipole_pe", "scalar")) * self._energy
        virial = np.zeros((3, 3))
        if pbc:
            p = np.array(lammps_runtime.global_compute(self.lmp, "ipidipole_vir", "vector"))
            w = np.array([[p[0], p[3], p[4]], [p[3], p[1], p[5]], [p[4], p[5], p[2]]])
            volume = abs(np.linalg.det(self._cell)) * self._length ** 3
            virial = self._rot @ (w * volume / self._nktv2p * self._energy) @ self._rot.T
        return energy, forces, virial

    def close(self):
        if self.lmp is not None:
            try:
                self.lmp.close()
            finally:
                self.lmp = None


# --------------------------------------------------------------------------- parsing

def make_backend(spec: str) -> ForceBackend:
    """Create the back-end named by ``spec`` (see the module docstring).

    Raises
    ------
    InputError
        For an unknown kind, a missing file, an unimportable calculator or bad JSON.
    """
    spec = (spec or "none").strip()
    kind, _, rest = spec.partition(":")
    kind = kind.lower()
    if kind == "none":
        return ZeroBackend()
    if kind == "lammps":
        if not rest:
            raise InputError("--forces lammps:IN_FILE needs the LAMMPS input file")
        return LammpsBackend(rest)
    if kind == "ase":
        parts = rest.split(":", 2)
        if len(parts) < 2 or not all(parts[:2]):
            raise InputError(f"--forces {spec}: expected ase:MODULE:CLASS[:JSON_KWARGS]")
        kwargs = {}
        if len(parts) == 3 and parts[2].strip():
            raw = parts[2].strip()
            if not raw.startswith("{"):
                path = Path(raw)
                if not path.is_file():
                    raise InputError(f"--forces {spec}: {raw} is neither JSON nor a JSON file")
                raw = path.read_text()
            try:
                kwargs = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise InputError(f"--forces {spec}: bad JSON keyword arguments ({exc})") from exc
            if not isinstance(kwargs, dict):
                raise InputError(f"--forces {spec}: the keyword arguments must be a JSON object")
        return ASEBackend(parts[0], parts[1], kwargs)
    raise InputError(f"--forces {spec}: unknown back-end {kind!r} (use lammps:IN_FILE, "
                     "ase:MODULE:CLASS[:JSON_KWARGS] or none)")
