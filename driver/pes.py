"""i-PI PES serving forces from a force field and the dipole and Born charges as extras.

The class follows i-PI's own ``ipi/pes/*.py`` modules, so the same file runs

- as a socket client: ``ipi-dipole drive ...`` (recommended: exits cleanly when i-PI goes
  away) or ``i-pi-py_driver -u -a ADDRESS -m custom -P PATH/pes.py -o model=m.npz,forces=SPEC``;
- inside i-PI, without sockets::

      <ffdirect name="dipole">
        <pes>custom</pes>
        <pes_path>PATH/pes.py</pes_path>
        <parameters>{model: model.npz, forces: lammps:in.lammps, structure: init.xyz}</parameters>
      </ffdirect>

- under ``<ffmpi>``: ``mpirun -n 1 i-pi input.xml : -n 1 i-pi-py_driver --mpi -m custom
  -P PATH/pes.py -o model=...``.

``PATH/pes.py`` is printed by ``ipi-dipole drive --pes-path``.

i-PI's parameter syntaxes split on commas (``-o``) or on commas and braces
(``<parameters>``): values must contain neither. Give species as ``O H H`` or ``(OH2)64``,
and calculator keyword arguments in a JSON file (``forces: ase:tblite.ase:TBLite:calc.json``).

Parameters (keyword arguments, all strings or numbers as i-PI passes them)
----------
model : str, optional
    ``PolarizationModel`` file (``ipi-dipole train -o model.npz``). Without it no extras
    are sent.
forces : str
    Force back-end SPEC (see :mod:`ipi_dipole.driver.backends`), default ``none``.
structure : str, optional
    Any ASE-readable file with the atoms in i-PI's order (e.g. i-PI's own init.xyz):
    only the species are read from it.
species : str, optional
    The species instead of ``structure``: ``"O H H O H H"``, ``"O,H,H"`` or ``"(OH2)2"``.
pbc : str, optional
    ``auto`` (default): periodic when i-PI's cell has a positive volume; ``true`` or
    ``false`` to say so. i-PI 3.3 insists on a cell, so a molecule comes in a box: give
    ``false`` for it (the force back-end and the model then ignore the box).
bec : bool, optional
    Send the Born charges (default true); false sends only the dipole.
ipi_input : str, optional
    The i-PI input or checkpoint XML that i-PI runs (``nve.xml``, or the ``RESTART`` it
    resumes from). The driver then computes the dipole and the Born charges only at the
    steps where that input writes them (:mod:`ipi_dipole.driver.schedule`), counting from
    its ``<step>``: for liquid water with the Born charges every 8 steps this makes the
    model's cost per MD step about 8 times smaller. ``auto`` inside i-PI (``<ffdirect>``):
    the file on i-PI's own command line, so a run resumed from its checkpoint (``i-pi
    RESTART``, as ``ipi-dipole replicas run`` does) counts from the right step.
stride, bec_stride : int, optional
    Compute the dipole every ``stride`` steps and the Born charges every ``bec_stride``
    (default ``stride``) instead; with ``ipi_input`` they are checked against it (an
    error names the trajectory they would miss). Default: every step, or as
    ``ipi_input`` says. Without ``ipi_input`` the count starts at step 0, so a restart
    from a checkpoint at a step that is not a multiple of the strides needs ``ipi_input``.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
from ipi.pes.dummy import Dummy_driver

from ipi_dipole.driver.backends import make_backend
from ipi_dipole.driver.schedule import ExtrasSchedule
from ipi_dipole.errors import InputError
from ipi_dipole.ipi_io import units

__DRIVER_NAME__ = "ipi_dipole"
__DRIVER_CLASS__ = "DipolePES"

#: keyword arguments that i-PI itself adds (FFDirect passes its verbosity level)
_IPI_KWARGS = {"verbosity"}


#: options of the i-pi script that take a value (its optparse parser, i-PI 3.3)
_IPI_VALUE_OPTIONS = {"-V", "--verbosity", "-S", "--sockets_prefix", "--profiler-clock", "--profiler-output"}


def input_of_this_ipi(argv: list[str] | None = None) -> str:
    """The input file of the i-PI process this PES runs in (``ipi_input: auto`` in ``<ffdirect>``).

    Raises
    ------
    InputError
        When the process is not the ``i-pi`` script (a socket driver cannot see i-PI's
        command line) or names no input file.
    """
    argv = list(sys.argv if argv is None else argv)
    program = os.path.basename(argv[0]) if argv else ""
    if program not in ("i-pi", "i-pi.py"):
        raise InputError(f"ipi_input auto works only inside i-PI (<ffdirect>), but this process is "
                         f"{program or 'unnamed'}: give the i-PI input or checkpoint file instead")
    positional, skip = [], False
    for arg in argv[1:]:
        if skip:
            skip = False
        elif arg in _IPI_VALUE_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            positional.append(arg)
    if not positional:
        raise InputError(f"ipi_input auto: no input file on i-PI's command line {' '.join(argv)}")
    return positional[-1]


def _set_numba_threads(n: int) -> None:
    import numba

    if numba.get_num_threads() != n:
        numba.set_num_threads(n)


def encode_extras(dipole: list[float], bec: np.ndarray | None, request: int) -> str:
    """The extras JSON i-PI decodes: ``{"dipole": [3], "BEC": [[3] * 3N]}`` (atomic units).

    The BEC block is formatted with one ``%``-operation (13 significant digits, more than
    the 9 i-PI writes): ``json.dumps`` of a (1152, 3) list costs twice as long, a sizeable
    part of a step at every written frame. Non-finite values are refused here, with the
    request, rather than as a JSON error inside i-PI.
    """
    if not (np.all(np.isfinite(dipole)) and (bec is None or np.all(np.isfinite(bec)))):
        raise InputError(f"the model returned a non-finite dipole or Born charge at force request "
                         f"{request}: refusing to send it to i-PI")
    text = '{"dipole": [%.17g, %.17g, %.17g]' % tuple(dipole)
    if bec is None:
        return text + "}"
    flat = np.asarray(bec, dtype=float).ravel().tolist()
    rows = ("[%.12e, %.12e, %.12e], " * (len(flat) // 3)) % tuple(flat)
    return text + ', "BEC": [' + rows[:-2] + "]}"


def parse_species(text: str) -> list[str]:
    """Chemical symbols from ``"O H H"``, ``"O,H,H"`` or a formula in atom order like ``"(OH2)64"``."""
    from ase.data import atomic_numbers
    from ase.symbols import string2symbols

    text = str(text).strip()
    try:
        if any(c in text for c in " ,;"):
            symbols = [s for s in text.replace(",", " ").replace(";", " ").split()]
        else:
            symbols = string2symbols(text)
    except Exception as exc:
        raise InputError(f"species {text!r}: not a list of chemical symbols ({exc})") from exc
    bad = [s for s in symbols if s not in atomic_numbers]
    if bad or not symbols:
        raise InputError(f"species {text!r}: unknown chemical symbol(s) {', '.join(bad) or '(none given)'}")
    return symbols


def read_species(path: str) -> tuple[list[str], np.ndarray]:
    """Species and positions (Angstrom, as ASE reads them) of the first frame of ``path``."""
    import ase.io

    try:
        atoms = ase.io.read(path, index=0)
    except FileNotFoundError:
        raise InputError(f"{path}: no such structure file") from None
    except Exception as exc:
        raise InputError(f"{path}: not a structure file ASE can read ({exc})") from exc
    return atoms.get_chemical_symbols(), atoms.positions


def _as_bool(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise InputError(f"{name}={value!r}: expected true or false")


def load_model(path: str):
    """Load a ``PolarizationModel``, with one-line errors for a missing or bad file."""
    from pathlib import Path

    if not Path(path).is_file():
        raise InputError(f"{path}: no such model file")
    from ipi_dipole.model import PolarizationModel

    try:
        return PolarizationModel.load(path)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: not a PolarizationModel file ({exc})") from exc


class DipolePES(Dummy_driver):
    """Energy, forces and virial from a force back-end; dipole and Born charges as extras.

    See the module docstring for the parameters. ``compute_structure(cell, pos)`` takes
    i-PI's cell (lattice vectors as columns) and positions (N, 3), both in bohr, and returns
    ``(energy [Ha], forces [Ha/bohr], virial [Ha], extras)``, with ``extras`` the JSON text
    ``{"dipole": M [e*bohr, 3], "BEC": Z.transpose(0, 2, 1).reshape(3N, 3) [e]}``.

    Attributes
    ----------
    timings : dict
        Cumulative wall time (s) spent in the force back-end (``forces``), in the model
        (``model``) and in encoding the extras (``extras``), and the number of ``calls``.
    """

    def __init__(self, model=None, forces="none", structure=None, species=None, pbc="auto",
                 bec=True, ipi_input=None, stride=None, bec_stride=None, *args, verbose=False, **kwargs):
        unknown = sorted(set(kwargs) - _IPI_KWARGS)
        if unknown:
            raise InputError(f"unknown driver parameter(s) {', '.join(unknown)} (known: model, "
                             "forces, structure, species, pbc, bec, ipi_input, stride, bec_stride)")
        if args:
            raise InputError(f"unexpected positional driver parameter(s) {list(args)}: use key=value")
        self.model_path = None if model in (None, "", "none") else str(model)
        self.forces_spec = str(forces or "none")
        self.structure_path = None if structure in (None, "") else str(structure)
        self.species_text = None if species in (None, "") else species
        self.pbc_option = str(pbc).strip().lower()
        if self.pbc_option not in ("auto", "true", "false"):
            raise InputError(f"pbc={pbc!r}: expected auto, true or false")
        self.send_bec = _as_bool(bec, "bec")
        self.ipi_input = None if ipi_input in (None, "", "none") else str(ipi_input)
        self.stride = None if stride in (None, "", "auto") else stride
        self.bec_stride = None if bec_stride in (None, "", "auto") else bec_stride
        self.schedule = None
        self.timings = {"forces": 0.0, "model": 0.0, "extras": 0.0, "calls": 0, "model_calls": 0}
        self._pbc = None if self.pbc_option == "auto" else self.pbc_option == "true"
        self._checked_natoms = False
        self._requests = 0
        # one OpenMP thread unless asked: LAMMPS and tblite are several times slower per
        # call on a few shared cores with more (must precede their import)
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        # the model's numba kernels run threaded; one thread unless NUMBA_NUM_THREADS says
        # otherwise, because replicas usually fill every core with one rank each. numba's
        # setting is per thread and i-PI's <ffdirect> calls from a worker thread, so it is
        # applied again where the model runs (compute_structure).
        import numba

        self._numba_threads = None if "NUMBA_NUM_THREADS" in os.environ else 1
        if self._numba_threads:
            numba.set_num_threads(self._numba_threads)
        super().__init__(verbose)

    # -- set-up ---------------------------------------------------------------------
    def check_parameters(self):
        """Load the model and the back-end, find the species, check they fit together."""
        self.model = load_model(self.model_path) if self.model_path else None
        self.backend = make_backend(self.forces_spec)
        if self.model is None and self.forces_spec.strip().lower() == "none":
            raise InputError("nothing to compute: give a model (extras) or a force back-end, or both")

        positions = None
        if self.species_text is not None:
            self.symbols = parse_species(self.species_text)
            self.species_source = "--species"
        elif self.structure_path is not None:
            self.symbols, positions = read_species(self.structure_path)
            self.species_source = self.structure_path
        elif self.backend.species_hint() is not None:
            self.symbols = self.backend.species_hint()
            self.species_source = f"the masses in {self.forces_spec}"
            print(f"ipi-dipole driver: species guessed from {self.species_source}: "
                  f"{_summary(self.symbols)} (give --structure to be sure)", file=sys.stderr)
        else:
            raise InputError("the driver needs the species in i-PI's atom order (i-PI sends only "
                             "positions): give --structure FILE (e.g. i-PI's init.xyz) or --species")

        if self.model is not None:
            known = list(self.model.species_)
            unknown = sorted(set(self.symbols) - set(known)) if known else []
            if unknown:
                raise InputError(f"species mismatch: {self.species_source} has {', '.join(unknown)}, "
                                 f"which model {self.model_path} does not know "
                                 f"(it knows {', '.join(known)})")
        self.backend.setup(self.symbols, positions)
        self.schedule = self._make_schedule()
        if self.model is not None and self.schedule.depends_on_step():
            print(f"ipi-dipole driver: extras computed only where written: {self.schedule.describe()}",
                  file=sys.stderr)

        from ase import Atoms

        self.atoms = Atoms(self.symbols)

    def _make_schedule(self) -> ExtrasSchedule:
        if self.ipi_input is not None and self.ipi_input.strip().lower() == "auto":
            self.ipi_input = input_of_this_ipi()
        needed = ExtrasSchedule.from_ipi_input(self.ipi_input) if self.ipi_input else None
        if needed is not None and self.stride is None and self.bec_stride is None:
            if not self.send_bec:
                ExtrasSchedule.every(1, bec=False).check_covers(needed)
            return needed
        mine = ExtrasSchedule.every(self.stride or 1, self.bec_stride, bec=self.send_bec)
        if needed is not None:
            mine.first_step = needed.first_step
            mine.check_covers(needed)
        return mine

    def new_session(self, requests_served: int) -> None:
        """Called by the socket client before each connection to i-PI is served.

        A driver that counts steps cannot follow i-PI into a restart: it does not know the
        step i-PI resumes from.
        """
        if requests_served > 0 and self.model is not None and self.schedule is not None and self.schedule.depends_on_step():
            raise InputError("i-PI reconnected, but this driver computes the extras at a stride "
                             f"({self.schedule.describe()}) and cannot know the step i-PI resumes from: "
                             "start a new driver with --ipi-input set to the checkpoint i-PI restarts from")
        self._requests = 0

    # -- evaluation -----------------------------------------------------------------
    def _periodic(self, cell_A: np.ndarray) -> bool:
        if self._pbc is None:
            # i-PI's cell is minus the identity when nothing set it
            self._pbc = bool(np.linalg.det(cell_A) > 1e-8)
            if self._pbc:
                lengths = " x ".join(f"{x:.4g}" for x in np.linalg.norm(cell_A, axis=1))
                print(f"ipi-dipole driver: treating the system as periodic ({lengths} A cell, pbc auto); "
                      "give pbc false for a molecule in a box", file=sys.stderr)
        return self._pbc

    def compute_structure(self, cell, pos):
        """One configuration from i-PI (atomic units) -> (pot, force, vir, extras JSON)."""
        positions = units.positions_from_ipi(pos)
        if not self._checked_natoms:
            if len(positions) != len(self.symbols):
                raise InputError(f"atom count mismatch: i-PI sent {len(positions)} atoms but "
                                 f"{self.species_source} has {len(self.symbols)}")
            self._checked_natoms = True
        cell_A = units.cell_from_ipi(cell)
        pbc = self._periodic(cell_A)

        t0 = time.perf_counter()
        energy, forces, virial = self.backend.compute(positions, cell_A, pbc)
        t1 = time.perf_counter()
        extras = ""
        want_dipole, want_bec = self.schedule.wants(self._requests)
        self._requests += 1
        if self.model is not None and want_dipole:
            if self._numba_threads:
                _set_numba_threads(self._numba_threads)
            atoms = self.atoms
            atoms.pbc = pbc
            atoms.cell = cell_A if pbc else np.zeros((3, 3))
            atoms.positions = positions
            dipole, born = self.model.predict(atoms, bec=want_bec)
            t2 = time.perf_counter()
            extras = encode_extras(units.dipole_to_ipi(dipole), units.bec_to_ipi_array(born) if want_bec else None,
                                   self._requests - 1)
            t3 = time.perf_counter()
            self.timings["model"] += t2 - t1
            self.timings["extras"] += t3 - t2
            self.timings["model_calls"] += 1
        self.timings["forces"] += t1 - t0
        self.timings["calls"] += 1

        vir = units.virial_to_ipi(virial) if pbc else np.zeros((3, 3))
        return units.energy_to_ipi(energy), units.forces_to_ipi(forces), vir, extras

    def close(self):
        """Release the back-end (LAMMPS instance)."""
        self.backend.close()


def _summary(symbols: list[str]) -> str:
    from ase.formula import Formula

    return f"{len(symbols)} atoms, {Formula.from_list(symbols).format('hill')}"
