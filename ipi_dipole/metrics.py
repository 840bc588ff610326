"""Error metrics of a polarization model: RMSE and RMSPE of dipoles and Born charges.

The RMSPE is the RMSE over all components divided by one standard deviation of all
reference components, pooled (a fraction, not per cent): it is what the paper quotes and
what ``ipi-dipole evaluate`` and ``ipi-dipole train`` print. Dipoles of periodic cells are
left out, because they are defined only up to a polarization quantum.
"""

from __future__ import annotations

import numpy as np

#: keys of the dict returned by :func:`evaluate`
KEYS = ("n_structures", "dipole_rmse", "dipole_rmspe", "bec_rmse", "bec_rmspe")


def _pooled(arrays) -> np.ndarray:
    """One flat float array from an array or a list of arrays of any shapes."""
    if isinstance(arrays, np.ndarray):
        return arrays.astype(float).ravel()
    chunks = [np.asarray(a, dtype=float).ravel() for a in arrays]
    return np.concatenate(chunks) if chunks else np.zeros(0)


def rmse(predicted, reference) -> float | None:
    """Root-mean-square error over all components.

    Parameters
    ----------
    predicted, reference : array_like or list of array_like
        Predictions and references of the same shapes, e.g. dipoles in e*Angstrom
        (``(3,)`` each) or Born charges in e (``(N, 3, 3)`` each); a list is pooled.

    Returns
    -------
    float or None
        RMSE in the unit of the inputs; None when there are no components.
    """
    p, r = _pooled(predicted), _pooled(reference)
    if p.shape != r.shape:
        raise ValueError(f"predicted and reference differ in size: {p.size} and {r.size} components")
    if not p.size:
        return None
    return float(np.sqrt(np.mean((p - r) ** 2)))


def rmspe(predicted, reference) -> float | None:
    """RMSE divided by the standard deviation of all reference components (a fraction).

    Parameters
    ----------
    predicted, reference : array_like or list of array_like
        As for :func:`rmse`, in any one unit (the ratio has none).

    Returns
    -------
    float or None
        ``rmse / std(reference)``; None with no components or constant references.
    """
    error = rmse(predicted, reference)
    if error is None:
        return None
    std = float(np.std(_pooled(reference)))
    return error / std if std > 0 else None


def predictions(model, structures, where: str = "data set") -> dict:
    """Predicted and reference dipoles and Born charges of the structures that have them.

    Parameters
    ----------
    model : object with ``predict(atoms, where=...) -> (dipole, born_charges)``
        e.g. :class:`ipi_dipole.model.PolarizationModel` (e*Angstrom, e).
    structures : list of ase.Atoms
        With reference Born charges (``ipi_dipole.data``) and/or dipoles.
    where : str
        Names the data set in error messages (a structure is named ``where, structure k``).

    Returns
    -------
    dict
        ``dipole`` and ``bec``: ``(predicted list, reference list)``; dipoles only of
        non-periodic structures.
    """
    from . import data

    out = {"dipole": ([], []), "bec": ([], [])}
    for k, atoms in enumerate(structures):
        m, z = model.predict(atoms, where=f"{where}, structure {k}")
        z_ref = data.get_born_charges(atoms)
        if z_ref is not None:
            out["bec"][0].append(z)
            out["bec"][1].append(z_ref)
        results = data.get_results(atoms)
        if "dipole" in results and not atoms.pbc.any():
            out["dipole"][0].append(m)
            out["dipole"][1].append(results["dipole"])
    return out


def evaluate(model, structures, where: str = "data set") -> dict:
    """RMSE and RMSPE of ``model``'s dipoles (e*Angstrom) and Born charges (e) on ``structures``.

    Parameters
    ----------
    model, structures, where
        As for :func:`predictions`.

    Returns
    -------
    dict
        The keys of :data:`KEYS`: ``n_structures``, ``dipole_rmse`` (e*Angstrom),
        ``dipole_rmspe``, ``bec_rmse`` (e), ``bec_rmspe``; None where the data set has no
        such reference.
    """
    pairs = predictions(model, structures, where)
    result = {"n_structures": len(structures)}
    for name, (predicted, reference) in pairs.items():
        result[f"{name}_rmse"] = rmse(predicted, reference)
        result[f"{name}_rmspe"] = rmspe(predicted, reference)
    return {key: result[key] for key in KEYS}
