"""Read Born effective charges (and cell, positions, species, dielectric tensor) from
first-principles output files and write them as one extended-XYZ data set.

Formats, detected from the content (or named with --format):
  vasp-outcar   VASP OUTCAR (LEPSILON / LCALCEPS, old and new headers)
  vasp-xml      VASP vasprun.xml, also compressed (.xz, .gz, .bz2)
  qe-ph         Quantum ESPRESSO ph.x output (epsil = .true.; old and new formats)
  qe-dyn        Quantum ESPRESSO fildyn file at Gamma
  abinit-ddb    ABINIT text DDB with electric-field perturbations
  phonopy-born  phonopy BORN file; its unit cell is found beside it (POSCAR-unitcell,
                POSCAR, phonopy_disp.yaml, or the same names with BORN_<tag>'s tag) or
                given with --structure
  apt-xyz       XYZ frames with 9 APT components per atom; no cell in the file: give --cell
  crystal       CRYSTAL14/17 output with ATOMIC BORN CHARGE TENSOR
  extxyz        an ipi-dipole data set, or another extended XYZ whose Born-charge array is
                born_charge, bec, BEC, Z, zstar, ... (or named with --bec-key)

Born charges are stored as Z[i,a,b] = dM_a/dx_ib (row = field/dipole component) whatever
the code prints; the charges are written as the code computed them (no sum rule), unless
--enforce-asr spreads each structure's residual evenly over its atoms (what QE's "with asr
applied" block and anaddb's chneut=1 do).

Examples:
  ipi-dipole convert vasprun.xml -o set.extxyz
  ipi-dipole convert BORN --structure POSCAR-unitcell -o set.extxyz
  ipi-dipole convert train.xyz --cell 15.6627 -o water.extxyz
  ipi-dipole convert run*/OUTCAR ph.out DDB -o all.extxyz --enforce-asr

Exit status: 0 on success, 2 for unreadable input (one line naming the file).
"""

HELP = "read Born charges from VASP/QE/ABINIT/phonopy/APT files into an extended-XYZ data set"


def add_arguments(parser):
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="files with Born charges")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.extxyz", help="data set to write")
    parser.add_argument("--format", metavar="F", help="format of every INPUT (default: detect from content): "
                        "vasp-outcar, vasp-xml, qe-ph, qe-dyn, abinit-ddb, phonopy-born, apt-xyz, crystal, extxyz")
    parser.add_argument("--cell", nargs="+", type=float, metavar="A",
                        help="cell for files without one (Angstrom): A (cubic), A B C, or 9 numbers (a, b, c vectors)")
    parser.add_argument("--structure", metavar="FILE",
                        help="unit cell of a phonopy BORN file, or a pw.x input/output for QE files (full precision)")
    parser.add_argument("--bec-key", metavar="NAME",
                        help="per-atom Born-charge array of extended-XYZ inputs (default: detect "
                             "born_charges, born_charge, bec, BEC, Z, zstar, ...); read as row = dipole component")
    parser.add_argument("--enforce-asr", action="store_true",
                        help="spread each structure's acoustic-sum-rule residual evenly over its atoms")
    parser.add_argument("--asr-tolerance", type=float, default=0.05, metavar="E",
                        help="report sum-rule violations above this many e (default 0.05)")


def run(args):
    import sys
    import warnings
    from pathlib import Path

    from ipi_dipole import data
    from ipi_dipole.errors import InputError
    from ipi_dipole.readers import detect_format, parse_cell, read_born

    cell = parse_cell(args.cell) if args.cell else None
    output = Path(args.output)
    if any(Path(p).resolve() == output.resolve() for p in args.inputs):
        raise InputError(f"{output}: the output would overwrite an input")
    structures = []
    for path in args.inputs:
        fmt = args.format or detect_format(path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            frames = read_born(path, format=fmt, cell=cell, structure=args.structure,
                               bec_key=args.bec_key)
        for w in caught:
            if issubclass(w.category, UserWarning):
                print(f"warning: {w.message}", file=sys.stderr)
        worst = max(data.asr_violation(a) for a in frames)
        natoms = sorted({len(a) for a in frames})
        eps = "yes" if "dielectric_tensor" in data.get_results(frames[0]) else "no"
        print(f"{path}: {fmt}, {len(frames)} structure{'s' * (len(frames) > 1)} of "
              f"{'/'.join(map(str, natoms))} atoms, dielectric tensor: {eps}, "
              f"max sum-rule violation {worst:.4f} e")
        structures.extend(frames)
    if args.enforce_asr:
        structures = [data.enforce_asr(a) for a in structures]
    problems = data.validate(structures, asr_tolerance=args.asr_tolerance)
    errors = [p for p in problems if p.severity == "error"]
    shown = errors + [p for p in problems if p.severity != "error"][:10]
    for p in shown:
        print(f"{p.severity}: structure {p.index} ({structures[p.index].info.get('source', '?')}): {p.message}",
              file=sys.stderr)
    if len(problems) > len(shown):
        print(f"... and {len(problems) - len(shown)} more warnings (ipi-dipole validate {output} lists them all)",
              file=sys.stderr)
    if errors:
        raise InputError(f"{len(errors)} structures failed validation; nothing written to {output}")
    data.save(output, structures)
    print(f"wrote {output}: {len(structures)} structure{'s' * (len(structures) != 1)}"
          + (" (acoustic sum rule enforced)" if args.enforce_asr else ""))
    return 0
