"""ipi-dipole: infrared spectra from Born effective charges, served to i-PI.

Heavy modules (numba descriptors, engines) load on first use, so that
``ipi-dipole --help`` and ``import ipi_dipole`` stay fast.
"""

__version__ = "0.1.0"

_LAZY = {
    "PolarizationModel": "ipi_dipole.model",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ipi_dipole' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
