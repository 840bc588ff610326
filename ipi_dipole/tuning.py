"""Hyper-parameter tuning of a polarization model by k-fold cross-validation.

Only the training set is used: it is cut into ``n_folds`` contiguous blocks of structures
(MD frames next to each other are correlated, so a random split would leak), each block is
predicted by a model fitted on the others, and the pooled Born-charge RMSE over all blocks
(the dipole RMSE for dipole-only training) is the score of a setting.

The search is a coordinate descent over a small grid: starting from the model's own
hyper-parameters, each axis of the grid (cutoff, radial functions, ridge, ...) is tried in
turn with the best values found so far on the others, and its best value is kept. That costs
``1 + sum(len(axis) - 1)`` settings instead of the product of the axis lengths. An axis that
does not apply to the current setting (``l_max`` of the moments descriptor, say) is skipped
for it. The winner is refitted on the whole training set by :func:`tune`, and the table of
everything tried is stored in the model's ``training_info_["tuning"]``, so it travels with
the model file.

Axis names are those of :meth:`ipi_dipole.model.PolarizationModel.set_params`, descriptor
settings with the ``descriptor__`` prefix; the value ``descriptor`` switches the descriptor
kind (a settings dict with its ``kind``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import metrics
from .errors import InputError

__all__ = ["BULK_GRID", "MOLECULE_GRID", "TuningResult", "cross_validate", "default_grid", "folds", "tune"]

#: grid for periodic cells (Born charges of crystals and liquids)
BULK_GRID = {
    "regularization": [1e-4, 1e-3, 1e-2],
    "descriptor__cutoff": [4.5, 5.5, 6.5],
    "descriptor__n_radial": [6, 8, 10],
    "descriptor__l_max": [3, 4, 5],
}

#: grid for molecules and clusters
MOLECULE_GRID = {
    "regularization": [1e-4, 1e-3, 1e-2],
    "descriptor__cutoff": [4.5, 5.5, 6.5],
    "descriptor__n_radial": [6, 8, 10],
    "descriptor__rank3_weight": [0.0, 0.1],
}


def default_grid(structures) -> dict:
    """:data:`BULK_GRID` when most training structures are periodic, else :data:`MOLECULE_GRID`."""
    periodic = sum(bool(a.pbc.any()) for a in structures)
    return dict(BULK_GRID if 2 * periodic > len(structures) else MOLECULE_GRID)


def folds(n_structures: int, n_folds: int) -> list[np.ndarray]:
    """Contiguous blocks of structure indices, as equal as possible.

    Raises
    ------
    InputError
        When there are fewer structures than folds, or fewer than 2 folds.
    """
    if n_folds < 2:
        raise InputError(f"cross-validation needs at least 2 folds, got {n_folds}")
    if n_structures < n_folds:
        raise InputError(f"{n_structures} training structures cannot make {n_folds} folds")
    return [np.asarray(b) for b in np.array_split(np.arange(n_structures), n_folds)]


def _score_key(model) -> str:
    return "dipole" if model.targets == "dipole" else "bec"


def cross_validate(model, structures, n_folds: int = 3) -> dict:
    """Pooled k-fold errors of ``model``'s hyper-parameters on ``structures``.

    Parameters
    ----------
    model : PolarizationModel
        Its hyper-parameters are used (it is not fitted; a fresh copy is fitted per fold).
    structures : list of ase.Atoms
        Training structures (Born charges in e, dipoles in e*Angstrom).
    n_folds : int
        Number of contiguous blocks.

    Returns
    -------
    dict
        ``bec_rmse`` (e), ``bec_rmspe``, ``dipole_rmse`` (e*Angstrom), ``dipole_rmspe`` (None
        where the data have no such reference), ``fit_seconds`` (mean per fold).
    """
    structures = list(structures)
    blocks = folds(len(structures), n_folds)
    predicted = {"bec": ([], []), "dipole": ([], [])}
    seconds = []
    for k, held in enumerate(blocks):
        held_set = set(held.tolist())
        train = [structures[i] for i in range(len(structures)) if i not in held_set]
        test = [structures[i] for i in held]
        fold_model = type(model)(**model.get_params())
        t0 = time.perf_counter()
        fold_model.fit(train)
        seconds.append(time.perf_counter() - t0)
        p = metrics.predictions(fold_model, test, where=f"cross-validation fold {k + 1}")
        for key in predicted:
            predicted[key][0].extend(p[key][0])
            predicted[key][1].extend(p[key][1])
    out = {}
    for key, (pred, ref) in predicted.items():
        out[f"{key}_rmse"] = metrics.rmse(pred, ref)
        out[f"{key}_rmspe"] = metrics.rmspe(pred, ref)
    out["fit_seconds"] = float(np.mean(seconds))
    return out


@dataclass
class TuningResult:
    """What :func:`tune` tried and chose.

    Attributes
    ----------
    rows : list of dict
        One per setting tried: ``{"changed": "axis=value" or "start", "params": {...},
        **cross_validate output}``.
    best_params : dict
        The winner's changed parameters (set_params names).
    score : str
        ``"bec"`` or ``"dipole"``: whose RMSE was minimised.
    """

    rows: list = field(default_factory=list)
    best_params: dict = field(default_factory=dict)
    score: str = "bec"

    def table(self) -> str:
        """Markdown table of every setting tried (RMSE in e for Z*, e*Angstrom for dipoles)."""
        key = self.score
        unit = "e" if key == "bec" else "e*A"
        lines = [f"| setting | CV {'Z*' if key == 'bec' else 'dipole'} RMSE ({unit}) | RMSPE | fit (s) |",
                 "|---|---|---|---|"]
        best = min(r[f"{key}_rmse"] for r in self.rows)
        for r in self.rows:
            rmspe = r[f"{key}_rmspe"]
            mark = " **best**" if r[f"{key}_rmse"] == best else ""
            lines.append(f"| {r['changed']}{mark} | {r[f'{key}_rmse']:.5f} | "
                         f"{'n/a' if rmspe is None else f'{100 * rmspe:.2f} %'} | {r['fit_seconds']:.1f} |")
        return "\n".join(lines)


def _check_names(model, grid):
    """Every axis is a hyper-parameter of the model or a setting of some descriptor kind."""
    from dataclasses import fields

    from .descriptors import KINDS

    known = set(model.get_params()) | {f"descriptor__{f.name}" for cls in KINDS.values() for f in fields(cls)}
    unknown = sorted(set(grid) - known)
    if unknown:
        raise InputError(f"unknown tuning axis/axes {', '.join(unknown)} (known: {', '.join(sorted(known))})")


def _applies(model, name: str, value) -> bool:
    """Whether ``set_params(name=value)`` is valid for ``model``'s current settings."""
    trial = type(model)(**model.get_params())
    try:
        trial.set_params(**{name: value})
    except InputError:
        return False
    return True


