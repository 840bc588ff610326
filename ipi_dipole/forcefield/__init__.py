"""Machine-learned force fields trained and run by LAMMPS.

A force-field directory ``FF_DIR`` (written by ``ipi-dipole train-forcefield``) holds

- the potential files (POD: ``pod_param.pod``, ``pod_coefficients.pod``; SNAP:
  ``snap.snapcoeff``, ``snap.snapparam``) and ``guard.table``, repulsive walls below the
  shortest distance of each species pair in the training set (zero on the data, see
  :func:`.guard.guard_commands`);
- ``forcefield.lammps``: a LAMMPS input snippet with the interaction commands only
  (``units metal`` assumed: eV, Angstrom). Its first line, ``# species: O H``, gives the
  LAMMPS atom-type order (type 1 = first species, ...);
- ``report.json``: data set, split, settings, the held-out energy/force RMSE and the
  result of a short NVE check (:func:`md_check`);
- ``fitpod.log`` (POD) or ``fitsnap.log`` (SNAP): the LAMMPS log of the fit.

How a LAMMPS user loads it: create the box and the atoms (types in the ``# species:``
order, masses from :mod:`ase.data`), then ``include FF_DIR/forcefield.lammps``. The
snippet finds its files through the LAMMPS variable ``ffdir``:

1. a value defined before the include wins (an ``index`` variable that exists already is
   left alone), so a directory that has been moved or copied elsewhere is loaded with::

       variable ffdir string /new/place/FF_DIR      # or: lmp -var ffdir /new/place/FF_DIR
       include /new/place/FF_DIR/forcefield.lammps

2. otherwise the absolute path of ``FF_DIR`` at training time;
3. if the files are not there (the directory moved), the current directory: the
   ipi-dipole driver's ``lammps:`` back-end runs the snippet from its own directory, so a
   moved directory still works there without any variable.

:func:`lammps_commands` returns exactly these two commands for any directory, and
:class:`ForceFieldCalculator` uses them. LAMMPS cannot substitute a variable holding a
path with blanks, so a force-field directory path must not contain whitespace.

Modules (none imports one that imports it back):

- :mod:`.files`: the snippet, the report and the species line;
- :mod:`.training_set`: labels, checks and the train/test split of the data;
- :mod:`.settings`: what the settings of every kind share;
- :mod:`.pod`, :mod:`.snap`: the two fitters;
- :mod:`.guard`: the guard walls;
- :mod:`.calculator`: :class:`ForceFieldCalculator` and :func:`evaluate`;
- :mod:`.nve`: :func:`build_lammps` and the NVE check :func:`md_check`;
- :mod:`.train`: :func:`train`, which ties them together.

LAMMPS itself is loaded, started and given its box by :mod:`ipi_dipole.lammps_runtime`.
"""

from ..lammps_runtime import new_lammps
from .calculator import ForceFieldCalculator, evaluate
from .files import check_path_for_lammps, lammps_commands, read_report, read_species
from .nve import build_lammps, md_check
from .pod import PODSettings
from .snap import SNAPSettings
from .train import KINDS, train
from .training_set import check_training_set, labels, split

__all__ = ["KINDS", "ForceFieldCalculator", "PODSettings", "SNAPSettings", "build_lammps",
           "check_path_for_lammps", "check_training_set", "evaluate", "labels", "lammps_commands",
           "md_check", "new_lammps", "read_report", "read_species", "split", "train"]
