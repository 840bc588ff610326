"""Hyper-parameters of the descriptor, validated once, in one frozen object.

A model holds a settings object (as librascal's kernels hold a representation) and builds
its descriptor from it (:func:`ipi_dipole.descriptors.make_descriptor`) once the training
species are known. Each descriptor kind has its own settings class, registered in ``KINDS``
under its ``kind`` name: model files store ``{"kind": ..., **fields}`` and
:func:`settings_from_dict` reads them back, so a second kind can sit beside the present one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import ClassVar

from ..errors import InputError

__all__ = ["DescriptorSettings", "KINDS", "settings_from_dict"]


@dataclass(frozen=True)
class DescriptorSettings:
    """Settings of the lambda = 1 Cartesian-moment descriptor (see :mod:`ipi_dipole.descriptors`).

    Parameters
    ----------
    cutoff : float
        Cutoff radius in Angstrom.
    n_radial : int
        Bessel radial functions per neighbour species.
    n_radial4 : int
        Radial functions per species (the first ones) in the 4-body feature blocks; 0 keeps
        the descriptor at 2- and 3-body features.
    rank3_weight : float
        Relative weight (prior scale, dimensionless) of the 3-body block coupling rank-2 and
        rank-3 moments; 0 leaves it out (and the rank-3 moments are not computed).

    Raises
    ------
    InputError
        On a value out of range (each message names the setting).
    """

    kind: ClassVar[str] = "moments"

    cutoff: float = 5.5
    n_radial: int = 8
    n_radial4: int = 4
    rank3_weight: float = 0.0

    def __post_init__(self):
        cutoff = _number("cutoff", self.cutoff)
        n_radial = _integer("n_radial", self.n_radial)
        n_radial4 = _integer("n_radial4", self.n_radial4)
        rank3_weight = _number("rank3_weight", self.rank3_weight)
        if cutoff <= 0:
            raise InputError(f"cutoff must be positive, got {self.cutoff}")
        if n_radial < 1:
            raise InputError(f"n_radial must be at least 1, got {self.n_radial}")
        if not 0 <= n_radial4 <= n_radial:
            raise InputError(f"n_radial4 must be between 0 and n_radial ({n_radial}), got {self.n_radial4}")
        if rank3_weight < 0:
            raise InputError(f"rank3_weight must not be negative, got {self.rank3_weight}")
        # frozen: normalised types go in through object.__setattr__
        for name, value in (("cutoff", cutoff), ("n_radial", n_radial), ("n_radial4", n_radial4),
                            ("rank3_weight", rank3_weight)):
            object.__setattr__(self, name, value)

    @property
    def rank3(self) -> bool:
        """Whether the rank-2 x rank-3 block (and the rank-3 moments) are computed."""
        return self.rank3_weight > 0

    def to_dict(self) -> dict:
        """JSON-ready form, ``kind`` included (read back by :func:`settings_from_dict`)."""
        return {"kind": self.kind, **asdict(self)}


KINDS = {DescriptorSettings.kind: DescriptorSettings}


def settings_from_dict(values: dict):
    """Settings object from :meth:`DescriptorSettings.to_dict` output (``kind`` optional).

    Raises
    ------
    InputError
        On an unknown kind or an unknown setting name.
    """
    values = dict(values)
    kind = values.pop("kind", DescriptorSettings.kind)
    if kind not in KINDS:
        raise InputError(f"unknown descriptor kind {kind!r} (known: {', '.join(KINDS)})")
    cls = KINDS[kind]
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(f"unknown {kind} descriptor setting(s) {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(known))})")
    return cls(**values)


def _number(name, value) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise InputError(f"{name} must be finite, got {value!r}")
    return out


def _integer(name, value) -> int:
    out = _number(name, value)
    if out != int(out) or isinstance(value, bool):
        raise InputError(f"{name} must be an integer, got {value!r}")
    return int(out)
