"""NVE replicas for Green-Kubo spectra: prepared from one equilibration run, run under MPI.

- :mod:`.prepare` - ``replicas prepare``: N i-PI inputs and the manifest
  (:class:`ipi_dipole.ipi_io.Manifest`);
- :mod:`.source` - reading the equilibration run's frames, velocities, time step, temperature;
- :mod:`.select` - correlation time, spread-out frame selection, thermal velocities;
- :mod:`.run` - ``replicas run``: the replicas spread over MPI ranks, stopped and resumed;
- :mod:`.worker` - one replica as an i-PI child process (and its driver);
- :mod:`.outputs` - i-PI's output files of a replica and trimming them back to a checkpoint.

i-PI's files and units are read and written through :mod:`ipi_dipole.ipi_io`.
"""

from .prepare import PrepareOptions, prepare
from .run import run_replicas
from .worker import child_environment, ipi_command

__all__ = ["PrepareOptions", "prepare", "run_replicas", "child_environment", "ipi_command"]
