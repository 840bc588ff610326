"""i-PI's file formats, units and layouts, and the replicas' manifest, in one place.

The driver (what it sends i-PI), the replicas (what they read from an equilibration run and
write for i-PI) and the analysis (what they read from the replicas' outputs) all go through
this package, and it imports none of them.

- :mod:`.units` - i-PI <-> ipi-dipole unit factors (:mod:`ipi.utils.units`'), the cell,
  virial, dipole and Born-charge (``BEC``) layouts;
- :mod:`.trajectories` - extras (dipole, BEC), xyz and extended-XYZ trajectories; the
  full-precision one-frame xyz writer;
- :mod:`.properties` - properties files (``PREFIX.out``);
- :mod:`.inputs` - input and checkpoint XMLs;
- :mod:`.detect` - what an i-PI file is, from its content;
- :mod:`.manifest` - ``manifest.json`` of a replicas run (its one reader and writer).
"""

from .detect import sniff
from .inputs import IpiInput, ipi_input_from_root, read_ipi_input
from .manifest import (MANIFEST, MANIFEST_FORMAT, Manifest, ReplicaEntry, manifest_path, read_manifest,
                       write_manifest)
from .properties import Properties, property_column, read_properties
from .trajectories import (Series, keep_last_of_each_step, read_extras, read_extxyz_trajectory,
                           read_xyz_trajectory, write_ipi_xyz)
from .units import (angstrom_per_bohr, bec_from_ipi, bec_to_ipi, convert, dipole_from_ipi, dipole_to_ipi,
                    drop_made_up_digits, fs_per_atomic_time, ipi_masses_dalton, velocity_to_angstrom_per_fs)

__all__ = [
    "IpiInput", "ipi_input_from_root", "read_ipi_input",
    "MANIFEST", "MANIFEST_FORMAT", "Manifest", "ReplicaEntry", "manifest_path", "read_manifest", "write_manifest",
    "Properties", "property_column", "read_properties",
    "sniff",
    "Series", "keep_last_of_each_step", "read_extras", "read_extxyz_trajectory", "read_xyz_trajectory",
    "write_ipi_xyz",
    "angstrom_per_bohr", "bec_from_ipi", "bec_to_ipi", "convert", "dipole_from_ipi", "dipole_to_ipi",
    "drop_made_up_digits", "fs_per_atomic_time", "ipi_masses_dalton", "velocity_to_angstrom_per_fs",
]
