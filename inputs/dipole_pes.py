"""The ipi-dipole driver PES, for i-PI's <ffdirect> (<pes_path>) and i-pi-py_driver -P.

i-PI loads this file by path and instantiates the class named by __DRIVER_CLASS__;
the code lives in the installed package (ipi_dipole.driver.pes).
"""

from ipi_dipole.driver.pes import DipolePES  # noqa: F401

__DRIVER_NAME__ = "ipi_dipole"
__DRIVER_CLASS__ = "DipolePES"
