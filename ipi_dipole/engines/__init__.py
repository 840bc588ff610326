"""Reference engines: energies, forces, dipoles and Born charges by finite electric fields.

Usage::

    from ipi_dipole.engines import get_engine
    engine = get_engine("tblite", method="GFN2-xTB")
    labelled = engine.label(atoms)          # data-set structure with Z*, M, E, F
    atoms.calc = engine.calculator()        # ASE face: energy, forces, dipole (+ born_charges)

Files: ``label_file`` in :mod:`.labelling` (resumable, used by ``ipi-dipole label``).

Engines are imported on first use, so that importing this package stays cheap.
"""

from __future__ import annotations

from ..errors import InputError

#: engine name -> (module, class)
ENGINES = {
    "tblite": ("ipi_dipole.engines.tblite_engine", "TBLiteEngine"),
    "pyscf": ("ipi_dipole.engines.pyscf_engine", "PySCFEngine"),
    "qe": ("ipi_dipole.engines.qe_engine", "QEEngine"),
}


def get_engine(name: str, **options):
    """An engine by name (``"tblite"`` or ``"pyscf"``) built with ``options``.

    Options set to None are dropped, so command-line defaults fall through to the
    engine's own. Unknown names or options raise InputError.
    """
    import importlib
    import inspect

    key = str(name).strip().lower()
    if key not in ENGINES:
        raise InputError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    module_name, class_name = ENGINES[key]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"the {key} engine needs a package that is not installed ({exc}); "
                         f"install it with: pip install 'ipi-dipole[{key}]'") from exc
    cls = getattr(module, class_name)
    options = {k: v for k, v in options.items() if v is not None}
    accepted = set(inspect.signature(cls).parameters)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise InputError(f"the {key} engine does not take option(s) {', '.join(unknown)} "
                         f"(it takes {', '.join(sorted(accepted))})")
    return cls(**options)


__all__ = ["ENGINES", "get_engine"]
