"""A small bulk Born-charge set with the QE engine: rattled cubic PbTiO3 cells at 300-600 K.

Builds ``--cells`` 5-atom cubic PbTiO3 cells (a = 3.90 Angstrom, about the LDA lattice
constant) with every atom displaced by a Gaussian of rms ``0.08 Angstrom x sqrt(T/300 K)``
per Cartesian direction, T drawn uniformly in 300-600 K. That amplitude is an assumption
of the order of perovskites' room-temperature displacement parameters, not a phonon
calculation (no PbTiO3 force field here to sample with). Then labels them with
``ipi_dipole.engines.labelling.label_file`` and the ``qe`` engine (Debian's LDA files
Pb.pz-d-van, Ti.pz-sp-van_ak, O.pz-rrkjus; ecutwfc 30 Ry, ecutrho 240 Ry, 2x2x2 shifted
k-points, one MPI rank), resumably: rerun the same command after a kill and it carries on.
Finally prints (and writes to benchmarks/RESULTS_qe.md) the time per structure and the Z*
statistics: mean diagonal Z* per species (O split into the component along its Ti-O-Ti
bond and the two across it), and the acoustic-sum-rule residual max|sum_i Z*_i|.

Output (ignored by git): benchmarks/_output/qe_pbtio3/ (cells.extxyz, labelled.extxyz,
work/NNNNN). Usage::

    OMP_NUM_THREADS=1 nohup python benchmarks/qe_pbtio3.py > qe_pbtio3.log 2>&1 &
    python benchmarks/qe_pbtio3.py --report     # table only, no QE runs
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from ase import Atoms

HERE = Path(__file__).resolve().parent
OUT = HERE / "_output" / "qe_pbtio3"
A = 3.90           # Angstrom
RMS_300K = 0.08    # Angstrom per direction at 300 K (assumed, see the docstring)
SETTINGS = dict(ecutwfc=30.0, ecutrho=240.0, kspacing=0.15, ranks=1)  # 0.15/A -> 2x2x2 here


def cubic_cell() -> Atoms:
    return Atoms("PbTiO3", cell=np.eye(3) * A, pbc=True,
                 scaled_positions=[[0, 0, 0], [.5, .5, .5], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]])


def rattled_cells(n: int, seed: int = 14) -> list[Atoms]:
    rng = np.random.default_rng(seed)
    cells = []
    for k in range(n):
        atoms = cubic_cell()
        temperature = rng.uniform(300.0, 600.0)
        atoms.positions += rng.normal(0.0, RMS_300K * np.sqrt(temperature / 300.0), (len(atoms), 3))
        atoms.info.update(rattle_temperature_K=round(temperature, 1), cell_index=k)
        cells.append(atoms)
    return cells


def o_parallel_axis(k: int) -> int:
    """The Cartesian axis of the Ti-O-Ti bond of the k-th oxygen of the ideal cubic cell."""
    return int(np.argmin(np.abs(cubic_cell().get_scaled_positions()[k] - 0.0)))


def report(labelled: Path, n_cells: int) -> str:
    from ipi_dipole import data

    frames = data.load(labelled) if labelled.is_file() else []
    if not frames:
        return "no labelled cells yet\n"
    pw = np.array([f.info.get("pw_wall_s", np.nan) for f in frames], dtype=float)
    ph = np.array([f.info.get("ph_wall_s", np.nan) for f in frames], dtype=float)
    total = pw + ph
    z = np.array([data.get_born_charges(f) for f in frames])          # (n, 5, 3, 3)
    diag = np.einsum("niaa->nia", z)                                    # (n, 5, 3)
    pb, ti = diag[:, 0].mean(axis=1), diag[:, 1].mean(axis=1)
    o_par = np.concatenate([diag[:, k, o_parallel_axis(k)] for k in (2, 3, 4)])
    o_perp = np.concatenate([np.delete(diag[:, k], o_parallel_axis(k), axis=1).ravel() for k in (2, 3, 4)])
    asr = np.abs(z.sum(axis=1)).max(axis=(1, 2))
    eps = np.array([np.trace(f.calc.results["dielectric_tensor"]) / 3 for f in frames])
    f0 = frames[0]
    lines = [
        f"PbTiO3 5-atom cells labelled: {len(frames)} of {n_cells} "
        f"({f0.info.get('pseudopotentials')}, kpts {f0.info.get('kpts')}, "
        f"ecutwfc {SETTINGS['ecutwfc']:g} Ry, ecutrho {SETTINGS['ecutrho']:g} Ry, 1 MPI rank, QE {f0.info.get('qe_version')})",
        "",
        "| quantity | mean | std | min | max |",
        "|---|---|---|---|---|",
    ]

    def row(name, values, fmt="{:.3f}"):
        v = np.asarray(values, dtype=float)
        lines.append(f"| {name} | " + " | ".join(fmt.format(x) for x in
                                                 (v.mean(), v.std(), v.min(), v.max())) + " |")

    row("pw.x wall time per cell (s)", pw, "{:.1f}")
    row("ph.x wall time per cell (s)", ph, "{:.1f}")
    row("pw.x + ph.x per cell (s)", total, "{:.1f}")
    row("Z*(Pb) mean diagonal (e)", pb)
    row("Z*(Ti) mean diagonal (e)", ti)
    row("Z*(O) along Ti-O-Ti (e)", o_par)
    row("Z*(O) across Ti-O-Ti (e)", o_perp)
    row("ASR residual max abs sum_i Z*_i (e)", asr)
    row("eps_inf trace/3", eps)
    lines.append("")
    lines.append(f"Total QE wall time: {np.nansum(total) / 60:.1f} min for {len(frames)} cells.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=36, help="number of rattled cells (default 36)")
    parser.add_argument("--report", action="store_true", help="only print the table of what is done")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from ipi_dipole import data
    from ipi_dipole.engines import get_engine
    from ipi_dipole.engines.labelling import label_file

    OUT.mkdir(parents=True, exist_ok=True)
    cells_path, labelled = OUT / "cells.extxyz", OUT / "labelled.extxyz"
    if not args.report:
        cells = rattled_cells(args.cells)
        if not cells_path.is_file() or len(data.load(cells_path)) != len(cells):
            data.save(cells_path, cells)  # deterministic (seeded): rewriting gives the same file
        engine = get_engine("qe", work_dir=OUT / "work", **SETTINGS)
        summary = label_file(cells_path, labelled, engine, progress=True)
        print(summary.line(), flush=True)
    text = report(labelled, args.cells)
    print(text)
    if labelled.is_file():
        (HERE / "RESULTS_qe.md").write_text(
            "# Quantum ESPRESSO engine: a small bulk set (benchmarks/qe_pbtio3.py)\n\n"
            "Rattled cubic PbTiO3 (5 atoms, a = 3.90 A, rms displacement 0.08 A x sqrt(T/300 K), "
            "T in 300-600 K), labelled by `label_file` with the `qe` engine, pw.x + ph.x "
            "(`trans=.false., epsil=.true., zeu=.true.`) on one MPI rank, the machine's other core busy.\n"
            "Z* are ph.x's raw charges (no sum rule imposed).\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
