"""Pseudopotentials for the Quantum ESPRESSO engine: finding a UPF file per element.

By default the files Debian's ``quantum-espresso-data`` installs in
``/usr/share/espresso/pseudo`` (LDA, PBE and PBEsol files of a few dozen elements); any
directory of UPF files (SSSP, pslibrary, ...) can be given instead. A file belongs to an
element when its name starts with the symbol followed by a non-letter (``O.pz-rrkjus.UPF``,
``mg_pbe_v1.4.uspp.F.UPF``, ``pb_s.UPF``), case-insensitively.

The choice reads each candidate's header (UPF v1 and v2): its exchange-correlation
functional must be the one asked for (``lda``, ``pbe``, ``pbesol``, ...), so that one
structure never mixes functionals; fully relativistic (spin-orbit) files are skipped. Among
the files left, ultrasoft beats norm-conserving beats PAW (cheapest cutoffs that ph.x's
electric-field response handles), then the alphabetically first name, so the choice is
reproducible. A directory holding a single file for an element (SSSP-like libraries) uses
it whatever its functional tag, provided the functionals of all species agree.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

#: where Debian's quantum-espresso-data puts its UPF files
DEBIAN_PSEUDO_DIR = Path("/usr/share/espresso/pseudo")
INSTALL_HINT = ("apt-get install quantum-espresso quantum-espresso-data (Debian/Ubuntu), "
                "or conda install -c conda-forge qe")
_TYPE_RANK = {"US": 0, "USPP": 0, "NC": 1, "SL": 1, "PAW": 2}


@dataclass(frozen=True)
class Pseudopotential:
    """One UPF file and what its header says.

    Attributes
    ----------
    path : pathlib.Path
    functional : str
        Normalised family: ``lda``, ``pbe``, ``pbesol``, ``blyp``, ... or the raw header text.
    kind : str
        ``US``, ``NC`` or ``PAW``.
    z_valence : float
        Valence charge in e.
    spin_orbit : bool
        Fully relativistic file (needs a noncollinear calculation).
    """

    path: Path
    functional: str
    kind: str
    z_valence: float
    spin_orbit: bool

    @property
    def ultrasoft(self) -> bool:
        """Augmentation charges (US or PAW): the density needs about 8x the wavefunction cutoff."""
        return self.kind in ("US", "PAW")


def normalise_functional(text: str) -> str:
    """``" SLA  PZ   NOGX NOGC"`` -> ``lda``, ``"SLA PW PBE PBE"`` or ``"PBE"`` -> ``pbe``, ..."""
    words = set(text.upper().replace("-", " ").split())
    if words & {"PBESOL", "PSX", "PSC"}:
        return "pbesol"
    if "PBE" in words or {"PBX", "PBC"} <= words:
        return "pbe"
    if "BLYP" in words or {"B88", "LYP"} <= words:
        return "blyp"
    if "TPSS" in words:
        return "tpss"
    if words & {"PZ", "LDA"} and not words - {"SLA", "PZ", "LDA", "NOGX", "NOGC", "PW"}:
        return "lda"
    return " ".join(text.lower().split())


def read_upf_header(path: str | os.PathLike) -> Pseudopotential:
    """Functional, type, valence charge and spin-orbit flag from a UPF v1 or v2 header.

    Raises
    ------
    InputError
        When the file cannot be read or has no recognisable header.
    """
    path = Path(path)
    try:
        with open(path, "r", errors="replace") as fh:
            head = fh.read(200_000)
    except OSError as exc:
        raise InputError(f"{path}: cannot read the pseudopotential ({exc.strerror or exc})") from exc
    m = re.search(r"<PP_HEADER\b(.*?)/?>", head, re.DOTALL)
    if m and "=" in m.group(1):  # UPF v2: attributes
        attrs = dict(re.findall(r'(\w+)\s*=\s*"([^"]*)"', m.group(1)))
        try:
            z = float(attrs["z_valence"].replace("d", "e").replace("D", "E"))
        except (KeyError, ValueError):
            raise InputError(f"{path}: UPF header without a readable z_valence") from None
        kind = attrs.get("pseudo_type", "NC").strip().upper()
        if attrs.get("is_paw", "").strip().lower() in ("true", "t", ".true."):
            kind = "PAW"
        elif attrs.get("is_ultrasoft", "").strip().lower() in ("true", "t", ".true."):
            kind = "US"
        so = (attrs.get("has_so", "").strip().lower() in ("true", "t", ".true.")
              or attrs.get("relativistic", "").strip().lower() == "full")
        functional = attrs.get("functional", "")
    else:  # UPF v1: one value per line, a description after it
        body = head[head.find("<PP_HEADER>"):] if "<PP_HEADER>" in head else ""
        zm = re.search(r"^\s*([-+0-9.eEdD]+)\s+Z valence", body, re.MULTILINE)
        fm = re.search(r"^\s*(.*?)\s+Exchange-Correlation functional", body, re.MULTILINE)
        tm = re.search(r"^\s*(US|NC|PAW)\b", body, re.MULTILINE)
        if not zm:
            raise InputError(f"{path}: not a UPF pseudopotential (no PP_HEADER with a valence charge)")
        z = float(zm.group(1).replace("d", "e").replace("D", "E"))
        kind = tm.group(1) if tm else "NC"
        so = False
        functional = fm.group(1) if fm else ""
    kind = {"USPP": "US", "SL": "NC"}.get(kind, kind)
    return Pseudopotential(path, normalise_functional(functional), kind, z, so)


def _belongs_to(name: str, symbol: str) -> bool:
    low, sym = name.lower(), symbol.lower()
    return low.startswith(sym) and len(low) > len(sym) and not low[len(sym)].isalpha()


def candidates(directory: Path, symbol: str) -> list[Path]:
    """UPF files of ``symbol`` in ``directory`` (by name), sorted."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir()
                  if p.is_file() and p.suffix.lower() == ".upf" and _belongs_to(p.name, symbol))


