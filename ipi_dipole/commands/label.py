"""Label structures with energy, forces and Born charges from a reference engine.

Molecules (tblite, pyscf): Born charges from central finite electric fields,
Z*[i,a,b] = dF_ib/dE_a (6 extra force evaluations per structure), with the dipole:
GFN2-xTB or GFN1-xTB with tblite, or HF/DFT with PySCF (--xc, --basis). Periodic
structures are refused, since a finite field in a periodic cell is not the Born charge.

Crystals (qe): Quantum ESPRESSO, pw.x then ph.x's electric-field response (DFPT, no
phonons) per structure, in a work directory kept per structure (--work-dir/NNNNN); Z*
(as ph.x prints them, no sum rule imposed), eps_inf, E and F, no dipole. Insulators
only. Pseudopotentials: Debian's quantum-espresso-data files by default, chosen per
element for the functional --xc (default lda) and named in each structure's info, or
--pseudo-dir DIR (SSSP, ...) and --pseudo EL=FILE. --ranks N runs both under mpirun.

Charge and spin come from each structure's info: charge=Q, and uhf=N (unpaired
electrons) or spin=2S+1 (multiplicity); default neutral, lowest spin.

Each structure is appended to OUT as soon as it is done, with source_index = its index
in IN. Rerunning the same command resumes after the last structure in OUT (an OUT from
another input, engine or field step is refused). A structure whose calculation fails
(SCF not converged, atoms on top of each other) is reported by index and skipped; the
gap in source_index shows it.

Exit status: 0 when every selected structure is in OUT, 1 when some failed (in this run
or an earlier one), 2 for bad input.

Examples:
  ipi-dipole label traj.extxyz -o labelled.extxyz --engine tblite --every 10
  ipi-dipole label cells.extxyz -o bulk.extxyz --engine qe --ecutwfc 30 --kspacing 0.1
"""

HELP = "label structures with E, F and Born charges (tblite/PySCF molecules, QE crystals)"


def add_arguments(parser):
    parser.add_argument("input", metavar="IN.extxyz", help="structures to label (extended XYZ)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.extxyz",
                        help="labelled data set (appended to; a rerun resumes it)")
    parser.add_argument("--engine", choices=("tblite", "pyscf", "qe"), default="tblite",
                        help="reference engine (default tblite; qe for crystals)")
    parser.add_argument("--method", help="tblite method: GFN2-xTB (default) or GFN1-xTB")
    parser.add_argument("--xc", help="PySCF functional, or HF (default B3LYP); qe: functional "
                        "family of the pseudopotentials, lda (default), pbe, pbesol")
    parser.add_argument("--basis", help="PySCF basis set (default def2-SVP)")
    parser.add_argument("--field-step", type=float, metavar="V_PER_A",
                        help="finite-field step in V/Angstrom (default 0.01 tblite, 0.05 pyscf)")
    qe = parser.add_argument_group("qe engine (Quantum ESPRESSO pw.x + ph.x)")
    qe.add_argument("--pseudo-dir", metavar="DIR",
                    help="directory of UPF files (default /usr/share/espresso/pseudo, Debian's)")
    qe.add_argument("--pseudo", action="append", default=[], metavar="EL=FILE",
                    help="pseudopotential file for one element, e.g. O=O.pz-van_ak.UPF (repeatable)")
    qe.add_argument("--ecutwfc", type=float, metavar="RY", help="wavefunction cutoff in Ry (default 30)")
    qe.add_argument("--ecutrho", type=float, metavar="RY", help="density cutoff in Ry (default 8 x ecutwfc)")
    qe.add_argument("--kspacing", type=float, metavar="PER_A",
                    help="k-point spacing in 1/Angstrom without 2 pi, as ASE's espresso writer "
                         "(default 0.1; VASP's KSPACING = 2 pi x this)")
    qe.add_argument("--ranks", type=int, metavar="N", help="MPI ranks for pw.x and ph.x (default 1)")
    qe.add_argument("--work-dir", metavar="DIR",
                    help="per-structure QE directories DIR/NNNNN (default: OUT without .extxyz + '.qe')")
    parser.add_argument("--every", type=int, default=1, metavar="K",
                        help="label every K-th input structure (default 1)")
    parser.add_argument("--max", type=int, metavar="N", dest="max_structures",
                        help="label at most N structures")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args):
    from ipi_dipole.engines import get_engine
    from ipi_dipole.engines.labelling import label_file

    qe_options = {}
    if args.engine == "qe":
        from pathlib import Path

        from ipi_dipole.sampling import parse_assignments

        output = Path(args.output)
        qe_options = dict(pseudo_dir=args.pseudo_dir, ecutwfc=args.ecutwfc, ecutrho=args.ecutrho,
                          kspacing=args.kspacing, ranks=args.ranks,
                          pseudopotentials=parse_assignments(args.pseudo, "--pseudo") or None,
                          work_dir=args.work_dir or output.with_name(output.stem + ".qe"))
    else:
        given = [name for name in ("pseudo_dir", "ecutwfc", "ecutrho", "kspacing", "ranks", "work_dir")
                 if getattr(args, name) is not None] + (["pseudo"] if args.pseudo else [])
        if given:
            from ipi_dipole.errors import InputError

            raise InputError(f"--{given[0].replace('_', '-')} is an option of --engine qe, "
                             f"not of {args.engine}")
    engine = get_engine(args.engine, method=args.method, xc=args.xc, basis=args.basis,
                        field_step=args.field_step, **qe_options)
    summary = label_file(args.input, args.output, engine, every=args.every,
                         max_structures=args.max_structures, progress=not args.no_progress)
    print(summary.line())
    return 1 if summary.failed or summary.failed_earlier else 0
