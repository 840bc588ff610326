"""Fixed-cell minimisation with ASE's optimisers before the Hessian is taken."""

from __future__ import annotations

import numpy as np

from ..errors import InputError

OPTIMISERS = ("bfgs", "fire", "lbfgs")


def minimise(atoms, fmax: float = 1e-4, steps: int = 1000, optimiser: str = "bfgs",
             logfile=None, trajectory=None) -> int:
    """Relax the positions of ``atoms`` (with its calculator) in place; the cell stays.

    Parameters
    ----------
    atoms : ase.Atoms
    fmax : float
        Convergence threshold on the largest force, eV/Angstrom. Harmonic frequencies want
        a tight minimum: residual forces shift the soft modes.
    steps : int
        Most optimiser steps.
    optimiser : {"bfgs", "fire", "lbfgs"}
    logfile, trajectory : path, optional
        ASE's optimiser log and trajectory (the trajectory keeps every step on disk).

    Returns
    -------
    int
        Steps taken.

    Raises
    ------
    InputError
        When the optimiser did not reach ``fmax`` within ``steps``.
    """
    from ase.optimize import BFGS, FIRE, LBFGS

    cls = {"bfgs": BFGS, "fire": FIRE, "lbfgs": LBFGS}.get(optimiser.lower())
    if cls is None:
        raise InputError(f"--optimiser {optimiser}: choose one of {', '.join(OPTIMISERS)}")
    opt = cls(atoms, logfile=str(logfile) if logfile else None,
              trajectory=str(trajectory) if trajectory else None)
    converged = opt.run(fmax=fmax, steps=steps)
    if not converged:
        fmax_now = float(np.sqrt((atoms.get_forces() ** 2).sum(axis=1).max()))
        raise InputError(f"the minimisation did not converge in {steps} steps (max force "
                         f"{fmax_now:.3g} eV/A > {fmax:g}); raise --steps or loosen --fmax")
    return int(opt.get_number_of_steps())