def choose(symbols, directory: str | os.PathLike | None = None, functional: str = "lda",
           explicit: dict[str, str] | None = None) -> dict[str, Pseudopotential]:
    """A pseudopotential per element.

    Parameters
    ----------
    symbols : iterable of str
        Chemical symbols of the structure(s).
    directory : path, optional
        Directory of UPF files (default :data:`DEBIAN_PSEUDO_DIR`).
    functional : str
        Exchange-correlation family the files must have (``lda``, ``pbe``, ``pbesol``, ...).
    explicit : dict, optional
        ``{symbol: file}`` chosen by the user (a name in ``directory`` or a path).

    Raises
    ------
    InputError
        One line naming the element and the directory when no usable file exists, or when
        the chosen files mix functionals.
    """
    directory = Path(directory) if directory is not None else DEBIAN_PSEUDO_DIR
    functional = normalise_functional(functional)
    explicit = dict(explicit or {})
    if not directory.is_dir() and len(set(symbols) - set(explicit)):
        hint = f"; install them with {INSTALL_HINT}" if directory == DEBIAN_PSEUDO_DIR else ""
        raise InputError(f"pseudopotential directory {directory} does not exist{hint} "
                         "(or give --pseudo-dir)")
    chosen: dict[str, Pseudopotential] = {}
    for symbol in sorted(set(symbols)):
        if symbol in explicit:
            path = Path(explicit[symbol])
            if not path.is_absolute() and not path.is_file():
                path = directory / path
            if not path.is_file():
                raise InputError(f"--pseudo {symbol}={explicit[symbol]}: no such file "
                                 f"(looked in {directory} too)")
            chosen[symbol] = read_upf_header(path)
            continue
        files = candidates(directory, symbol)
        headers = [read_upf_header(p) for p in files]
        usable = [h for h in headers if not h.spin_orbit]
        matching = [h for h in usable if h.functional == functional]
        if not matching and len(usable) == 1 and directory != DEBIAN_PSEUDO_DIR:
            matching = usable
        if not matching:
            found = ", ".join(f"{h.path.name} ({h.functional})" for h in headers) or "none"
            raise InputError(f"no {functional.upper()} pseudopotential for {symbol} in {directory} "
                             f"(files for {symbol}: {found}); give --pseudo-dir, "
                             f"--pseudo {symbol}=FILE or another --xc")
        chosen[symbol] = min(matching, key=lambda h: (_TYPE_RANK.get(h.kind, 3), h.path.name))
    families = {h.functional for h in chosen.values()}
    if len(families) > 1:
        listing = ", ".join(f"{s}: {h.path.name} ({h.functional})" for s, h in sorted(chosen.items()))
        raise InputError(f"the pseudopotentials mix functionals ({listing}); pw.x would refuse them")
    return chosen
