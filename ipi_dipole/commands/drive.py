"""Serve i-PI over a socket: energy, forces and virial from a force back-end, and the
dipole and Born charges of a PolarizationModel as the extras {"dipole", "BEC"}.

Force back-ends (--forces SPEC):
  lammps:IN_FILE                   LAMMPS in-process (any pair_style); IN_FILE either builds
                                   the system (read_data ...: atoms in i-PI's order) or holds
                                   only interaction commands plus a '# species: O H' line
  ase:MODULE:CLASS[:JSON_KWARGS]   any ASE calculator, e.g.
                                   ase:tblite.ase:TBLite:'{"method":"GFN2-xTB","verbosity":0}'
  none                             zero forces: extras only, beside LAMMPS's own fix ipi
                                   (give both forcefields weight 1 in i-PI: a weight-0
                                   forcefield's extras are dropped)

i-PI sends only positions and the cell, so the driver needs the species in i-PI's atom
order: --structure FILE (any ASE-readable file, e.g. i-PI's init.xyz) or --species.
i-PI 3.3 needs a cell even for a molecule: give it a box and run the driver with
--pbc false.

The driver exits with status 0 when i-PI sends EXIT; when i-PI vanishes (killed, crashed)
it waits --reconnect-wait seconds for a restarted i-PI on the same address, then exits
with status 1 (it never spins). Example:

  i-pi input.xml &
  ipi-dipole drive --model model.npz --forces lammps:in.lammps --structure init.xyz --unix water

The model is the expensive part of a step for cheap force fields: with --ipi-input (the
XML or checkpoint i-PI runs) the driver computes the dipole and the Born charges only at
the steps where i-PI writes them, e.g. every 8 steps instead of every step:

  ipi-dipole drive --model model.npz --forces lammps:in.lammps --structure init.xyz \
      --unix water --ipi-input nve.xml

Without sockets, i-PI can run the same PES in-process (<ffdirect>); print the path to put
in <pes_path> with --pes-path. See inputs/README.md.
"""

HELP = "serve forces plus dipole and Born-charge extras to i-PI over a socket"


def add_arguments(parser):
    parser.add_argument("--model", help="PolarizationModel file (from ipi-dipole train); "
                        "without it no extras are sent")
    parser.add_argument("--forces", default="none", metavar="SPEC",
                        help="force back-end: lammps:IN_FILE, ase:MODULE:CLASS[:JSON], none (default)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--unix", metavar="ADDRESS",
                       help="i-PI's unix socket: the <address> of its <ffsocket mode='unix'> "
                            "(the socket is PREFIX+ADDRESS) or a full path")
    where.add_argument("--inet", metavar="HOST:PORT", help="i-PI's TCP socket")
    where.add_argument("--pes-path", action="store_true",
                       help="print the path of the PES file for i-PI's <pes_path> / -P and exit")
    species = parser.add_mutually_exclusive_group()
    species.add_argument("--structure", metavar="FILE",
                         help="structure with the atoms in i-PI's order (species are read from it)")
    species.add_argument("--species", help="species in i-PI's order: 'O,H,H,O,H,H' or '(OH2)2'")
    parser.add_argument("--pbc", choices=("auto", "true", "false"), default="auto",
                        help="periodic system? auto (default): when i-PI's cell has positive volume")
    parser.add_argument("--no-bec", action="store_true", help="send only the dipole, not the Born charges")
    parser.add_argument("--ipi-input", metavar="XML",
                        help="the i-PI input or checkpoint that i-PI runs: compute the extras only at "
                             "the steps where it writes them, counting from its <step>")
    parser.add_argument("--stride", metavar="STEPS",
                        help="compute the dipole every STEPS steps (default: every step, or as --ipi-input "
                             "says; checked against it)")
    parser.add_argument("--bec-stride", metavar="STEPS",
                        help="compute the Born charges every STEPS steps (default: --stride)")
    parser.add_argument("--sockets-prefix", default="/tmp/ipi_", metavar="PREFIX",
                        help="prefix of unix socket paths, as i-PI's <simulation sockets_prefix> "
                             "(default /tmp/ipi_)")
    parser.add_argument("--connect-timeout", type=float, default=60.0, metavar="S",
                        help="seconds to wait for i-PI's socket at start (default 60)")
    parser.add_argument("--reconnect-wait", type=float, default=3.0, metavar="S",
                        help="seconds to wait for a restarted i-PI after losing it (default 3)")


def run(args):
    from ipi_dipole.errors import InputError

    if args.pes_path:
        from ipi_dipole.driver import pes

        print(pes.__file__)
        return 0
    if not (args.unix or args.inet):
        raise InputError("give --unix ADDRESS or --inet HOST:PORT (or --pes-path)")
    inet = None
    if args.inet:
        host, sep, port = args.inet.rpartition(":")
        if not sep or not port.isdigit():
            raise InputError(f"--inet {args.inet}: expected HOST:PORT")
        inet = (host or "localhost", int(port))

    from ipi_dipole.driver.client import SocketClient, unix_socket_path
    from ipi_dipole.driver.pes import DipolePES

    pes = DipolePES(model=args.model, forces=args.forces, structure=args.structure,
                    species=args.species, pbc=args.pbc, bec=not args.no_bec,
                    ipi_input=args.ipi_input, stride=args.stride, bec_stride=args.bec_stride)
    client = SocketClient(pes, unix=unix_socket_path(args.unix, args.sockets_prefix) if args.unix else None,
                          inet=inet, connect_timeout=args.connect_timeout,
                          reconnect_wait=args.reconnect_wait)
    try:
        status = client.serve()
    finally:
        pes.close()
    t = pes.timings
    if t["calls"]:
        per = 1e3 / t["calls"]
        client.log(f"{t['calls']} evaluations: forces {t['forces'] * per:.2f} ms, model "
                   f"{t['model'] * per:.2f} ms, extras encoding {t['extras'] * per:.2f} ms per call "
                   f"(model evaluated at {t['model_calls']} of them)")
    return status
