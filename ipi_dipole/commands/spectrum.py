"""Green-Kubo infrared spectrum, alpha(w) n(w) in cm^-1, averaged over NVE replicas.

    alpha(w) n(w) = beta / (3 V c eps0) Re int_0^T <Mdot(0).Mdot(t)> w(t) exp(-i w t) dt

RUN_DIR_OR_FILES are searched recursively and recognised by content: i-PI extras
trajectories (#EXTRAS(dipole)#, #EXTRAS(BEC)#), i-PI xyz trajectories (velocities or
momenta), properties files and i-PI input XMLs. Every directory + output prefix is one
replica. Time step, temperature and volume come from the run (i-PI input <timestep>,
ensemble temperature or the properties' mean kinetic temperature, properties volume or
the trajectory's cell) unless given; what was used is printed and written to the CSV.

Estimators: zv (Mdot = Z*.v, the paper's Eq. 4; the default when Born charges and
velocities are there), dipole-fd (centred finite difference of M), dipole-w2 (w^2 times
the M-M spectrum), dipole-mdot (the M-Mdot cross-correlation). The dipole-based ones are
matched to Z*.v with velocity-Verlet velocities of the run's MD step (--md-step-fs; 0 for
exact derivatives), and dipole jumps by a lattice quantum (wrapped positions) are removed
first; --jump-charges gives the species charges (e) so that they go as exact quanta.
Born charges written less often than the velocities: Z*.v on the common steps, or
with --bec-matching linear on every velocity step with Z* interpolated.
Fixed-charge force fields (rigid ions, TIP4P-type water): --charges Na=1,Cl=-1 gives
constant Born charges Z* = q 1, so Mdot = sum q v needs only the velocities (any Born
charges and dipole in the run are then ignored); --charges qtip4pf is q-TIP4P/F's M-site
charges, Z*(O) = gamma q_M, Z*(H) = q_H + (1-gamma)/2 q_M.

Plain arrays from other MD codes (repeat an option once per replica, all with
--timestep-fs, --temperature and --volume or --cell):
  --dipole FILE      (T, 3) cell dipole in e*Angstrom
  --velocities FILE  (T, N, 3) or (T, 3N) in Angstrom/fs
  --bec FILE         (T, N, 3, 3), (T, N, 9) or (T, 9N) Born charges in e,
                     Z[t, i, a, b] = dM_a/dx_ib (row = dipole component)
FILE is .npy, .npz (first array) or a whitespace text table (one row per frame).

CSV: '#' lines (units, settings, provenance), then the header
wavenumber_cm1,alpha_n_cm1,alpha_n_stderr_cm1,alpha_n_xx_cm1,alpha_n_yy_cm1,alpha_n_zz_cm1,...
The window width is the FWHM, in cm^-1, of the line shape it gives (Gaussian by default,
Lorentzian with --lorentzian; 0 for none). Band positions (maxima) are printed.
"""

HELP = "Green-Kubo IR spectrum (alpha*n, cm^-1) from i-PI replicas or plain arrays, with error bars"


