"""Label molecules with energy, forces, dipole and Born charges from a reference engine.

Born charges come from central finite electric fields, Z*[i,a,b] = dF_ib/dE_a
(6 extra force evaluations per structure): GFN2-xTB or GFN1-xTB with tblite, or HF/DFT
with PySCF (--xc, --basis). Molecules only: periodic structures are refused, since a
finite field in a periodic cell is not the Born charge.

Charge and spin come from each structure's info: charge=Q, and uhf=N (unpaired
electrons) or spin=2S+1 (multiplicity); default neutral, lowest spin.

Each structure is appended to OUT as soon as it is done, with source_index = its index
in IN. Rerunning the same command resumes after the last structure in OUT (an OUT from
another input, engine or field step is refused). A structure whose calculation fails
(SCF not converged, atoms on top of each other) is reported by index and skipped; the
gap in source_index shows it.

Exit status: 0 when every selected structure is in OUT, 1 when some failed (in this run
or an earlier one), 2 for bad input.

Example:
  ipi-dipole label traj.extxyz -o labelled.extxyz --engine tblite --every 10
"""

HELP = "label molecules with E, F, dipole and finite-field Born charges (tblite or PySCF)"


def add_arguments(parser):
    parser.add_argument("input", metavar="IN.extxyz", help="structures to label (extended XYZ)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.extxyz",
                        help="labelled data set (appended to; a rerun resumes it)")
    parser.add_argument("--engine", choices=("tblite", "pyscf"), default="tblite",
                        help="reference engine (default tblite)")
    parser.add_argument("--method", help="tblite method: GFN2-xTB (default) or GFN1-xTB")
    parser.add_argument("--xc", help="PySCF functional, or HF (default B3LYP)")
    parser.add_argument("--basis", help="PySCF basis set (default def2-SVP)")
    parser.add_argument("--field-step", type=float, metavar="V_PER_A",
                        help="finite-field step in V/Angstrom (default 0.01 tblite, 0.05 pyscf)")
    parser.add_argument("--every", type=int, default=1, metavar="K",
                        help="label every K-th input structure (default 1)")
    parser.add_argument("--max", type=int, metavar="N", dest="max_structures",
                        help="label at most N structures")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args):
    from ipi_dipole.engines import get_engine
    from ipi_dipole.engines.labelling import label_file

    engine = get_engine(args.engine, method=args.method, xc=args.xc, basis=args.basis,
                        field_step=args.field_step)
    summary = label_file(args.input, args.output, engine, every=args.every,
                         max_structures=args.max_structures, progress=not args.no_progress)
    print(summary.line())
    return 1 if summary.failed or summary.failed_earlier else 0
