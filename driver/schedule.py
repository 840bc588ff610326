"""At which MD steps the driver must compute the dipole and the Born charges.

i-PI asks for forces at every step but writes the extras only every ``stride`` steps of
its ``<trajectory ... extra_type='dipole'|'BEC'> extras </trajectory>`` outputs. The
model (and above all its gradient pass, which gives ``Z*``) costs more than the forces
of a cheap force field, so the driver evaluates it only where i-PI writes it.

The driver cannot see i-PI's step counter; it counts the force requests. With one bead,
one system and plain dynamics, i-PI 3.3 asks once for the starting configuration (step
``s0``: 0 for a fresh start, the checkpoint's ``<step>`` on a restart) and then once per
step, and it writes the extras of step ``k`` when ``k % stride == 0`` (its outputs test
``(step + 1) % stride`` after step ``step``, and a fresh start also writes step 0).
So request ``n`` is step ``s0 + n``. Anything that breaks this counting (several beads
or systems, multiple time stepping, one forcefield in several force components, geometry
optimisation, replica exchange) is refused for strides above 1; other forcefields beside
the driver's (LAMMPS's ``fix ipi`` for the forces) do not change its count. Should the count still slip, i-PI stops at the first frame it
cannot write ("Extra type 'BEC' is not among the quantities returned by the
forcefield"): it never writes a value computed at another step.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from ipi_dipole.errors import InputError

#: the extras the driver sends
EXTRAS = ("dipole", "BEC")


@dataclass
class ExtrasSchedule:
    """Which of the extras to compute at each MD step.

    Attributes
    ----------
    strides : dict
        ``{"dipole": [s1, ...], "BEC": [...]}``: an extra is needed at step ``k`` when one
        of its strides divides ``k``; an empty list means never.
    first_step : int
        The MD step of the first force request (the checkpoint's ``<step>`` on a restart).
    source : str
        Where the schedule comes from, for messages.
    """

    strides: dict = field(default_factory=lambda: {"dipole": [1], "BEC": [1]})
    first_step: int = 0
    source: str = "every step"

    @classmethod
    def every(cls, stride: int = 1, bec_stride: int | None = None, bec: bool = True) -> "ExtrasSchedule":
        """The dipole every ``stride`` steps and the Born charges every ``bec_stride``
        (default ``stride``; none when ``bec`` is false)."""
        stride = _positive(stride, "stride")
        bec_stride = stride if bec_stride is None else _positive(bec_stride, "bec_stride")
        source = f"stride={stride}" + (f", bec_stride={bec_stride}" if bec and bec_stride != stride else "")
        return cls({"dipole": [stride], "BEC": [bec_stride] if bec else []}, 0, source)

    @classmethod
    def from_ipi_input(cls, path) -> "ExtrasSchedule":
        """The strides at which the i-PI input (or checkpoint) ``path`` writes each extra,
        and the step it starts from."""
        from ipi_dipole.ipi_io.inputs import ipi_input_from_root

        path = Path(path)
        try:
            root = ET.parse(path).getroot()
        except FileNotFoundError:
            raise InputError(f"{path}: no such i-PI input") from None
        except (ET.ParseError, OSError) as exc:
            raise InputError(f"{path}: cannot parse the i-PI XML: {exc}") from None
        info = ipi_input_from_root(root, path)
        strides = {name: [] for name in EXTRAS}
        for traj in root.iter("trajectory"):
            what = (traj.text or "").split("{")[0].split("(")[0].strip()
            if what not in ("extras", "extras_component_raw"):
                continue  # extras_bias: the bias force field's, not ours
            stride = _positive(traj.get("stride", "1"), f"{path}: <trajectory filename='{traj.get('filename')}'> stride")
            kinds = [k.strip() for k in traj.get("extra_type", "raw").split(",")]
            for kind in kinds:
                if kind == "raw":  # the whole reply as text: everything, at this stride
                    for name in EXTRAS:
                        strides[name].append(stride)
                elif kind in strides:
                    strides[kind].append(stride)
        for name in EXTRAS:
            strides[name] = sorted(set(strides[name]))
        schedule = cls(strides, info.step, str(path))
        if schedule.depends_on_step():
            why = _why_counting_fails(root, info)
            if why:
                raise InputError(f"{path}: the extras are written at a stride, but {why}, so the driver "
                                 f"cannot tell which force request belongs to which step; give the driver "
                                 f"stride=1 (compute the extras at every request) and no i-PI input")
        return schedule

    # ------------------------------------------------------------------ queries
    def wants(self, call: int) -> tuple[bool, bool]:
        """``(dipole, born_charges)`` needed for force request number ``call`` (from 0)."""
        step = self.first_step + call
        bec = any(step % s == 0 for s in self.strides["BEC"])
        return bec or any(step % s == 0 for s in self.strides["dipole"]), bec

    def depends_on_step(self) -> bool:
        """True when what is needed changes from step to step (so requests must be counted)."""
        return any(s != 1 for s in self.strides["dipole"] + self.strides["BEC"])

    def check_covers(self, needed: "ExtrasSchedule") -> None:
        """Raise InputError unless this schedule computes every extra that ``needed`` asks for
        (e.g. the driver's ``stride`` against the i-PI input it serves)."""
        for name in EXTRAS:
            for s in needed.strides[name]:
                if not any(s % mine == 0 for mine in self.strides[name]):
                    have = (f"every {', '.join(map(str, self.strides[name]))} steps"
                            if self.strides[name] else "never")
                    option = "bec_stride" if name == "BEC" and self.strides["BEC"] else (
                        "bec (it is off)" if name == "BEC" else "stride")
                    raise InputError(f"{needed.source} writes the {name} every {s} steps but the driver "
                                     f"computes it {have} ({self.source}): make the driver's {option} "
                                     f"divide {s}, or give the i-PI input to the driver and let it choose")

    def describe(self) -> str:
        """One line for the driver's log."""
        def one(name):
            s = self.strides[name]
            if not s:
                return f"{name} never"
            return f"{name} every {' and every '.join(map(str, s))} steps" if s != [1] else f"{name} every step"

        start = f", from step {self.first_step}" if self.first_step else ""
        return f"{one('dipole')}, {one('BEC')} ({self.source}{start})"


def _positive(value, what: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise InputError(f"{what}={value!r}: expected a positive whole number of steps") from None
    if number < 1:
        raise InputError(f"{what}={value!r}: expected a positive whole number of steps")
    return number


def _why_counting_fails(root: ET.Element, info) -> str | None:
    """Why force requests would not be one per MD step, or None."""
    systems = root.findall("system") + root.findall("system_template")
    if len(systems) != 1 or root.find("system_template") is not None:
        return "the input has several systems"
    if (info.nbeads or 1) > 1:
        return f"it has {info.nbeads} beads"
    motion = root.find("system/motion")
    mode = motion.get("mode", "dynamics") if motion is not None else "dynamics"
    if mode != "dynamics":
        return f"its motion is '{mode}', not dynamics"
    dynamics = motion.find("dynamics") if motion is not None else None
    nmts = dynamics.find("nmts") if dynamics is not None else None
    if nmts is not None and any(level.strip() not in ("", "1") for level in
                                (nmts.text or "").strip(" []\n\t").split(",")):
        # checkpoints always carry <nmts>; only [1] is one request per step
        return f"it uses multiple time stepping (<nmts> {nmts.text.strip()})"
    names = [f.get("forcefield", "").strip() for f in root.findall("system/forces/force")]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        # each component asks its forcefield once per step; the same one twice asks twice
        return f"forcefield '{repeated[0]}' serves several force components"
    return None
