"""Shared parts of the spectrum-against-experiment benchmarks (liquid_water_ir.py, nacl_ir.py).

- :func:`cli`: run one ``ipi-dipole`` sub-command as a child process (the stable interface);
- :func:`ipi`: run i-PI on an input file in its directory, its output in ``ipi.log``;
- :func:`mpirun_replicas`: ``mpirun -n K ipi-dipole replicas run RUN_DIR``;
- :func:`band_table`: peak position and integrated ``alpha n`` per band, with the replica
  standard errors, from the per-replica spectra;
- :func:`write_section`: replace one script's section of ``RESULTS_spectra.md``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS_spectra.md"
FIXTURES = ROOT.parent / "shared" / "fixtures"


class StageFailed(RuntimeError):
    """A command of a stage failed; the message names it and its log."""


def _environment() -> dict:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def cli(args, log=print, cwd=None) -> None:
    """``ipi-dipole ARGS`` in a child process; raises :class:`StageFailed` on failure."""
    args = [str(a) for a in args]
    log("  $ ipi-dipole " + " ".join(shlex.quote(a) for a in args))
    status = subprocess.call([sys.executable, "-m", "ipi_dipole.cli", *args], cwd=cwd, env=_environment())
    if status != 0:
        raise StageFailed(f"'ipi-dipole {args[0]}' ended with status {status}")


def ipi(xml: Path, log=print) -> None:
    """i-PI on ``xml`` in its directory, output to ``ipi.log`` there."""
    ipi_exe = shutil.which("i-pi") or str(Path(sys.executable).with_name("i-pi"))
    logfile = xml.parent / "ipi.log"
    log(f"  $ i-pi {xml.name} > ipi.log   (in {xml.parent})")
    with open(logfile, "w") as out:
        status = subprocess.call([ipi_exe, xml.name], cwd=xml.parent, stdout=out,
                                 stderr=subprocess.STDOUT, env=_environment())
    if status != 0:
        tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-20:])
        raise StageFailed(f"i-PI failed on {xml} (status {status}); end of {logfile}:\n{tail}")


def mpirun_replicas(run_dir: Path, ranks: int, log=print) -> None:
    """Run (or resume) the replicas of ``run_dir`` on ``ranks`` MPI ranks."""
    mpirun = shutil.which("mpirun") or str(Path(sys.executable).with_name("mpirun"))
    exe = shutil.which("ipi-dipole") or str(Path(sys.executable).with_name("ipi-dipole"))
    command = [mpirun, "-n", str(ranks), exe, "replicas", "run", str(run_dir), "--progress", "lines"]
    log("  $ " + " ".join(shlex.quote(c) for c in command))
    status = subprocess.call(command, env=_environment())
    if status != 0:
        raise StageFailed(f"{status} replica(s) of {run_dir} did not finish (rerun the same command to resume)")


def pes_path() -> str:
    from ipi_dipole.driver import pes

    return str(Path(pes.__file__).resolve())


def ffdirect(name: str, *, forces: str, structure: Path, model: Path | None = None) -> str:
    """An i-PI ``<ffdirect>`` block running the ipi-dipole PES in-process (no sockets)."""
    parameters = f"forces: {forces}, structure: {structure}"
    if model is not None:
        parameters = f"model: {model}, " + parameters
    return f"""<ffdirect name='{name}' pbc='false'>
    <pes> custom </pes>
    <pes_path> {pes_path()} </pes_path>
    <parameters> {{ {parameters} }} </parameters>
  </ffdirect>"""


def per_replica_spectra(csv_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The wavenumbers (cm^-1) and per-replica isotropic ``alpha n`` (R, F) of a spectrum run.

    ``ipi-dipole spectrum`` writes only the mean and its error; the per-replica spectra, needed
    for the error of a band's position, are in ``<csv>.replicas.npz`` written by :func:`spectrum`.
    """
    with np.load(csv_path.with_suffix(".replicas.npz")) as z:
        return z["wavenumber_cm1"], z["isotropic"]


def band_stats(x: np.ndarray, each: np.ndarray, lo: float, hi: float) -> dict:
    """Peak position (cm^-1) and integral (cm^-2) of the replica mean in [lo, hi], with standard
    errors over the replicas (each replica's own peak and integral)."""
    sel = (x >= lo) & (x <= hi)
    xs = x[sel]

    def peak(y):
        k = int(np.argmax(y))
        if 0 < k < len(y) - 1:  # parabola through the three points around the maximum
            a, b, c = y[k - 1], y[k], y[k + 1]
            d = a - 2 * b + c
            shift = 0.5 * (a - c) / d if d != 0 else 0.0
            return float(xs[k] + shift * (xs[1] - xs[0]))
        return float(xs[k])

    mean = each.mean(axis=0)
    peaks = np.array([peak(y[sel]) for y in each])
    areas = np.array([np.trapezoid(y[sel], xs) for y in each])
    r = len(each)
    se = (lambda v: float(v.std(ddof=1) / np.sqrt(r))) if r > 1 else (lambda v: float("nan"))
    return {"peak": peak(mean[sel]), "peak_se": se(peaks), "area": float(np.trapezoid(mean[sel], xs)),
            "area_se": se(areas), "replicas": r}


def experiment_stats(measured, lo: float, hi: float) -> dict:
    """Peak position (cm^-1) and integral (cm^-2) of a measured ``alpha n`` in [lo, hi]."""
    x, y = measured.wavenumber_cm1, measured.alpha_n_cm1
    sel = (x >= lo) & (x <= hi)
    if sel.sum() < 2:
        return {"peak": float("nan"), "area": float("nan"), "points": int(sel.sum())}
    xs, ys = x[sel], y[sel]
    return {"peak": float(xs[np.argmax(ys)]), "area": float(np.trapezoid(ys, xs)), "points": int(sel.sum())}


def write_section(name: str, text: str, title: str = "# Spectra against experiment") -> None:
    """Replace the section ``name`` of RESULTS_spectra.md (between HTML comment markers)."""
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    old = RESULTS.read_text() if RESULTS.is_file() else title + "\n\n"
    block = f"{begin}\n{text.rstrip()}\n{end}\n"
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + block + rest.split(end, 1)[1].lstrip("\n")
    else:
        new = old.rstrip() + "\n\n" + block
    RESULTS.write_text(new)


def fmt(value: float, err: float | None = None, digits: int = 0) -> str:
    if not np.isfinite(value):
        return "-"
    if err is None or not np.isfinite(err):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} +- {err:.{digits}f}"
