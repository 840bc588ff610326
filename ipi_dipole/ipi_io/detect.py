"""Telling i-PI's files apart by their content (a directory scan must not trust names)."""

from __future__ import annotations

import re

from .trajectories import EXTRAS_HEADER, QUANTITY_TAG


def sniff(path) -> tuple[str, str] | None:
    """What i-PI file ``path`` is, from its first lines.

    Returns
    -------
    (kind, detail) or None
        ``("extras", name)``, ``("xyz", quantity)``, ``("properties", "")`` or
        ``("ipi-xml", "")``; None for anything else.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    if b"\0" in head:
        return None
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = text.splitlines()
    if not lines:
        return None
    opening = text.lstrip()  # i-PI indents the extras header; blank lines before a header are harmless
    m = EXTRAS_HEADER.match(opening.split("\n", 1)[0] + "\n")
    if m:
        return "extras", m.group(1)
    if re.match(r"#\s*(column|cols\.)\s+\d", opening):
        return "properties", ""
    first = lines[0].split()
    if len(first) == 1 and first[0].isdigit() and len(lines) > 1:
        if "Properties=" in lines[1]:  # i-PI format='ase': the tags are in ipi_comment="..."
            m = re.search(r'ipi_comment="([^"]*)"', lines[1])
            if not m:
                return None
            tags = [w for w, _ in QUANTITY_TAG.findall(m.group(1)) if w != "cell"]
            return "xyz", tags[0] if tags else "positions"
        tags = [w for w, _ in QUANTITY_TAG.findall(lines[1]) if w != "cell"]
        if tags or "CELL" in lines[1]:
            return "xyz", tags[0] if tags else "positions"
    if opening.startswith("<") and "<simulation" in text:  # not a script that mentions one
        return "ipi-xml", ""
    return None