def add_arguments(parser):
    parser.add_argument("paths", nargs="*", metavar="RUN_DIR_OR_FILES",
                        help="run directories (searched recursively) or i-PI output files")
    parser.add_argument("-o", "--output", required=True, help="spectrum CSV to write")
    parser.add_argument("--plot", metavar="PNG", help="also draw the spectrum with its error band (needs matplotlib)")
    parser.add_argument("--estimator", default="auto",
                        choices=["auto", "zv", "dipole-fd", "dipole-w2", "dipole-mdot"],
                        help="how Mdot is obtained (default: zv when Born charges and velocities exist, "
                             "else dipole-fd)")
    parser.add_argument("--window-cm1", type=float, default=20.0, metavar="W",
                        help="FWHM of the broadening line shape in cm^-1 (default 20; 0: no window)")
    parser.add_argument("--lorentzian", action="store_true",
                        help="Lorentzian broadening exp(-pi c W t) instead of the Gaussian window")
    parser.add_argument("--max-lag-fs", type=float, metavar="T",
                        help="longest correlation time in fs (default: where the window is 1e-6, "
                             "at most the shortest replica)")
    parser.add_argument("--resolution-cm1", type=float, metavar="R",
                        help="output grid spacing in cm^-1 (default min(1, W/8))")
    parser.add_argument("--max-cm1", type=float, default=6000.0, metavar="NU",
                        help="last wavenumber written (default 6000; 0: up to the Nyquist frequency)")
    parser.add_argument("--taper", type=float, default=0.1, metavar="F",
                        help="fraction of each series in the cosine ramps of the Tukey taper applied before "
                             "correlating (default 0.1; 0: plain N-k normalisation)")
    parser.add_argument("--md-step-fs", type=float, metavar="H",
                        help="MD integrator step whose velocity-Verlet velocities define Mdot = Z*.v; the "
                             "dipole-based estimators are matched to it (default: the run's time step; "
                             "0: exact derivatives)")
    parser.add_argument("--temperature", type=float, metavar="K", help="temperature in K (overrides the run)")
    parser.add_argument("--volume", type=float, metavar="A3", help="volume in Angstrom^3 (overrides the run)")
    parser.add_argument("--timestep-fs", type=float, metavar="DT",
                        help="time between consecutive frames in fs (of the most often written file; "
                             "overrides the run)")
    parser.add_argument("--quantum-correction", default="none",
                        choices=["none", "harmonic", "schofield", "standard"],
                        help="quantum correction factor (default none = classical; harmonic equals the "
                             "classical alpha*n, see ipi_dipole.analysis.quantum_corrections)")
    parser.add_argument("--experiment", metavar="FILE",
                        help="measured spectrum to plot: refractiveindex.info YAML (n, k) or a two-column "
                             "table of wavenumber and alpha*n in cm^-1")
    parser.add_argument("--reference-lines", metavar="NU",
                        help="wavenumbers in cm^-1 to mark on the plot, e.g. harmonic frequencies (comma list)")
    parser.add_argument("--reference-label", default="reference", metavar="TEXT",
                        help="legend entry of --reference-lines (default 'reference')")
    parser.add_argument("--harmonic", metavar="FILE",
                        help="0 K harmonic reference to draw with --plot: the spectrum.csv (curve) or modes.csv "
                             "(sticks) of 'ipi-dipole harmonic'")
    parser.add_argument("--masses", metavar="M",
                        help="masses in Da, per species (O=15.999,H=2.014) or per atom (comma list); "
                             "used to turn momenta into velocities")
    parser.add_argument("--bec-matching", default="common", choices=["common", "linear"],
                        help="Born charges written less often than velocities: use only common steps "
                             "(default, exact) or interpolate Z* linearly between BEC frames")
    parser.add_argument("--jump-charges", metavar="Q",
                        help="species charges in e making up dipole jumps, per species (O=-0.8,H=0.4) "
                             "or a list (-0.8,0.4): jumps are removed as exact lattice quanta")
    parser.add_argument("--charges", metavar="Q",
                        help="constant Born charges in e of a fixed-charge force field, per species "
                             "(Na=1,Cl=-1), per atom (comma list) or 'qtip4pf'; Mdot = sum q v from the "
                             "velocities, replacing the run's Born charges and dipole")
    parser.add_argument("--dipole", action="append", default=[], metavar="FILE",
                        help="plain-array dipole (T, 3) in e*Angstrom; once per replica")
    parser.add_argument("--velocities", action="append", default=[], metavar="FILE",
                        help="plain-array velocities (T, N, 3) in Angstrom/fs; once per replica")
    parser.add_argument("--bec", action="append", default=[], metavar="FILE",
                        help="plain-array Born charges (T, N, 3, 3) in e; once per replica")
    parser.add_argument("--cell", metavar="A",
                        help="cell for plain arrays: 3 (orthorhombic) or 9 (rows = lattice vectors) numbers "
                             "in Angstrom, comma or space separated")


