"""Check a data set structure by structure: shapes, NaN/inf, cells of periodic
structures, and the acoustic sum rule. With --enforce-asr, write a corrected copy
(the residual spread evenly over the atoms).

Exit status: 0 when no structure has an error, 1 otherwise.
"""

HELP = "check a data set (shapes, NaN, cells, acoustic sum rule); optionally enforce the sum rule"


def add_arguments(parser):
    parser.add_argument("data", help="extended-XYZ data set")
    parser.add_argument("--asr-tolerance", type=float, default=0.05, metavar="E",
                        help="report sum-rule violations above this many e (default 0.05)")
    parser.add_argument("--enforce-asr", action="store_true",
                        help="spread each structure's sum-rule residual evenly over its atoms")
    parser.add_argument("-o", "--output", help="where to write the corrected data set (with --enforce-asr)")


def run(args):
    from ipi_dipole import data
    from ipi_dipole.errors import InputError

    if args.enforce_asr and not args.output:
        raise InputError("--enforce-asr needs -o OUTPUT")
    structures = data.load(args.data)
    problems = data.validate(structures, asr_tolerance=args.asr_tolerance)
    for p in problems:
        print(f"{args.data}: {p}")
    n_err = sum(p.severity == "error" for p in problems)
    n_warn = len(problems) - n_err
    print(f"{args.data}: {len(structures)} structures, {n_err} errors, {n_warn} warnings")
    if args.enforce_asr:
        bad = {p.index for p in problems if p.severity == "error"}
        if bad:
            raise InputError(f"{args.data}: cannot enforce the sum rule on structures with errors: "
                             f"{sorted(bad)[:10]}")
        data.save(args.output, [data.enforce_asr(a) for a in structures])
        print(f"wrote {args.output} with the acoustic sum rule enforced")
    return 1 if n_err else 0