def _describe(value) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return f"{value:g}" if isinstance(value, float) else str(value)


def search(model, structures, grid: dict | None = None, n_folds: int = 3, log=None) -> TuningResult:
    """Coordinate-descent search of ``grid`` by :func:`cross_validate` (see the module docstring).

    ``model`` is left unchanged. ``log``: a function taking one line of progress (e.g. print).
    """
    structures = list(structures)
    grid = default_grid(structures) if grid is None else dict(grid)
    if not grid:
        raise InputError("empty tuning grid")
    _check_names(model, grid)
    score = _score_key(model)
    result = TuningResult(score=score)
    current = type(model)(**model.get_params())
    best_changes: dict = {}
    cache = {}

    def evaluate(changes: dict, label: str):
        trial = type(model)(**model.get_params())
        trial.set_params(**changes)
        signature = repr(sorted((k, repr(v)) for k, v in trial.get_params().items()))
        if signature in cache:
            return cache[signature]
        errors = cross_validate(trial, structures, n_folds)
        row = {"changed": label, "params": {k: _describe(v) for k, v in changes.items()}, **errors}
        result.rows.append(row)
        cache[signature] = errors
        if log is not None:
            rmspe = errors[f"{score}_rmspe"]
            log(f"  {label}: CV RMSE {errors[f'{score}_rmse']:.5f}"
                + ("" if rmspe is None else f" ({100 * rmspe:.2f} %)") + f", fit {errors['fit_seconds']:.1f} s")
        return errors

    best = evaluate({}, "start")[f"{score}_rmse"]
    if best is None:
        raise InputError(f"no {'Born charges' if score == 'bec' else 'dipoles'} to cross-validate on")
    for name, values in grid.items():
        for value in values:
            if not _applies(current, name, value):
                continue
            changes = {**best_changes, name: value}
            err = evaluate(changes, ", ".join(f"{k.removeprefix('descriptor__')}={_describe(v)}"
                                              for k, v in changes.items()))[f"{score}_rmse"]
            if err is not None and err < best:
                best, best_changes = err, changes
                current = type(model)(**model.get_params()).set_params(**best_changes)
    result.best_params = best_changes
    return result


def tune(model, structures, grid: dict | None = None, n_folds: int = 3, progress: bool = False, log=None):
    """Search ``grid`` on ``structures`` (see :func:`search`), refit ``model`` with the winner
    on all of them and store the table in ``model.training_info_["tuning"]``; returns
    ``(model, TuningResult)``."""
    result = search(model, structures, grid, n_folds, log)
    model.set_params(**result.best_params)
    model.fit(structures, progress=progress)
    model.training_info_["tuning"] = {"n_folds": n_folds, "score": result.score,
                                      "best": {k: _describe(v) for k, v in result.best_params.items()},
                                      "rows": result.rows}
    return model, result