def _numbers(text, option):
    from ipi_dipole.errors import InputError

    try:
        return [float(x) for x in text.replace(",", " ").split()]
    except ValueError:
        raise InputError(f"{option}: expected numbers, got {text!r}") from None


def _per_species(text, option):
    """'O=1,H=2' -> {'O': 1.0, 'H': 2.0}; '1,2' -> [1.0, 2.0]."""
    from ipi_dipole.errors import InputError

    if "=" not in text:
        return _numbers(text, option)
    out = {}
    for item in text.replace(" ", "").split(","):
        if not item:
            continue
        try:
            key, value = item.split("=")
            out[key] = float(value)
        except ValueError:
            raise InputError(f"{option}: expected SPECIES=VALUE pairs, got {item!r}") from None
    return out


def _replicas_from_arrays(args, cell):
    from ipi_dipole.analysis.runs import load_array, replica_from_arrays
    from ipi_dipole.errors import InputError

    counts = {k: len(getattr(args, k)) for k in ("dipole", "velocities", "bec") if getattr(args, k)}
    if not counts:
        return []
    if len(set(counts.values())) > 1:
        raise InputError(f"give --dipole, --velocities and --bec the same number of times (one per replica): "
                         f"{counts}")
    if args.timestep_fs is None:
        raise InputError("plain arrays need --timestep-fs")
    n = next(iter(counts.values()))
    reps = []
    for k in range(n):
        files = {key: getattr(args, key)[k] for key in counts}
        arrays = {key: load_array(path) for key, path in files.items()}
        lengths = {key: len(a) for key, a in arrays.items()}
        if len(set(lengths.values())) > 1:
            raise InputError(f"replica {k + 1}: arrays have different frame counts {lengths}")
        reps.append(replica_from_arrays(" + ".join(files.values()), args.timestep_fs, cell=cell, **arrays))
    return reps


def _with_charges(replicas, text):
    """The replicas with the constant Born charges of --charges (see analysis.fixed_charges)."""
    from ipi_dipole.analysis import fixed_charges

    if text.strip().lower() == "qtip4pf":
        charges = fixed_charges.m_site_born_charges(fixed_charges.QTIP4PF_Q_M, fixed_charges.QTIP4PF_GAMMA)
    else:
        charges = _per_species(text, "--charges")
    print("fixed charges (e): " + (", ".join(f"{k}={v:.6g}" for k, v in charges.items())
                                   if isinstance(charges, dict) else f"{len(charges)} per-atom values"))
    return [fixed_charges.with_fixed_charges(r, charges) for r in replicas]


def _cell(text):
    import numpy as np

    from ipi_dipole.errors import InputError

    if text is None:
        return None
    v = _numbers(text, "--cell")
    if len(v) == 3:
        return np.diag(v)
    if len(v) == 9:
        return np.array(v).reshape(3, 3)
    raise InputError(f"--cell: give 3 or 9 numbers, got {len(v)}")


def run(args):
    from ipi_dipole.analysis import pipeline

    with pipeline.notes_to(print):
        return _run(args)


