"""From loaded replicas to one replica-averaged ``alpha n`` spectrum.

Estimators (``estimator=``):

- ``zv``: ``Mdot = Z* . v`` (the paper's Eq. 4) from the Born charges and velocities,
  autocorrelated. Needs both at the same steps (see ``bec_matching``).
- ``dipole-fd``: finite difference of the dipole between frames, autocorrelated.
- ``dipole-w2``: ``omega^2`` times the transform of the dipole autocorrelation.
- ``dipole-mdot``: the ``M``-``Mdot`` cross-correlation, with ``Mdot = Z* . v`` when Born
  charges and velocities are there and the finite difference otherwise.
- ``auto``: ``zv`` when every replica has Born charges and velocities, else ``dipole-fd``.

The dipole-based estimators first remove lattice-quantum jumps (:mod:`.jumps`), and are
brought to the convention of ``Z* . v`` with velocity-Verlet velocities of the MD step
``md_step_fs`` (default: the run's MD time step; 0 for exact derivatives) by
:func:`.mdot.estimator_factor`: without it ``dipole-w2`` would exceed ``zv`` by
``1/sinc^2(omega h)``, 4 % at 3700 cm^-1 for h = 0.5 fs.

Settings that can come from the run or from the user, in order of precedence:

- time between frames: ``timestep_fs`` (the spacing of the most often written file's
  frames) > the i-PI input's ``<timestep>`` times the step stride of the files > the
  properties file's time column;
- temperature: ``temperature_k`` > the i-PI input's ensemble temperature (per replica) >
  the mean kinetic temperature of all replicas' properties files (one value for all);
- volume: ``volume_a3`` > the properties file's volume column (mean, per replica) > the
  cell of the velocity trajectory. A gas-phase molecule in a large box needs the volume
  that sets the number density you mean.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from ipi_dipole.errors import InputError

from . import green_kubo, mdot as mdot_mod, quantum_corrections, runs
from .green_kubo import SpectrumSettings, wavenumber
from .jumps import remove_dipole_jumps
from .replicas import ReplicaAverage, average, common_lag
from .runs import Replica, RunFiles

log = logging.getLogger("ipi_dipole.analysis")

ESTIMATORS = ("auto", "zv", "dipole-fd", "dipole-w2", "dipole-mdot")
#: volume per atom above which a cell looks like a molecule in vacuum (Angstrom^3)
VACUUM_VOLUME_PER_ATOM = 100.0


@dataclass
class Options:
    """What the user chose (None: take it from the run)."""

    estimator: str = "auto"
    settings: SpectrumSettings = field(default_factory=SpectrumSettings)
    temperature_k: float | None = None
    volume_a3: float | None = None
    timestep_fs: float | None = None
    quantum_correction: str = "none"
    bec_matching: str = "common"
    jump_charges: list | None = None
    md_step_fs: float | None = None

    def __post_init__(self):
        if self.estimator not in ESTIMATORS:
            raise InputError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {self.estimator!r}")
        if self.quantum_correction not in quantum_corrections.CORRECTIONS:
            raise InputError(f"quantum correction must be one of {', '.join(quantum_corrections.CORRECTIONS)}")
        if self.bec_matching not in mdot_mod.BEC_MATCHING:
            raise InputError(f"BEC matching must be one of {', '.join(mdot_mod.BEC_MATCHING)}")
        for name in ("temperature_k", "volume_a3", "timestep_fs"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise InputError(f"{name.replace('_', ' ')} must be positive, got {v}")
        if self.md_step_fs is not None and self.md_step_fs < 0:
            raise InputError(f"the MD step must be >= 0 fs, got {self.md_step_fs}")


@dataclass
class Prepared:
    """One replica's series for the chosen estimator, on evenly spaced frames."""

    name: str
    frame_fs: float
    temperature_k: float
    volume_a3: float
    md_step_fs: float = 0.0
    mdot: np.ndarray | None = None
    dipole: np.ndarray | None = None
    mdot_from_velocities: bool = True
    jumps: int = 0
    note: str = ""

    @property
    def n_frames(self) -> int:
        return len(self.mdot if self.mdot is not None else self.dipole)


def wavenumber_spacing(time_fs: float) -> float:
    """Wavenumber (cm^-1) whose period is ``time_fs``: the spacing of truncation ripples."""
    return float(wavenumber(2 * np.pi / time_fs))


