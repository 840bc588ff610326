"""Irreducible representations of Gamma modes and their IR activity, from phonopy.

phonopy labels the modes with its character tables (``Phonopy.run_irreps``). A mode is
IR-active when its irrep occurs in the vector representation, whose character is the trace
of the rotation: ``n = (1/|G|) sum_R conj(chi(R)) tr(R) > 0``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np


@dataclass
class ModeSymmetry:
    """Irreps of the degenerate sets of one phonopy calculation at Gamma.

    Attributes
    ----------
    point_group : str
        Hermann-Mauguin symbol (phonopy's).
    wavenumber_cm1 : array (S,)
        Mean wavenumber of each degenerate set (phonopy's conversion).
    labels : list of (str or None)
    ir_active : array (S,) of bool
    """

    point_group: str
    wavenumber_cm1: np.ndarray
    labels: list
    ir_active: np.ndarray

    def assign(self, wavenumber_cm1) -> tuple[list, np.ndarray]:
        """Label and IR activity of each mode: those of the set nearest in wavenumber."""
        idx = [int(np.argmin(np.abs(self.wavenumber_cm1 - w))) for w in np.asarray(wavenumber_cm1)]
        return [self.labels[k] for k in idx], np.array([bool(self.ir_active[k]) for k in idx])


def gamma_symmetry(phonon, nac_q_direction=None, degeneracy_tolerance_thz: float = 1e-3) -> ModeSymmetry | None:
    """Irreps at Gamma of a :class:`phonopy.Phonopy` object with force constants.

    Parameters
    ----------
    phonon : phonopy.Phonopy
    nac_q_direction : array (3,), optional
        Direction (fractional, reciprocal basis of the primitive cell) for the LO modes.
    degeneracy_tolerance_thz : float
        Frequency difference (THz) within which modes form one set.

    Returns
    -------
    ModeSymmetry or None
        None when phonopy has no character table for the point group.
    """
    from phonopy.physical_units import get_physical_units

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            irreps = phonon.run_irreps([0, 0, 0], nac_q_direction=nac_q_direction,
                                       degeneracy_tolerance=degeneracy_tolerance_thz)
    except RuntimeError:  # "Character table not found", non-primitive cell
        return None
    labels = list(getattr(irreps, "_ir_labels", None) or [None] * len(irreps.band_indices))
    rotations = np.asarray(irreps.conventional_rotations)
    trace = np.trace(rotations, axis1=1, axis2=2)
    chars = np.asarray(irreps.characters)
    n_vector = (np.conj(chars) @ trace).real / len(rotations)
    thz_to_cm = get_physical_units().THzToCm
    freqs = np.asarray(irreps.frequencies)
    centres = np.array([freqs[list(s)].mean() * thz_to_cm for s in irreps.band_indices])
    return ModeSymmetry(point_group=str(phonon.primitive_symmetry.pointgroup_symbol),
                        wavenumber_cm1=centres, labels=labels, ir_active=n_vector > 0.5)
