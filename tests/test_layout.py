"""The package's layering: no module imports one that imports it back, and the rooms keep
their direction (i-PI I/O below everything, simulation not importing analysis).

The graph is read from the source (every import statement, lazy ones inside functions
included), so the check does not depend on what happens to be imported at run time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: package name -> folder, as pyproject.toml's package-dir maps them
PACKAGE_DIRS = {"ipi_dipole": ROOT / "ipi_dipole", "ipi_dipole.driver": ROOT / "driver",
                "ipi_dipole.analysis": ROOT / "analysis"}


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg, folder in PACKAGE_DIRS.items():
        for f in folder.rglob("*.py"):
            parts = [p for p in f.relative_to(folder).with_suffix("").parts if p != "__init__"]
            mods[".".join([pkg, *parts])] = f
    return mods


def _import_graph() -> dict[str, set[str]]:
    mods = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, f in mods.items():
        base = name if f.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(f.read_text(), filename=str(f))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    b = base
                    for _ in range(node.level - 1):
                        b = b.rpartition(".")[0]
                    m = f"{b}.{node.module}" if node.module else b
                else:
                    m = node.module or ""
                # "from pkg import sub" depends on pkg.sub, not on every module of pkg
                targets = [f"{m}.{a.name}" if f"{m}.{a.name}" in mods else m for a in node.names]
            else:
                continue
            for t in targets:
                r = resolve(t) if t.startswith("ipi_dipole") else None
                if r and r != name:
                    deps.add(r)
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


@pytest.fixture(scope="module")
def graph():
    return _import_graph()


def test_no_module_imports_one_that_imports_it_back(graph):
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_ipi_io_imports_nothing_above_it(graph):
    bad = {m: sorted(d for d in deps if not d.startswith("ipi_dipole.ipi_io")
                     and d not in ("ipi_dipole", "ipi_dipole.errors"))
           for m, deps in graph.items() if m.startswith("ipi_dipole.ipi_io")}
    assert {m: d for m, d in bad.items() if d} == {}


def test_library_does_not_call_the_command_line(graph):
    bad = {m: sorted(d for d in deps if d.startswith(("ipi_dipole.commands", "ipi_dipole.cli")))
           for m, deps in graph.items()
           if not m.startswith(("ipi_dipole.commands", "ipi_dipole.cli"))}
    assert {m: d for m, d in bad.items() if d} == {}


def test_simulation_reads_no_analysis_but_the_correlation_functions(graph):
    bad = {m: sorted(d for d in deps if d.startswith("ipi_dipole.analysis")
                     and d != "ipi_dipole.analysis.correlation")
           for m, deps in graph.items() if m.startswith(("ipi_dipole.replicas", "ipi_dipole.driver"))}
    assert {m: d for m, d in bad.items() if d} == {}


def test_every_subpackage_is_listed_in_pyproject():
    """A non-editable install (``pip install .``) ships only the packages pyproject lists."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {name for name, f in _modules().items() if f.name == "__init__.py"}
    assert found - listed == set()