def choose_estimator(replicas: list[Replica], requested: str) -> str:
    """The estimator to use: ``requested``, or for ``auto`` ``zv`` when all replicas allow it."""
    has_zv = all(r.bec is not None and r.velocities is not None for r in replicas)
    has_dipole = all(r.dipole is not None for r in replicas)
    if requested == "auto":
        if has_zv:
            return "zv"
        if has_dipole:
            return "dipole-fd"
        missing = [r.name for r in replicas if r.dipole is None and (r.bec is None or r.velocities is None)]
        raise InputError(f"{missing[0]}: neither a dipole trajectory nor Born charges with velocities")
    if requested == "zv" and not has_zv:
        bad = next(r for r in replicas if r.bec is None or r.velocities is None)
        what = "Born charges (#EXTRAS(BEC)#)" if bad.bec is None else "velocities"
        raise InputError(f"{bad.name}: estimator zv needs {what}")
    if requested.startswith("dipole") and not has_dipole:
        bad = next(r for r in replicas if r.dipole is None)
        raise InputError(f"{bad.name}: estimator {requested} needs a dipole trajectory (#EXTRAS(dipole)#)")
    return requested


def _step_fs(rep: Replica, options: Options) -> tuple[float, str]:
    strides = [s.stride() for s in (rep.dipole, rep.bec, rep.velocities) if s is not None]
    if options.timestep_fs is not None:
        return options.timestep_fs / min(strides), "--timestep-fs"
    if rep.step_fs is None:
        raise InputError(f"{rep.name}: no time step in the run (no i-PI input or properties file found): "
                         "give --timestep-fs")
    return rep.step_fs, rep.step_source


def _species_charges(rep: Replica) -> list | None:
    """Mean diagonal Born charge per species (for the jump threshold only)."""
    if rep.bec is None:
        return None
    z = rep.bec.values
    diag = np.einsum("tiaa->ti", z).mean(axis=0) / 3.0
    if rep.symbols is None or len(rep.symbols) != len(diag):
        return [float(np.abs(diag).min())] if len(diag) else None
    names = np.array(rep.symbols)
    return [float(diag[names == s].mean()) for s in sorted(set(rep.symbols))]


def _clean_dipole(rep: Replica, dipole: np.ndarray, options: Options) -> tuple[np.ndarray, int]:
    charges = options.jump_charges
    threshold = None
    if charges is None and rep.cell is not None:
        estimate = _species_charges(rep)
        if estimate:
            nonzero = [abs(q) for q in estimate if abs(q) > 0.05]
            if nonzero:
                threshold = 0.5 * min(nonzero) * np.linalg.norm(rep.cell, axis=1).min()
    if charges is not None and rep.cell is None:
        log.info(f"{rep.name}: --jump-charges needs the cell (from the velocity trajectory or --cell): "
                 "jumps are removed as measured")
    clean, report = remove_dipole_jumps(dipole, rep.cell if charges is not None else None, charges,
                                        threshold=threshold)
    if report.count:
        how = (f"{report.snapped} as exact lattice quanta, {report.unmatched} as measured"
               if charges is not None else "as measured (give --jump-charges for exact quanta)")
        log.info(f"{rep.name}: removed {report.count} dipole jumps larger than "
                 f"{report.threshold:.3g} e*A ({how})")
    return clean, report.count


def prepare(rep: Replica, estimator: str, options: Options, temperature_k: float) -> Prepared:
    """Bring one replica's data to the series the estimator correlates."""
    step_fs, _ = _step_fs(rep, options)
    volume = options.volume_a3 or rep.volume_a3
    if volume is None:
        raise InputError(f"{rep.name}: no volume in the run (no properties volume column or cell): give --volume")
    md_step = options.md_step_fs if options.md_step_fs is not None else step_fs
    prep = Prepared(name=rep.name, frame_fs=0.0, temperature_k=temperature_k, volume_a3=volume,
                    md_step_fs=md_step)

    def zv():
        steps, z, v = mdot_mod.align_bec_to_velocities(rep.bec.steps, rep.bec.values, rep.velocities.steps,
                                                       rep.velocities.values, options.bec_matching)
        stride = int(np.diff(steps).min())
        if np.any(np.diff(steps) != stride):
            raise InputError(f"{rep.name}: the steps with both Born charges and velocities are not evenly spaced")
        return steps, mdot_mod.mdot_from_born_charges(z, v), stride

    if estimator == "zv":
        steps, md, stride = zv()
        prep.mdot, prep.frame_fs = md, stride * step_fs
        if options.bec_matching == "common" and rep.velocities.stride() < stride:
            prep.note = (f"Born charges every {stride} steps, velocities every {rep.velocities.stride()}: "
                         f"Z*.v sampled every {stride} steps (--bec-matching linear interpolates Z* instead)")
    else:
        stride = rep.dipole.stride()
        dipole, prep.jumps = _clean_dipole(rep, rep.dipole.values, options)
        prep.frame_fs = stride * step_fs
        if estimator == "dipole-fd":
            prep.mdot = mdot_mod.mdot_midpoint_difference(dipole, prep.frame_fs)
        elif estimator == "dipole-w2":
            prep.dipole = dipole
        elif estimator == "dipole-mdot":
            if rep.bec is not None and rep.velocities is not None:
                steps, md, zstride = zv()
                common, i_d, i_z = np.intersect1d(rep.dipole.steps, steps, return_indices=True)
                gaps = np.diff(common)
                if len(common) < 3 or np.any(gaps != gaps[0]):
                    raise InputError(f"{rep.name}: dipole and Z*.v frames do not share evenly spaced steps")
                prep.dipole, prep.mdot = dipole[i_d], md[i_z]
                prep.frame_fs = int(gaps[0]) * step_fs
                prep.note = "M-Mdot with Mdot = Z*.v"
            else:
                prep.dipole = dipole[1:-1]
                prep.mdot = mdot_mod.mdot_finite_difference(dipole, prep.frame_fs)
                prep.mdot_from_velocities = False
                prep.note = "M-Mdot with a finite-difference Mdot (no Born charges and velocities)"
    if prep.note:
        log.info(f"{rep.name}: {prep.note}")
    return prep


