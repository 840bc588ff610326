"""Reader of i-PI input and checkpoint XMLs: what the analysis and the replicas need from them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from ipi_dipole.errors import InputError

from .units import convert, drop_made_up_digits


@dataclass
class IpiInput:
    """What the analysis and the replicas need from an i-PI input (or checkpoint) XML.

    Attributes
    ----------
    prefix : str
        ``<output prefix>`` (i-PI's default ``i-pi``).
    timestep_fs : float or None
        ``<dynamics><timestep>`` in fs.
    temperature_k : float or None
        The ensemble temperature, or else the one velocities were drawn at (K).
    temperature_source : str or None
        Which of the two, for messages.
    ensemble_temperature_k : float or None
        ``<ensemble><temperature>`` alone (K): the thermostat's, None for NVE.
    is_checkpoint : bool
        A checkpoint (beads or a ``<step>``) rather than an input.
    step : int
        ``<step>`` of a checkpoint (i-PI leaves it out at step 0).
    total_steps : int or None
        ``<total_steps>``.
    """

    path: Path
    prefix: str
    timestep_fs: float | None
    temperature_k: float | None
    temperature_source: str | None
    is_checkpoint: bool
    nbeads: int | None = None
    fixcom: bool = True
    ensemble_temperature_k: float | None = None
    step: int = 0
    total_steps: int | None = None


def read_ipi_input(path) -> IpiInput:
    """Read an i-PI input or checkpoint XML (see :class:`IpiInput`).

    Values without a ``units`` attribute are in atomic units (i-PI's rule; checkpoints are
    written that way); a value converted from another unit keeps 8 significant digits
    (:func:`drop_made_up_digits`). The temperature is the ensemble's
    (``<ensemble><temperature>``), or else the one velocities were drawn at
    (``<velocities mode='thermal'>``).
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise InputError(f"{path}: cannot parse the i-PI XML: {exc}") from None
    return ipi_input_from_root(root, path)


def ipi_input_from_root(root: ET.Element, path) -> IpiInput:
    """:func:`read_ipi_input` of an XML already parsed (``root`` is its root element)."""
    path = Path(path)
    if root.tag != "simulation":
        raise InputError(f"{path}: not an i-PI input (root element <{root.tag}>)")

    def value(elem, family, target):
        try:
            number = float(elem.text.strip())
        except (AttributeError, ValueError):
            raise InputError(f"{path}: <{elem.tag}> is not a number: {elem.text!r}") from None
        unit = elem.get("units")
        converted = float(convert(number, family, unit, target))
        return converted if unit == target else drop_made_up_digits(converted)

    def integer(text, what, default=None):
        if not (text or "").strip():
            return default
        try:
            return int(text.strip())
        except ValueError:
            raise InputError(f"{path}: {what} is not an integer: {text!r}") from None

    def element_text(tag):
        el = root.find(tag)
        return None if el is None else el.text

    output = root.find("output")
    prefix = output.get("prefix", "i-pi").strip() if output is not None else "i-pi"
    ts = root.find(".//motion/dynamics/timestep")
    timestep = value(ts, "time", "femtosecond") if ts is not None else None
    temperature, source, ensemble = None, None, None
    t = root.find(".//ensemble/temperature")
    if t is not None and value(t, "temperature", "kelvin") > 0:
        ensemble = value(t, "temperature", "kelvin")
        temperature, source = ensemble, f"{path.name} <ensemble><temperature>"
    else:
        t = root.find(".//initialize/velocities[@mode='thermal']")
        if t is not None:
            temperature, source = value(t, "temperature", "kelvin"), f"{path.name} <velocities mode='thermal'>"
    init = root.find(".//initialize")
    nbeads = integer(init.get("nbeads"), "<initialize nbeads>") if init is not None else None
    beads = root.find(".//beads")
    if nbeads is None and beads is not None:  # a checkpoint keeps the beads, not <initialize>
        nbeads = integer(beads.get("nbeads"), "<beads nbeads>")
    is_checkpoint = root.find(".//beads") is not None or root.find("step") is not None
    fixcom = (element_text(".//motion/fixcom") or "").strip().lower()
    fixcom = fixcom in ("", "true", "1", "yes")  # i-PI fixes the centre of mass unless told not to
    return IpiInput(path=path, prefix=prefix, timestep_fs=timestep, temperature_k=temperature,
                    temperature_source=source, is_checkpoint=is_checkpoint, nbeads=nbeads, fixcom=fixcom,
                    ensemble_temperature_k=ensemble, step=integer(element_text("step"), "<step>", 0),
                    total_steps=integer(element_text("total_steps"), "<total_steps>"))
