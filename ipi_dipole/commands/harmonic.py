"""The 0 K harmonic reference spectrum: minimise STRUCTURE with a force back-end, take the
Hessian by finite differences of forces, project the Born charges on the normal modes.

Molecules (pbc not all True): central differences of forces (ase.vibrations, cached in
DIR/vib), translations and rotations projected out, irreps from the point group.
Crystals (pbc all True): phonopy (symmetry-reduced displacements of --supercell, Gamma modes
of the primitive cell), and with eps_inf (--eps-inf, or the dielectric tensor of a --born
file) the LO modes along --q-direction from phonopy's non-analytic correction.

Born charges: --model (a polarization model, predicted at the minimum), --born (any file
'ipi-dipole convert' reads, or a data set; the last structure, atoms in STRUCTURE's order)
or --charges (rigid ions, e.g. Na=1,Cl=-1; their eps_inf is 1).

Writes to DIR: minimised.extxyz; modes.csv (wavenumber cm^-1, irrep, IR-active flag,
intensity in km/mol, dM/dQ in e/sqrt(amu), band area); modes_lo.csv (crystals with
eps_inf); spectrum.csv, the broadened harmonic alpha*n in cm^-1 in the format of
'ipi-dipole spectrum' (same FWHM definitions), which 'spectrum --harmonic DIR/spectrum.csv'
(or modes.csv, drawn as sticks) overlays; summary.json.

The harmonic alpha*n does not depend on temperature; like 'spectrum' it scales as 1/V: V is
the primitive cell for crystals, and for molecules --volume (the volume per molecule, e.g.
the box of the MD run; the demo uses 20^3 A^3) or the structure's cell.

Examples:
    ipi-dipole harmonic water-dimer --forces 'ase:tblite.ase:TBLite:{"method":"GFN2-xTB","verbosity":0}' \\
        --model model.npz --volume 8000 -o harmonic
    ipi-dipole harmonic nacl.extxyz --forces lammps:inputs/nacl/forcefield.lammps \\
        --charges Na=1,Cl=-1 --eps-inf 1 -o harmonic-nacl
"""

HELP = "0 K harmonic IR reference: normal modes, intensities from Z*, LO-TO, broadened spectrum"


def add_arguments(parser):
    parser.add_argument("structure", help="structure file (any ASE format, i-PI xyz with CELL) or a built-in name")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--forces", required=True, metavar="SPEC",
                        help="force back-end: lammps:IN_FILE or ase:MODULE:CLASS[:JSON] (as for 'drive')")
    z = parser.add_mutually_exclusive_group(required=True)
    z.add_argument("--model", metavar="M.npz", help="polarization model giving Z* at the minimum")
    z.add_argument("--born", metavar="FILE", help="Born charges of the structure's atoms (data set or code output)")
    z.add_argument("--charges", metavar="Q", help="rigid-ion charges per species in e, e.g. Na=1,Cl=-1")
    parser.add_argument("--eps-inf", metavar="E",
                        help="electronic dielectric tensor for the LO modes of crystals: 1, 3 or 9 numbers "
                             "(default: the --born file's, 1 with --charges)")
    parser.add_argument("--supercell", type=int, nargs=3, default=[1, 1, 1], metavar=("NA", "NB", "NC"),
                        help="crystals: supercell of the given cell for the displacements (default 1 1 1: "
                             "Gamma force constants are exact in any supercell)")
    parser.add_argument("--q-direction", type=float, nargs=3, default=[1.0, 0.0, 0.0], metavar=("QX", "QY", "QZ"),
                        help="Cartesian direction of the LO wave vector (default 1 0 0)")
    parser.add_argument("--volume", type=float, metavar="A3",
                        help="volume in Angstrom^3 that alpha*n refers to (molecules: required without a cell)")
    parser.add_argument("--fwhm", type=float, default=20.0, metavar="CM",
                        help="FWHM of the line shape in cm^-1 (default 20, as 'spectrum')")
    parser.add_argument("--lorentzian", action="store_true", help="Lorentzian lines instead of Gaussian")
    parser.add_argument("--max-cm1", type=float, default=6000.0, metavar="NU",
                        help="last wavenumber of spectrum.csv (default 6000)")
    parser.add_argument("--resolution-cm1", type=float, metavar="R",
                        help="grid spacing of spectrum.csv (default min(1, FWHM/8), as 'spectrum')")
    parser.add_argument("--no-relax", action="store_true", help="use the structure as it is (no minimisation)")
    parser.add_argument("--fmax", type=float, default=1e-4, metavar="F",
                        help="minimisation threshold on the largest force, eV/A (default 1e-4)")
    parser.add_argument("--steps", type=int, default=1000, help="most minimisation steps (default 1000)")
    parser.add_argument("--optimiser", default="bfgs", choices=["bfgs", "lbfgs", "fire"])
    parser.add_argument("--delta", type=float, metavar="D",
                        help="finite-difference displacement in A (default 0.005 molecules, 0.01 crystals)")