def resolve_temperatures(replicas: list[Replica], options: Options) -> list[tuple[float, str]]:
    """Temperature (K) and where it came from, per replica (see the module docstring)."""
    if options.temperature_k is not None:
        return [(options.temperature_k, "--temperature")] * len(replicas)
    kinetic = [r.kinetic_temperature_k for r in replicas if r.kinetic_temperature_k is not None]
    out = []
    for r in replicas:
        if r.temperature_k is not None:
            out.append((r.temperature_k, r.temperature_source))
        elif kinetic:
            out.append((float(np.mean(kinetic)), f"mean kinetic temperature of {len(kinetic)} properties files"))
        else:
            raise InputError(f"{r.name}: no temperature in the run (no i-PI input with an ensemble "
                             "temperature, no properties file): give --temperature")
    return out


def compute(replicas: list[Replica], options: Options) -> ReplicaAverage:
    """The replica-averaged ``alpha n`` spectrum (mean, standard error, components)."""
    if not replicas:
        raise InputError("no replicas to analyse")
    estimator = choose_estimator(replicas, options.estimator)
    temps = resolve_temperatures(replicas, options)
    prepared = [prepare(r, estimator, options, t) for r, (t, _) in zip(replicas, temps)]
    frame_fs = prepared[0].frame_fs
    for p in prepared[1:]:
        if not np.isclose(p.frame_fs, frame_fs, rtol=1e-6):
            raise InputError(f"{p.name}: frames are {p.frame_fs:g} fs apart, {prepared[0].name}: "
                             f"{frame_fs:g} fs; all replicas need the same spacing")
    nyquist = wavenumber(np.pi / frame_fs)
    if nyquist < 4500.0:
        log.info(f"frames {frame_fs:g} fs apart reach only {nyquist:.0f} cm^-1 (Nyquist): faster motion "
                 "(O-H stretches) aliases below it; write the series more often")
    settings = options.settings
    lag = common_lag([p.n_frames for p in prepared], [settings.max_lag(frame_fs, p.n_frames) for p in prepared])
    n_fft = settings.n_fft(frame_fs, lag)
    if settings.window == "none" or not settings.fwhm_cm1:
        log.info(f"no window: the correlation is cut at {lag * frame_fs:g} fs, which gives sinc ripples "
                 f"{wavenumber_spacing(lag * frame_fs):.3g} cm^-1 apart; --window-cm1 W smooths them")
    elif settings.window_at(lag * frame_fs) > 1e-3:
        log.info(f"the correlation is cut at {lag * frame_fs:g} fs where the {settings.window} window is still "
                 f"{settings.window_at(lag * frame_fs):.2g}: expect ripples; use --window-cm1 "
                 f"{np.ceil(settings.fwhm_for(lag * frame_fs)):g} or more, or longer replicas")

    spectra = []
    for p in prepared:
        args = (frame_fs, p.temperature_k, p.volume_a3, settings)

        def factor(omega, p=p):
            return mdot_mod.estimator_factor(estimator, omega, frame_fs, p.md_step_fs, p.mdot_from_velocities)

        if estimator in ("zv", "dipole-fd"):
            s = green_kubo.spectrum_from_mdot(p.mdot, *args, max_lag=lag, n_fft=n_fft, factor=factor)
        elif estimator == "dipole-w2":
            s = green_kubo.spectrum_from_dipole_w2(p.dipole, *args, max_lag=lag, n_fft=n_fft, factor=factor)
        else:
            s = green_kubo.spectrum_from_dipole_mdot(p.dipole, p.mdot, *args, max_lag=lag, n_fft=n_fft,
                                                     factor=factor)
        if options.quantum_correction != "none":
            factor = quantum_corrections.alpha_n_factor(options.quantum_correction, s.wavenumber_cm1,
                                                        p.temperature_k)
            s.components = s.components * factor[:, None]
        s.info.update(name=p.name, frames=p.n_frames, jumps=p.jumps)
        spectra.append(s)

    volumes = [p.volume_a3 for p in prepared]
    info = {
        "estimator": estimator,
        "window": settings.window,
        "fwhm_cm1": settings.fwhm_cm1,
        "frame_fs": frame_fs,
        "md_step_fs": sorted({p.md_step_fs for p in prepared}),
        "taper": settings.taper,
        "max_lag_fs": lag * frame_fs,
        "max_lag_frames": lag,
        "n_fft": n_fft,
        "temperature_k": [t for t, _ in temps],
        "temperature_source": sorted({s for _, s in temps}),
        "volume_a3": volumes,
        "volume_source": sorted({"--volume" if options.volume_a3 else r.volume_source for r in replicas}),
        "quantum_correction": options.quantum_correction,
        "bec_matching": options.bec_matching,
        "jumps_removed": int(sum(p.jumps for p in prepared)),
        "frames": [p.n_frames for p in prepared],
        "replicas": [p.name for p in prepared],
    }
    n_atoms = replicas[0].n_atoms
    if n_atoms and options.volume_a3 is None and min(volumes) / n_atoms > VACUUM_VOLUME_PER_ATOM:
        log.info(f"the volume ({min(volumes):.4g} A^3 for {n_atoms} atoms) looks like a molecule in a "
                 "vacuum box; alpha*n scales as 1/V: give --volume for the number density you mean")
    return average(spectra, info)


