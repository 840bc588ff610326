"""Resumable multi-stage jobs: each stage works in its own directory and is reused on a rerun.

A stage is done when its directory holds ``stage.json`` with the settings it ran with and a
summary of what it made. A rerun with the same settings reuses it; changed settings, a
missing marker (the stage was killed half-way) or ``force`` run it again. Stages run in
place (not in a temporary directory renamed at the end), because later stages and the
files a stage writes refer to each other by absolute path.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Callable

MARKER = "stage.json"


class StageRunner:
    """Run named stages under one root directory, reusing finished ones.

    Parameters
    ----------
    root : path
        Directory holding one sub-directory per stage.
    force : bool
        Redo every stage even when a finished one with the same settings exists.
    log : callable
        Where progress lines go (``print`` by default).
    """

    def __init__(self, root, force: bool = False, log: Callable[[str], None] = print):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.force = force
        self.log = log
        self._count = 0

    def directory(self, name: str) -> Path:
        """The working directory of stage ``name``."""
        return self.root / name

    def run(self, name: str, settings: dict, work: Callable[[Path], dict]) -> dict:
        """Run ``work(directory) -> summary`` unless a finished stage with ``settings`` exists.

        Returns the stage's summary (a JSON-serialisable dict), fresh or reused.
        """
        self._count += 1
        directory = self.directory(name)
        marker = directory / MARKER
        settings = json.loads(json.dumps(settings))  # compare as stored: tuples become lists
        stale = self.force
        if marker.is_file() and not self.force:
            record = json.loads(marker.read_text())
            if record.get("settings") == settings:
                self.log(f"[{self._count}] {name}: done before, reused ({directory})")
                return record["summary"]
            self.log(f"[{self._count}] {name}: settings changed, running again")
            stale = True
        elif directory.exists() and not self.force:
            # killed half-way with the same settings: the stage's own tools resume
            self.log(f"[{self._count}] {name}: unfinished run found, continuing")
        if stale and directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.log(f"[{self._count}] {name}: running in {directory}")
        start = time.perf_counter()
        summary = work(directory) or {}
        summary = dict(summary, seconds=round(time.perf_counter() - start, 1))
        marker.write_text(json.dumps({"settings": settings, "summary": summary}, indent=2))
        return summary