def _numbers(text, option):
    from ipi_dipole.errors import InputError

    try:
        return [float(x) for x in text.replace(",", " ").split()]
    except ValueError:
        raise InputError(f"{option}: expected numbers, got {text!r}") from None


def _charges(text):
    from ipi_dipole.errors import InputError

    out = {}
    for item in text.replace(" ", "").split(","):
        if not item:
            continue
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[key] = float(value)
        except ValueError:
            raise InputError(f"--charges: expected SPECIES=CHARGE pairs, got {item!r}") from None
    return out


def _eps_inf(text):
    import numpy as np

    from ipi_dipole.errors import InputError

    v = _numbers(text, "--eps-inf")
    if len(v) == 1:
        eps = np.eye(3) * v[0]
    elif len(v) == 3:
        eps = np.diag(v)
    elif len(v) == 9:
        eps = np.array(v).reshape(3, 3)
    else:
        raise InputError(f"--eps-inf: give 1, 3 or 9 numbers, got {len(v)}")
    if np.any(np.linalg.eigvalsh(0.5 * (eps + eps.T)) < 1.0 - 1e-9):
        raise InputError(f"--eps-inf: a dielectric tensor has eigenvalues >= 1, got {v}")
    return eps


def read_structure(spec):
    """A structure by name or from a file; i-PI xyz files keep their CELL(abcABC) cell."""
    from pathlib import Path

    import numpy as np

    from ipi_dipole.structures import load_structure

    atoms = load_structure(spec)
    path = Path(str(spec))
    if path.is_file() and not atoms.cell.rank:
        with open(path) as fh:
            fh.readline()
            comment = fh.readline()
        if "CELL(abcABC)" in comment or "CELL(GENH)" in comment:
            from ase import Atoms
            from ipi.utils.io import read_file

            from ipi_dipole.ipi_io.units import cell_from_ipi, positions_from_ipi

            with open(path) as fh:
                frame = read_file("xyz", fh)
            atoms = Atoms(list(frame["atoms"].names), positions=positions_from_ipi(frame["atoms"].q),
                          cell=cell_from_ipi(frame["cell"].h), pbc=True)
    return atoms