def find_replicas(paths) -> list[RunFiles]:
    """The i-PI replicas found under ``paths`` (directories searched recursively, or files)."""
    found = runs.find_runs(paths)
    if not found:
        raise InputError(f"no i-PI dipole, BEC or velocity trajectory found in {' '.join(map(str, paths))}")
    return found


def masses_per_atom(found: list[RunFiles], masses) -> np.ndarray | None:
    """Per-atom masses (Da) for the velocity files of ``found``.

    Parameters
    ----------
    found : list of RunFiles
    masses : dict or sequence or None
        Masses in Da per species (``{"O": 15.999, "H": 2.014}``, matched to the symbols of
        the first velocity trajectory) or per atom; None: none given.
    """
    if masses is None:
        return None
    if not isinstance(masses, dict):
        return np.array(masses, dtype=float)
    symbols = None
    for run in found:
        if run.velocities is not None:
            with open(run.velocities) as fh:
                n = int(fh.readline())
                fh.readline()
                symbols = [fh.readline().split()[0] for _ in range(n)]
            break
    if symbols is None:
        return None
    missing = sorted(set(symbols) - set(masses))
    if missing:
        raise InputError(f"--masses: no mass for {', '.join(missing)}")
    return np.array([masses[s] for s in symbols])


def load_replicas(found: list[RunFiles], masses=None, cell=None) -> list[Replica]:
    """Load the replicas ``found`` by :func:`find_replicas`.

    Parameters
    ----------
    found : list of RunFiles
    masses : dict or sequence or None
        As for :func:`masses_per_atom` (Da); used to turn momenta into velocities.
    cell : array (3, 3) or None
        Angstrom, lattice vectors as rows; replaces the trajectories' cell.
    """
    per_atom = masses_per_atom(found, masses)
    replicas = []
    for run in found:
        rep = runs.load_replica(run, masses_da=per_atom)
        if cell is not None:
            rep.cell = cell
        replicas.append(rep)
    return replicas


def title(result: ReplicaAverage) -> str:
    """One line for a plot title: estimator, mean temperature (K) and volume (Angstrom^3)."""
    info = result.info
    return (f"{info['estimator']}, T = {np.mean(info['temperature_k']):.4g} K, "
            f"V = {np.mean(info['volume_a3']):.5g} A^3")


class _NoteHandler(logging.Handler):
    def __init__(self, write):
        super().__init__(logging.INFO)
        self.write = write

    def emit(self, record):
        self.write(f"  note: {record.getMessage()}")


@contextmanager
def notes_to(write):
    """Send the analysis' notes (choices made, jumps removed, ...) to ``write(line)`` meanwhile."""
    handler = _NoteHandler(write)
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
