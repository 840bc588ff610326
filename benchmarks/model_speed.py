"""Benchmark 3: cost of the polarization model per MD step, next to q-TIP4P/F in LAMMPS.

For liquid water boxes of 64 and 128 molecules, single core (OMP_NUM_THREADS=1; the model
also on two numba threads), prints the median wall time of

- the model: neighbour list, density moments, and a full prediction (M and Z*, which
  includes both) for the liquid-water model of benchmark 2 (or one fitted here);
- LAMMPS: one q-TIP4P/F force evaluation as an i-PI driver does it per step
  ("run 1 pre no post no" after the positions change), parameters as in i-PI's
  examples (lj/cut/tip4p/long with OM = 0.1471 A, 9 A cutoff, pppm/tip4p 1e-4,
  class2 quartic O-H bonds, harmonic angle);

and the fit time of a model on 100 structures of 192 atoms (64 molecules; frames of a
q-TIP4P/F NVT run, labelled with the benchmark-2 model's own Z*: only the time matters).

Usage (the model's numba kernels are timed on one thread and, in the last columns, on two):
    OMP_NUM_THREADS=1 python benchmarks/model_speed.py [--repeat 21]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _model_common as _common  # noqa: E402

from ase import Atoms  # noqa: E402

from ipi_dipole.lammps_runtime import new_lammps  # noqa: E402

# q-TIP4P/F (Habershon, Markland, Manolopoulos, J. Chem. Phys. 131, 024501 (2009)), LAMMPS real units
QTIP4PF = """
units real
atom_style full
boundary p p p
read_data {data}
pair_style lj/cut/tip4p/long 1 2 1 1 0.14714951 9.0
pair_coeff 1 1 0.1852 3.1589
pair_coeff 1 2 0.0 1.0
pair_coeff 2 2 0.0 1.0
bond_style class2
bond_coeff 1 0.9419 607.19354 -1388.6516 1852.577
angle_style harmonic
angle_coeff 1 43.93 107.4
kspace_style pppm/tip4p 1.0e-4
special_bonds lj/coul 0.0 0.0 0.0
neighbor 2.0 bin
neigh_modify delay 0 every 1 check yes
"""
MASS = {"O": 15.9994, "H": 1.008}
CHARGE = {"O": -1.1128, "H": 0.5564}


def water_box(n_molecules: int, seed: int = 0, density: float = 0.997) -> Atoms:
    """Water molecules (q-TIP4P/F geometry, random orientations) on a cubic lattice, g/cm^3."""
    rng = np.random.default_rng(seed)
    from ase.units import _amu

    mass = 18.015 * _amu * 1e3  # g
    length = (n_molecules * mass / density) ** (1 / 3) * 1e8  # Angstrom
    per_side = int(np.ceil(n_molecules ** (1 / 3)))
    spacing = length / per_side
    r, theta = 0.9419, np.radians(107.4)
    local = np.array([[0, 0, 0], [r, 0, 0], [r * np.cos(theta), r * np.sin(theta), 0]])
    from scipy.spatial.transform import Rotation

    positions = []
    sites = [(i, j, k) for i in range(per_side) for j in range(per_side) for k in range(per_side)]
    for site in sites[:n_molecules]:
        rot = Rotation.random(random_state=rng.integers(1 << 31)).as_matrix()
        positions.extend((np.array(site) + 0.5) * spacing + local @ rot.T)
    return Atoms("OH2" * n_molecules, positions=positions, cell=[length] * 3, pbc=True)


def molecules(atoms: Atoms) -> list[tuple[int, int, int]]:
    """(O, H, H) index triples: each H goes to its nearest O (minimum image)."""
    symbols = np.array(atoms.get_chemical_symbols())
    oxygens = np.where(symbols == "O")[0]
    owner = {o: [] for o in oxygens}
    for h in np.where(symbols == "H")[0]:
        d = atoms.get_distances(h, oxygens, mic=True)
        owner[oxygens[int(np.argmin(d))]].append(h)
    bad = [o for o, hs in owner.items() if len(hs) != 2]
    if bad:
        raise ValueError(f"oxygens {bad[:5]} do not own two hydrogens")
    return [(o, *owner[o]) for o in oxygens]


def write_lammps_data(atoms: Atoms, path: Path) -> list[int]:
    """LAMMPS data file (atom_style full, orthorhombic cell); returns the atom order used."""
    triples = molecules(atoms)
    order = [i for t in triples for i in t]
    cell = [float(x) for x in atoms.cell.lengths()]
    lines = ["q-TIP4P/F water (ipi-dipole benchmark)", "",
             f"{len(order)} atoms", f"{len(triples) * 2} bonds", f"{len(triples)} angles", "",
             "2 atom types", "1 bond types", "1 angle types", "",
             f"0 {cell[0]!r} xlo xhi", f"0 {cell[1]!r} ylo yhi", f"0 {cell[2]!r} zlo zhi", "",
             "Masses", "", f"1 {MASS['O']}", f"2 {MASS['H']}", "", "Atoms # full", ""]
    wrapped = atoms.get_positions(wrap=False)
    for n, i in enumerate(order):
        s = atoms[i].symbol
        x, y, z = (float(v) for v in wrapped[i])
        lines.append(f"{n + 1} {n // 3 + 1} {1 if s == 'O' else 2} {CHARGE[s]} {x!r} {y!r} {z!r}")
    lines += ["", "Bonds", ""]
    for m in range(len(triples)):
        lines.append(f"{2 * m + 1} 1 {3 * m + 1} {3 * m + 2}")
        lines.append(f"{2 * m + 2} 1 {3 * m + 1} {3 * m + 3}")
    lines += ["", "Angles", ""]
    for m in range(len(triples)):
        lines.append(f"{m + 1} 1 {3 * m + 2} {3 * m + 1} {3 * m + 3}")
    path.write_text("\n".join(lines) + "\n")
    return order


def setup_lammps(atoms: Atoms, workdir: Path):
    """A LAMMPS instance holding ``atoms`` with q-TIP4P/F; returns (lmp, order)."""
    data = workdir / f"water{len(atoms)}.data"
    order = write_lammps_data(atoms, data)
    lmp = new_lammps()
    lmp.commands_string(QTIP4PF.format(data=data))
    lmp.command("run 0 post no")
    return lmp, order


def equilibrate(atoms: Atoms, workdir: Path, steps: int, every: int = 0, seed: int = 1):
    """q-TIP4P/F NVT (Nose-Hoover, 300 K, 0.25 fs) from ``atoms``; the final frame, and every
    ``every``-th frame as a list (unwrapped Angstrom positions, our atom order)."""
    lmp, order = setup_lammps(atoms, workdir)
    inverse = np.argsort(order)
    lmp.commands_string(f"""
        minimize 1e-6 1e-6 200 2000
        reset_timestep 0
        timestep 0.25
        velocity all create 300.0 {seed} mom yes rot yes dist gaussian
        fix nvt all nvt temp 300.0 300.0 25.0
    """)
    frames = []

    def snapshot():
        x = np.array(lmp.numpy.extract_atom("x")[:len(order)])
        image = np.array(lmp.numpy.extract_atom("image")[:len(order)])
        ids = np.array(lmp.numpy.extract_atom("id")[:len(order)]) - 1
        unwrapped = np.empty_like(x)
        lengths = atoms.cell.lengths()
        # LAMMPS packs image flags in one int: 10 bits per direction, offset 512
        flags = np.stack([(image & 1023) - 512, ((image >> 10) & 1023) - 512, (image >> 20) - 512], axis=1)
        unwrapped[ids] = x + flags * lengths
        out = atoms.copy()
        out.positions = unwrapped[inverse]
        return out

    if every:
        for _ in range(steps // every):
            lmp.command(f"run {every} post no")
            frames.append(snapshot())
    else:
        lmp.command(f"run {steps} post no")
    final = snapshot()
    lmp.close()
    return final, frames


def time_lammps(atoms: Atoms, workdir: Path, repeat: int) -> float:
    """Median time of one force evaluation as the i-PI driver does it."""
    lmp, order = setup_lammps(atoms, workdir)
    rng = np.random.default_rng(0)
    x = lmp.numpy.extract_atom("x")
    base = np.array(x[:len(order)])

    def step():
        x[:len(order)] = base + rng.normal(scale=0.002, size=base.shape)  # MD-like moves
        lmp.command("run 1 pre no post no")

    step()
    t = _common.median_time(step, repeat=repeat, number=5)
    lmp.close()
    return t


def time_model(model, atoms: Atoms, repeat: int) -> dict:
    """Median times; the prediction moves the atoms a little each call, as in MD (the
    neighbour list is then reused, rebuilt when an atom moved more than half the skin)."""
    desc = model.descriptor_
    model.predict(atoms)  # compile / warm up
    env = desc.environments(atoms)
    rng = np.random.default_rng(1)
    moving = atoms.copy()

    def md_step():
        moving.positions += rng.normal(scale=0.005, size=moving.positions.shape)
        model.predict(moving)

    out = {
        "neighbours": _common.median_time(lambda: desc.neighbours(atoms), repeat=repeat, number=5),
        "neighbours+moments": _common.median_time(lambda: desc.environments(atoms), repeat=repeat, number=5),
        "features": _common.median_time(lambda: desc.features(env), repeat=repeat, number=5),
    }
    import numba

    before = numba.get_num_threads()
    for threads in (1, 2):
        if threads > numba.config.NUMBA_NUM_THREADS:
            continue
        numba.set_num_threads(threads)
        md_step()  # the thread pool starts
        key = "predict (M and Z*)" if threads == 1 else f"predict, {threads} threads"
        out[key] = _common.median_time(md_step, repeat=repeat, number=5)
    numba.set_num_threads(before)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--model", action="append",
                        help="a liquid-water model (.npz), repeatable; default: one fitted on train10 "
                             "with default hyper-parameters, and benchmarks/_data/liquid_water_model.npz "
                             "(written by liquid_water.py --save) when it exists")
    parser.add_argument("--skip-fit", action="store_true", help="skip the fit-time benchmark")
    args = parser.parse_args()
    from ipi_dipole import PolarizationModel, data

    if os.environ.get("OMP_NUM_THREADS") != "1":
        print("warning: OMP_NUM_THREADS is not 1: LAMMPS and BLAS timings are not single-core", file=sys.stderr)
    load = os.getloadavg()[0]
    if load > 0.5:
        # the two-thread column needs a second idle core: a starved numba thread makes it
        # several times slower than one thread, which says nothing about the kernels
        print(f"warning: load average {load:.2f} before the start: the 2-thread column needs an idle "
              "second core", file=sys.stderr)
    import numba

    # the model's kernels: one thread for the main columns, two for the thread column
    numba.set_num_threads(1)

    train, _ = _common.liquid_water_sets()
    models = {}
    if args.model:
        for path in args.model:
            models[Path(path).name] = PolarizationModel.load(path)
    else:
        models["defaults"] = PolarizationModel().fit(data.load(train))
        tuned = _common.DATA / "liquid_water_model.npz"
        if tuned.exists():
            models["tuned (liquid_water.py)"] = PolarizationModel.load(tuned)
    for name, model in models.items():
        print(f"model {name}: {model!r}\n  features per component: {model.descriptor_.n_features}")
    model = next(iter(models.values()))

    work = Path(tempfile.mkdtemp(prefix="ipi_dipole_speed_"))
    liquid128 = data.load(train)[0]
    box64, _ = equilibrate(water_box(64), work, steps=4000)
    rows = []
    for name, atoms in (("64 H2O (192 atoms)", box64), ("128 H2O (384 atoms)", liquid128)):
        tl = time_lammps(atoms, work, args.repeat)
        for model_name, m in models.items():
            rows.append((name, model_name, time_model(m, atoms, args.repeat), tl))

    print("\n| system | model | fresh neighbour list | fresh list + moments "
          "| prediction M and Z* (MD step: list reused) | q-TIP4P/F forces, LAMMPS | ratio "
          "| prediction, 2 threads | thread speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, model_name, tm, tl in rows:
        p = tm["predict (M and Z*)"]
        p2 = tm.get("predict, 2 threads")
        two = "-" if p2 is None else f"{1e3 * p2:.2f} ms | {p / p2:.2f}x"
        print(f"| {name} | {model_name} | {1e3 * tm['neighbours']:.2f} ms | {1e3 * tm['neighbours+moments']:.2f} ms "
              f"| {1e3 * p:.2f} ms | {1e3 * tl:.2f} ms | {p / tl:.2f} | {two if p2 is not None else '- | -'} |")

    if not args.skip_fit:
        _, frames = equilibrate(box64, work, steps=100 * 200, every=200, seed=2)
        labelled = []
        for atoms in frames:
            m, z = model.predict(atoms)
            labelled.append(data.make_structure(atoms, z))
        t = time.perf_counter()
        fitted = PolarizationModel().fit(labelled)
        dt = time.perf_counter() - t
        print(f"\nfit on {len(labelled)} structures of {len(labelled[0])} atoms "
              f"(default hyper-parameters, {fitted.descriptor_.n_features} features per component): {dt:.1f} s")


if __name__ == "__main__":
    main()
