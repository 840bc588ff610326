"""Born charges of crystals from Quantum ESPRESSO: pw.x (SCF) then ph.x (electric field).

Per structure, in a work directory kept per structure (``WORK/00012/`` for input structure
12): ``pw.in`` written by ASE's ``ase.io.espresso`` writer, ``pw.x`` (energy, forces), then
``ph.x`` at q = 0 with ``trans = .false., epsil = .true., zeu = .true.``: the electric-field
response alone gives ``Z*`` and the clamped-ion dielectric tensor, no phonons. Everything is
read back with the package's QE reader (:mod:`ipi_dipole.readers.qe`): ``Z*`` and eps_inf
from ph.x's output (raw charges, no sum rule imposed), energy and forces from pw.x's output
through ASE (Ry -> eV, Ry/bohr -> eV/Angstrom). A crystal has no single-valued dipole, so
none is stored.

Resuming: a work directory whose ``pw.in``/``ph.in`` equal what this run would write and
whose outputs ran to ``JOB DONE`` is read back, not recomputed; a finished pw.x whose ph.x
was killed is not rerun. The scratch files (wavefunctions, ``tmp/``) are deleted once ph.x
succeeds; inputs and outputs stay.

Failures of one structure (SCF not converged, no band gap, pw.x/ph.x stopped) raise
CalculationFailed with QE's own message; missing programs or pseudopotentials raise
InputError before anything runs.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
from ase import Atoms

from .. import data
from ..errors import InputError
from ..readers import qe as qe_reader
from . import qe_pseudo
from .base import CalculationFailed, Engine, EngineResult

#: below this Kohn-Sham gap (eV) a structure counts as a metal: no Born charges
MIN_GAP_EV = 0.05
#: extra empty bands, so that pw.x prints the lowest unoccupied level (the gap check)
EXTRA_BANDS = 4


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the labelling process dies (Linux), so that a killed
    run leaves no pw.x/ph.x writing into a work directory that a rerun would reuse."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: a killed run may leave QE running until it finishes


def find_program(name: str) -> str:
    """Full path of a QE program on PATH, or an InputError saying how to install it."""
    path = shutil.which(name)
    if path is None:
        raise InputError(f"{name} (Quantum ESPRESSO) is not installed or not on PATH; install it with "
                         f"{qe_pseudo.INSTALL_HINT}")
    return path


def find_mpirun(pw_x: str, mpirun: str | None = None) -> str:
    """The mpirun that matches pw.x's MPI library.

    Debian's pw.x is linked to Debian's Open MPI, whose launcher lives beside it
    (``/usr/bin/mpirun``); a virtual environment may put another MPI's mpirun (mpich) first on
    PATH, which would start N independent serial copies. So: ``mpirun`` if given, else the one
    in pw.x's directory, else the first on PATH.
    """
    if mpirun:
        found = shutil.which(mpirun)
        if found is None:
            raise InputError(f"mpirun {mpirun!r}: not found")
        return found
    beside = Path(pw_x).parent / "mpirun"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("mpirun")
    if found is None:
        raise InputError("--ranks > 1 needs mpirun (the MPI pw.x was built with), found none on PATH")
    return found


def kpoint_grid(atoms: Atoms, kspacing: float) -> list[int]:
    """Monkhorst-Pack divisions from a spacing (1/Angstrom, no 2 pi: ASE's espresso convention)."""
    from ase.io.espresso import kspacing_to_grid

    return [int(n) for n in kspacing_to_grid(atoms, kspacing)]


class QEEngine(Engine):
    """Energy, forces, Born charges and eps_inf of insulating crystals with pw.x and ph.x.

    Parameters
    ----------
    pseudo_dir : path, optional
        Directory of UPF files (default Debian's ``/usr/share/espresso/pseudo``).
    pseudopotentials : dict, optional
        ``{symbol: file}`` overriding the automatic choice for some elements.
    xc : str
        Functional family the automatically chosen files must have (default ``lda``).
    ecutwfc : float
        Wavefunction cutoff in Ry (default 30).
    ecutrho : float, optional
        Density cutoff in Ry (default 8 x ecutwfc, what ultrasoft and PAW files need).
    kspacing : float
        Largest k-point spacing in 1/Angstrom without the 2 pi (ASE's and CASTEP's convention;
        VASP's KSPACING is 2 pi times this). Default 0.1 (e.g. 3x3x3 for a 4.2 Angstrom cube).
    kshift : bool
        Shift the grid by half a step (Monkhorst-Pack; default True: for Z* a shifted grid
        converged faster than a Gamma-centred one of the same size, measured on MgO).
    ranks : int
        MPI ranks for pw.x and ph.x (1 = no mpirun).
    mpirun : str, optional
        The MPI launcher (default: see :func:`find_mpirun`).
    work_dir : path
        Parent of the per-structure directories (default ``qe-work``).
    conv_thr : float
        pw.x SCF threshold per atom in Ry (default 1e-10 per atom).
    mixing_beta : float
        pw.x charge mixing (default 0.4; the 0.7 default of QE struggles with perovskites).
    electron_maxstep : int
        SCF iteration limit; a structure that does not converge fails.
    keep_scratch : bool
        Keep the wavefunction scratch (``tmp/``) after ph.x succeeds.
    """

    name = "qe"

    def __init__(self, pseudo_dir: str | os.PathLike | None = None,
                 pseudopotentials: dict[str, str] | None = None, xc: str = "lda",
                 ecutwfc: float = 30.0, ecutrho: float | None = None, kspacing: float = 0.1,
                 kshift: bool = True, ranks: int = 1, mpirun: str | None = None,
                 work_dir: str | os.PathLike = "qe-work", conv_thr: float = 1e-10,
                 mixing_beta: float = 0.4, electron_maxstep: int = 200,
                 keep_scratch: bool = False):
        # ph.x's derivative is analytic (DFPT): the zero-step limit of the finite-field route
        self.field_step = 0.0
        self.pw_x = find_program("pw.x")
        self.ph_x = find_program("ph.x")
        if not ecutwfc > 0:
            raise InputError(f"--ecutwfc must be positive (Ry), got {ecutwfc!r}")
        ecutrho = 8.0 * ecutwfc if ecutrho is None else ecutrho
        if not ecutrho >= 4 * ecutwfc:
            raise InputError(f"--ecutrho must be at least 4 x ecutwfc = {4 * ecutwfc:g} Ry, got {ecutrho!r}")
        if not kspacing > 0:
            raise InputError(f"--kspacing must be positive (1/Angstrom), got {kspacing!r}")
        if int(ranks) < 1:
            raise InputError(f"--ranks must be >= 1, got {ranks!r}")
        self.pseudo_dir = Path(pseudo_dir) if pseudo_dir is not None else qe_pseudo.DEBIAN_PSEUDO_DIR
        if not self.pseudo_dir.is_dir():
            hint = (f"; install it with {qe_pseudo.INSTALL_HINT}"
                    if self.pseudo_dir == qe_pseudo.DEBIAN_PSEUDO_DIR else "")
            raise InputError(f"pseudopotential directory {self.pseudo_dir} does not exist{hint}")
        self.pseudopotentials = dict(pseudopotentials or {})
        self.xc = qe_pseudo.normalise_functional(xc)
        self.ecutwfc, self.ecutrho = float(ecutwfc), float(ecutrho)
        self.kspacing, self.kshift = float(kspacing), bool(kshift)
        self.ranks = int(ranks)
        self.mpirun = find_mpirun(self.pw_x, mpirun) if self.ranks > 1 else None
        self.work_dir = Path(work_dir)
        self.conv_thr, self.mixing_beta = float(conv_thr), float(mixing_beta)
        self.electron_maxstep = int(electron_maxstep)
        self.keep_scratch = bool(keep_scratch)

    @property
    def description(self) -> str:
        # everything that changes the numbers: a resumed data set must not mix settings
        explicit = "".join(f", {s}={f}" for s, f in sorted(self.pseudopotentials.items()))
        return (f"qe pw.x+ph.x {self.xc} ({self.pseudo_dir}{explicit}), ecutwfc {self.ecutwfc:g} Ry, "
                f"ecutrho {self.ecutrho:g} Ry, kspacing {self.kspacing:g}/A"
                + ("" if self.kshift else " Gamma-centred"))

    # ------------------------------------------------------------------ checks
    def check(self, atoms: Atoms, where: str = "structure") -> None:
        if not np.all(atoms.pbc) or atoms.cell.rank < 3:
            raise InputError(f"{where} is not a 3D-periodic crystal (pbc={np.asarray(atoms.pbc).tolist()}): "
                             "the qe engine labels bulk cells; use tblite or pyscf for molecules")
        if not np.all(np.isfinite(atoms.positions)):
            raise InputError(f"{where} has non-finite positions")
        if float(atoms.info.get("charge", 0.0)):
            raise InputError(f"{where}: charged cell (charge={atoms.info['charge']}): the Born charges "
                             "of a crystal need a neutral cell")
        pseudos = self._pseudos(atoms)
        electrons = sum(pseudos[s].z_valence for s in atoms.get_chemical_symbols())
        if abs(electrons / 2 - round(electrons / 2)) > 1e-6:
            raise InputError(f"{where}: {electrons:g} valence electrons, an odd number: a metal or a "
                             "spin-polarised cell, which has no Born charges; use an insulator")

    def _pseudos(self, atoms: Atoms) -> dict[str, qe_pseudo.Pseudopotential]:
        return qe_pseudo.choose(atoms.get_chemical_symbols(), self.pseudo_dir, self.xc,
                                self.pseudopotentials)

    # ------------------------------------------------------------------ inputs
    def pw_input(self, atoms: Atoms) -> str:
        """The pw.x input for ``atoms`` (ASE's espresso writer), as text."""
        from ase.io.espresso import write_espresso_in

        pseudos = self._pseudos(atoms)
        symbols = atoms.get_chemical_symbols()
        occupied = sum(pseudos[s].z_valence for s in symbols) / 2
        pseudo_dirs = {p.path.parent for p in pseudos.values()}
        if len(pseudo_dirs) > 1:
            raise InputError("--pseudo files must all be in one directory (pw.x reads one pseudo_dir); "
                             f"got {', '.join(sorted(map(str, pseudo_dirs)))}")
        input_data = {
            "control": {"calculation": "scf", "prefix": "pwscf", "outdir": "./tmp",
                        "pseudo_dir": str(pseudo_dirs.pop().resolve()), "tprnfor": True,
                        "tstress": False, "disk_io": "low"},
            "system": {"ecutwfc": self.ecutwfc, "ecutrho": self.ecutrho, "occupations": "fixed",
                       "nbnd": int(round(occupied)) + EXTRA_BANDS},
            "electrons": {"conv_thr": self.conv_thr * len(atoms), "mixing_beta": self.mixing_beta,
                          "electron_maxstep": self.electron_maxstep},
        }
        plain = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
        buffer = io.StringIO()
        write_espresso_in(buffer, plain, input_data=input_data,
                          pseudopotentials={s: p.path.name for s, p in pseudos.items()},
                          kpts=kpoint_grid(atoms, self.kspacing), koffset=(1, 1, 1) if self.kshift else (0, 0, 0))
        return buffer.getvalue()

    @staticmethod
    def ph_input() -> str:
        """ph.x input: the electric-field response at q = 0 only (no phonons)."""
        return ("Born effective charges and eps_inf (electric field only)\n"
                "&INPUTPH\n"
                "  prefix = 'pwscf'\n"
                "  outdir = './tmp'\n"
                "  tr2_ph = 1.0d-14\n"
                "  trans = .false.\n"
                "  epsil = .true.\n"
                "  zeu = .true.\n"
                "  fildyn = 'dynG'\n"
                "/\n"
                "0.0 0.0 0.0\n")

    def structure_dir(self, atoms: Atoms, info: dict | None = None) -> Path:
        """``WORK/NNNNN`` for input structure NNNNN, else a name from the structure's content."""
        index = (info or {}).get("source_index", atoms.info.get("source_index"))
        if index is not None:
            return self.work_dir / f"{int(index):05d}"
        digest = hashlib.sha1(np.ascontiguousarray(atoms.numbers).tobytes()
                              + np.round(atoms.positions, 8).tobytes()
                              + np.round(atoms.cell.array, 8).tobytes()).hexdigest()[:12]
        return self.work_dir / f"structure-{digest}"

    # ------------------------------------------------------------------ running
    def _run(self, program: str, directory: Path, stem: str, where: str) -> None:
        command = [program, "-in", f"{stem}.in"]
        if self.mpirun:
            command = [self.mpirun, "-n", str(self.ranks)] + command
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", "1")
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # Open MPI refuses root without these (CI)
            env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
            env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        (directory / "CRASH").unlink(missing_ok=True)
        with open(directory / f"{stem}.out", "w") as out, open(directory / f"{stem}.err", "w") as err:
            code = subprocess.run(command, cwd=directory, stdout=out, stderr=err,
                                  stdin=subprocess.DEVNULL, env=env,
                                  preexec_fn=_die_with_parent).returncode
        text = (directory / f"{stem}.out").read_text(errors="replace")
        if code != 0 or not qe_reader.qe_job_done(text):
            message = qe_reader.qe_error(text)
            if stem == "pw" and qe_reader.PW_NOT_CONVERGED in text:
                return  # pw.x exits non-zero; _read_pw names the failure
            if message is None:
                tail = (directory / f"{stem}.err").read_text(errors="replace").strip().splitlines()[-3:]
                message = f"exit status {code}" + (f": {' / '.join(tail)}" if tail else "")
            raise CalculationFailed(f"{where}: {Path(program).name} stopped: {message} "
                                    f"(see {directory / (stem + '.out')})")

    def _read_pw(self, directory: Path, where: str):
        path = directory / "pw.out"
        try:
            result = qe_reader.read_pw_out(path)
        except InputError as exc:
            hint = ""
            if "did not converge" in str(exc):
                hint = " (a metal, which has no Born charges, or a hard SCF: try a smaller mixing_beta)"
            raise CalculationFailed(f"{where}: {exc}{hint}") from None
        homo, lumo = qe_reader.pw_band_edges(path.read_text(errors="replace"))
        if homo is not None and lumo is not None and lumo - homo < MIN_GAP_EV:
            raise CalculationFailed(f"{where}: a metal (pw.x finds highest occupied {homo:.3f} eV, lowest "
                                    f"unoccupied {lumo:.3f} eV): Born charges need a band gap")
        return result, (None if homo is None or lumo is None else lumo - homo)

    @staticmethod
    def _done(path: Path) -> bool:
        return path.is_file() and qe_reader.qe_job_done(path.read_text(errors="replace"))

    def run_structure(self, atoms: Atoms, info: dict | None = None, where: str = "structure"):
        """Run (or read back) pw.x and ph.x for one structure.

        Returns
        -------
        (EngineResult, dict)
            Energy (eV), forces (eV/Angstrom), Born charges (e) and, in the dict,
            ``dielectric_tensor``, the pseudopotential files, k-point grid, gap (eV), pw.x
            and ph.x wall times (s) and the work directory.
        """
        self.check(atoms, where)
        directory = self.structure_dir(atoms, info)
        pw_in, ph_in = self.pw_input(atoms), self.ph_input()
        same_pw = (directory / "pw.in").is_file() and (directory / "pw.in").read_text() == pw_in
        same_ph = same_pw and (directory / "ph.in").is_file() and (directory / "ph.in").read_text() == ph_in
        reused = same_ph and self._done(directory / "pw.out") and self._done(directory / "ph.out")
        if not reused:
            scratch_ok = (directory / "tmp" / "pwscf.save").is_dir()
            if not (same_pw and self._done(directory / "pw.out") and scratch_ok):
                if directory.exists():
                    shutil.rmtree(directory)  # another structure or settings: start clean
                directory.mkdir(parents=True)
                (directory / "pw.in").write_text(pw_in)
                self._run(self.pw_x, directory, "pw", where)
            self._read_pw(directory, where)  # fail before ph.x when the SCF is unusable
            (directory / "ph.in").write_text(ph_in)
            self._run(self.ph_x, directory, "ph", where)
        pw_atoms, gap = self._read_pw(directory, where)
        ph_out = directory / "ph.out"
        try:
            born = qe_reader.read_ph_out(ph_out, structure=directory / "pw.in")[0]
        except InputError as exc:
            text = ph_out.read_text(errors="replace")
            if "no elec. field with metals" in text:
                raise CalculationFailed(f"{where}: a metal: ph.x computes no electric-field response "
                                        "for metals") from None
            raise CalculationFailed(f"{where}: {exc}") from None
        if not self.keep_scratch:
            shutil.rmtree(directory / "tmp", ignore_errors=True)
        pseudos = self._pseudos(atoms)
        extra = {
            "dielectric_tensor": data.get_results(born).get("dielectric_tensor"),
            "pseudopotentials": ",".join(f"{s}={p.path.name}" for s, p in sorted(pseudos.items())),
            "kpts": "x".join(str(n) for n in kpoint_grid(atoms, self.kspacing))
                    + (" shifted" if self.kshift else ""),
            "qe_version": born.info.get("code_version"),
            "work_dir": str(directory),
            "pw_wall_s": qe_reader.qe_wall_time((directory / "pw.out").read_text(errors="replace")),
            "ph_wall_s": qe_reader.qe_wall_time(ph_out.read_text(errors="replace")),
            "gap_eV": gap,
            "reused": reused,
        }
        result = EngineResult(energy=float(pw_atoms.get_potential_energy()),
                              forces=np.asarray(pw_atoms.get_forces(), dtype=float),
                              dipole=None, born_charges=data.get_born_charges(born))
        return result, extra

    def compute(self, atoms: Atoms, born_charges: bool = True, guess=None):
        result, _ = self.run_structure(atoms)
        return result, None

    def label(self, atoms: Atoms, info: dict | None = None) -> Atoms:
        """A data-set structure with ``E``, ``F``, ``Z*`` (raw, as ph.x printed them) and
        eps_inf; ``info`` gets ``engine``, ``field_step`` (0: analytic), the pseudopotential
        files, the k-point grid, the band gap and the pw.x/ph.x wall times."""
        where = f"structure {(info or {}).get('source_index', '')}".rstrip()
        result, extra = self.run_structure(atoms, info, where)
        meta = dict(atoms.info)
        meta.update(engine=self.description, field_step=self.field_step)
        meta.update({k: v for k, v in extra.items() if k != "dielectric_tensor" and v is not None})
        meta.update(info or {})
        return data.make_structure(atoms, result.born_charges, energy=result.energy,
                                   forces=result.forces, dielectric_tensor=extra["dielectric_tensor"],
                                   info=meta)