def run(args):
    import json
    import sys
    from pathlib import Path

    import numpy as np

    from ipi_dipole.analysis import harmonic_spectrum as hs
    from ipi_dipole.analysis import spectrum_file
    from ipi_dipole.driver.backends import make_backend
    from ipi_dipole.errors import InputError
    from ipi_dipole.harmonic import workflow
    from ipi_dipole.harmonic.calculator import BackendCalculator

    if args.fwhm <= 0:
        raise InputError("--fwhm must be > 0 cm^-1 (the sticks are in modes.csv)")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    atoms = read_structure(args.structure)
    crystal = workflow.is_crystal(atoms)
    volume = args.volume
    if not crystal and volume is None:
        if atoms.cell.rank == 3:
            volume = float(atoms.get_volume())
        else:
            raise InputError(f"{args.structure}: a molecule without a cell: give --volume, the volume per "
                             "molecule alpha*n refers to (as 'spectrum --volume'; e.g. the MD box)")
    charges = _charges(args.charges) if args.charges else None
    eps = _eps_inf(args.eps_inf) if args.eps_inf else None
    if args.born:  # read before the long part, so that a bad file fails at once
        born_file, eps_file = workflow.born_from_file(args.born, atoms)
        eps = eps if eps is not None else eps_file
    if charges is not None and eps is None:
        eps = np.eye(3)  # rigid ions have no electronic polarisation
    if args.model:
        from ipi_dipole.model import PolarizationModel

        PolarizationModel.load(args.model)

    settings = workflow.HarmonicSettings(relax=not args.no_relax, fmax=args.fmax, steps=args.steps,
                                         optimiser=args.optimiser, delta=args.delta,
                                         supercell=tuple(args.supercell), q_direction=tuple(args.q_direction))
    calc = BackendCalculator(make_backend(args.forces))
    print(f"{'crystal' if crystal else 'molecule'}: {atoms.get_chemical_formula()}, {len(atoms)} atoms; "
          f"forces: {calc.backend.label}")
    try:
        modes, minimised, phonon = workflow.compute_modes(atoms, calc, out, settings, log=print)
    finally:
        calc.close()
    print(f"{calc.n_calls} force evaluations")

    if args.model:
        born = workflow.born_from_model(args.model, minimised)
        source = f"model {args.model} at the minimum"
    elif args.born:
        born = born_file
        moved = float(np.abs(minimised.positions - atoms.positions).max())
        source = f"file {args.born}" + (f" (structure as given; the minimum is up to {moved:.3g} A away)"
                                        if moved > 1e-3 else "")
    else:
        born = workflow.born_from_charges(charges, minimised)
        source = f"rigid-ion charges {args.charges}"
    z = workflow.attach_born_charges(modes, born, phonon)
    asr = workflow.asr_violation(z)
    if asr > 0.05:
        print(f"warning: the Born charges violate the acoustic sum rule by up to {asr:.3g} e", file=sys.stderr)
    if crystal:
        volume = volume or modes.volume_a3
        if eps is not None:
            workflow.add_lo_modes(modes, phonon, z, eps, settings.q_direction)
        else:
            print("note: no eps_inf (--eps-inf or a --born file with a dielectric tensor): LO modes not computed")
    if len(modes.imaginary):
        listed = ", ".join(f"{abs(modes.wavenumber_cm1[k]):.1f}i" for k in modes.imaginary)
        print(f"warning: {len(modes.imaginary)} imaginary mode(s): {listed} cm^-1 (not a minimum; left out "
              "of the spectrum)", file=sys.stderr)

    comments = [f"ipi-dipole harmonic: {atoms.get_chemical_formula()} ({'crystal, Gamma modes of the primitive cell' if crystal else 'molecule'}), "
                f"forces {calc.backend.label}, Born charges from {source}"]
    hs.write_modes_csv(out / "modes.csv", modes, volume, comments)
    if modes.nac is not None:
        nac = modes.nac
        with open(out / "modes_lo.csv", "w") as fh:
            fh.write(f"# LO/TO modes with phonopy's non-analytic correction, q along {nac['q_direction'].tolist()} "
                     f"(Cartesian), eps_inf {nac['eps_inf'].ravel().tolist()}\n# units: wavenumber_cm1 in cm^-1\n")
            fh.write("mode,wavenumber_cm1,irrep\n")
            for k, w in enumerate(nac["wavenumber_cm1"]):
                fh.write(f"{k + 1},{w:.6f},{nac['irreps'][k] or ''}\n")

    window = "lorentzian" if args.lorentzian else "gaussian"
    spec = hs.harmonic_spectrum(modes.wavenumber_cm1, modes.dmdq, volume, fwhm_cm1=args.fwhm, window=window,
                                max_cm1=args.max_cm1, resolution_cm1=args.resolution_cm1)
    avg = hs.as_replica_average(spec)
    lines = [
        "ipi-dipole harmonic: alpha(w)*n(w) = pi/(2 V c eps0) sum_k |dM_a/dQ_k|^2 [g(w-w_k) + g(w+w_k)] (SI), "
        "the classical Green-Kubo formula of 'spectrum' for a harmonic system (temperature independent)",
        "units: wavenumber_cm1 in cm^-1 (w / 2 pi c); alpha_n_* in cm^-1; *_stderr = nan (no replicas); "
        "xx/yy/zz = light polarised along x/y/z, isotropic = their mean",
        "estimator: harmonic",
        f"window: {window}, FWHM {args.fwhm:g} cm^-1 (line shape in frequency)",
        f"volume: {volume:.8g} A^3 ({'--volume' if args.volume else ('primitive cell' if crystal else 'structure cell')})",
        f"modes: {len(modes)}, source {comments[0]}",
    ]
    rows = spectrum_file.write_csv(out / "spectrum.csv", avg, lines)

    active = np.asarray(modes.ir_active)
    print(f"point group {modes.point_group or 'unknown'}; modes (cm^-1, irrep, km/mol):")
    for k, w in enumerate(modes.wavenumber_cm1):
        print(f"  {k + 1:3d} {w:10.2f} {modes.irreps[k] or '-':>5} {'IR' if active[k] else '  '} "
              f"{modes.intensity_km_per_mol[k]:10.4g}")
    summary = {"kind": "crystal" if crystal else "molecule", "point_group": modes.point_group,
               "wavenumber_cm1": modes.wavenumber_cm1.tolist(), "irreps": modes.irreps,
               "ir_active": active.tolist(), "intensity_km_mol": modes.intensity_km_per_mol.tolist(),
               "volume_a3": volume, "born_charges": source, "force_evaluations": calc.n_calls}
    if modes.nac is not None:
        to = modes.wavenumber_cm1[active]
        lo = modes.nac["wavenumber_cm1"]
        summary["lo_wavenumber_cm1"] = lo.tolist()
        summary["q_direction"] = modes.nac["q_direction"].tolist()
        print(f"with NAC along {modes.nac['q_direction'].round(4).tolist()}: "
              + ", ".join(f"{w:.2f}" for w in lo) + " cm^-1")
        if len(to):
            print(f"TO {to.min():.2f} .. {to.max():.2f} cm^-1, highest LO {lo.max():.2f} cm^-1")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {out / 'modes.csv'}, {out / 'spectrum.csv'} ({rows} rows), {out / 'summary.json'}")
    return 0