def _run(args):
    import numpy as np

    from ipi_dipole.analysis import pipeline, spectrum_file
    from ipi_dipole.analysis.green_kubo import SpectrumSettings
    from ipi_dipole.analysis.peaks import find_bands
    from ipi_dipole.errors import InputError

    if not args.paths and not (args.dipole or args.velocities or args.bec):
        raise InputError("give run directories / i-PI files, or plain arrays with --dipole/--velocities/--bec")
    jump_charges = None
    if args.jump_charges:
        jc = _per_species(args.jump_charges, "--jump-charges")
        jump_charges = sorted(set(jc.values() if isinstance(jc, dict) else jc))
    settings = SpectrumSettings(window="none" if args.window_cm1 == 0 else
                                ("lorentzian" if args.lorentzian else "gaussian"),
                                fwhm_cm1=args.window_cm1, max_lag_fs=args.max_lag_fs,
                                resolution_cm1=args.resolution_cm1, taper=args.taper)
    options = pipeline.Options(estimator=args.estimator, settings=settings, temperature_k=args.temperature,
                               volume_a3=args.volume, timestep_fs=args.timestep_fs,
                               quantum_correction=args.quantum_correction, bec_matching=args.bec_matching,
                               jump_charges=jump_charges, md_step_fs=args.md_step_fs)
    masses = _per_species(args.masses, "--masses") if args.masses else None
    cell = _cell(args.cell)

    replicas = []
    if args.paths:
        found = pipeline.find_replicas(args.paths)
        print(f"found {len(found)} replica(s):")
        for r in found:
            print(f"  {r.name}: {r.describe()}")
        replicas = pipeline.load_replicas(found, masses=masses, cell=cell)
    replicas += _replicas_from_arrays(args, cell)
    if args.charges:
        replicas = _with_charges(replicas, args.charges)

    result = pipeline.compute(replicas, options)
    info = result.info
    temps = np.array(info["temperature_k"])
    vols = np.array(info["volume_a3"])
    print(f"estimator: {info['estimator']}; frames {info['frame_fs']:g} fs apart; "
          f"correlation up to {info['max_lag_fs']:g} fs; window {info['window']} FWHM {info['fwhm_cm1']:g} cm^-1")
    print(f"temperature: {temps.mean():.6g} K ({'; '.join(info['temperature_source'])})")
    print(f"volume: {vols.mean():.6g} A^3 ({'; '.join(info['volume_source'])})"
          + (f", {vols.min():.6g}..{vols.max():.6g} over replicas" if np.ptp(vols) > 0 else ""))

    max_cm1 = args.max_cm1 or None
    bands = find_bands(result.wavenumber_cm1, result.isotropic, max_cm1=max_cm1)
    rows = spectrum_file.write_spectrum(args.output, result, bands, max_cm1=max_cm1)
    print(f"bands (cm^-1): {', '.join(f'{p:.1f}' for p, _ in bands) if bands else 'none found'}")
    lo, hi = 0.0, max_cm1 or float(result.wavenumber_cm1[-1])
    total, err = result.integrated(lo, hi)
    print(f"integrated alpha*n, 0-{hi:g} cm^-1: {total:.6g} +- {err:.2g} cm^-2")
    print(f"wrote {args.output} ({rows} rows)")

    if args.plot:
        from ipi_dipole.analysis.plot import plot_spectrum

        experiment = None
        if args.experiment:
            from ipi_dipole.analysis.experiment import read_experiment

            experiment = read_experiment(args.experiment)
        lines = _numbers(args.reference_lines, "--reference-lines") if args.reference_lines else ()
        harmonic = None
        if args.harmonic:
            from ipi_dipole.analysis.harmonic_spectrum import load_overlay

            harmonic = load_overlay(args.harmonic, settings.window, settings.fwhm_cm1)
        plot_spectrum(args.plot, result, experiment=experiment, bands=bands, max_cm1=max_cm1,
                      reference_lines=lines, reference_label=args.reference_label, harmonic=harmonic,
                      title=pipeline.title(result))
        print(f"wrote {args.plot}")
    elif args.experiment:
        from ipi_dipole.analysis.experiment import read_experiment

        read_experiment(args.experiment)
        print("note: --experiment is only drawn with --plot")
    if args.harmonic and not args.plot:
        from ipi_dipole.analysis.harmonic_spectrum import load_overlay

        load_overlay(args.harmonic)
        print("note: --harmonic is only drawn with --plot")
    return 0
