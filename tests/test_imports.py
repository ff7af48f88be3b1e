"""No import cycles in aigw/, type-only (TYPE_CHECKING) imports included.

Each module's imports are read with ``ast`` (every ``import`` anywhere in the file,
so one inside a function or an ``if TYPE_CHECKING:`` block counts too) and the
strongly connected components of the module graph must all be single modules. An
edge from a module into its own parent package is left out: importing
``aigw.pipeline.context`` runs ``aigw/pipeline/__init__.py`` first, but that is
how packages work, not a cycle of design.
"""

from __future__ import annotations

import ast
from pathlib import Path

import aigw

ROOT = Path(aigw.__file__).parent

# Cycles that exist on purpose for now, each with the change that removes it (none).
KNOWN: set[frozenset[str]] = set()


def modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in ROOT.rglob("*.py"):
        parts = ["aigw", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The aigw modules ``name`` imports (submodules resolved to the longest known)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            candidates = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in known:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name and not name.startswith(candidate + "."):
                found.add(candidate)
    return found


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imported(name, path, set(mods)) for name, path in mods.items()}


def test_no_import_cycles() -> None:
    found = set(cycles(graph()))
    unexpected = [" <-> ".join(sorted(c)) for c in found - KNOWN]
    assert not unexpected, "import cycles in aigw/: " + "; ".join(unexpected)


def test_known_cycles_still_exist() -> None:
    """An entry in KNOWN that no longer exists must go (so it cannot hide a new one)."""
    gone = KNOWN - set(cycles(graph()))
    assert not gone, f"no longer cycles, remove them from KNOWN: {sorted(map(sorted, gone))}"


def test_a_type_only_cycle_is_found() -> None:
    g = graph()
    g["aigw.errors"] = {*g["aigw.errors"], "aigw.gateway"}  # as if errors imported Gateway
    assert any("aigw.errors" in c and "aigw.gateway" in c for c in cycles(g))


def test_type_checking_imports_are_read(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from aigw.app import x\n"
    )
    assert imported("aigw.mod", source, {"aigw.app", "aigw.mod"}) == {"aigw.app"}
