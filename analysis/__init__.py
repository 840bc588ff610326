"""Infrared spectra from i-PI output: readers, correlation functions, Green-Kubo.

Modules, in the order the data flows through them:

- :mod:`ipi_dipole.ipi_io` (not in this package) - readers of i-PI's extras (dipole, BEC),
  xyz/extxyz trajectories, properties files and input/checkpoint XMLs, converting to
  Angstrom, fs, e, K;
- :mod:`.runs` - finding the replicas of a run directory by content; plain arrays;
- :mod:`.jumps` - removing lattice-quantum jumps from a wrapped-cell dipole;
- :mod:`.mdot` - ``Mdot`` from ``Z* . v`` or a finite difference; matching BEC and velocity
  strides; the factors that put every estimator on the velocity-Verlet convention;
- :mod:`.correlation` - FFT correlations without wrap-around, unbiased (optionally tapered);
- :mod:`.green_kubo` - windows, transforms and the ``alpha n`` prefactor (SI);
- :mod:`.quantum_corrections` - harmonic / Schofield / standard correction factors;
- :mod:`.replicas` - replica mean and standard error on a common grid;
- :mod:`.pipeline` - everything above for a list of replicas (what ``ipi-dipole spectrum`` runs);
- :mod:`.peaks`, :mod:`.spectrum_file`, :mod:`.experiment`, :mod:`.plot` - band positions, the
  CSV, measured ``alpha n`` from n,k tables, and the figure (matplotlib, imported on use).

Example::

    from ipi_dipole.analysis import pipeline, runs
    replicas = [runs.load_replica(r) for r in runs.find_runs(["RUN_DIR"])]
    result = pipeline.compute(replicas, pipeline.Options())
    result.wavenumber_cm1, result.isotropic, result.isotropic_stderr
"""
