"""The shape of the code: no import circles among codeit's modules (function-level and TYPE_CHECKING
imports included), and no module reaching into another module's private names."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"codeit": ROOT / "codeit", "codeit_plugins": ROOT / "plugins"}
#: trees whose files may use codeit's modules, checked for private-name use
CLIENTS = ["codeit", "plugins", "benchmarks", "tests", "experiments", "examples"]


def module_files() -> dict[str, Path]:
    """Every module of codeit and of the built-in plugins, by dotted name."""
    out = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = path
    return out


MODULES = module_files()


def imported_modules(tree: ast.AST) -> list[tuple[str, list[str]]]:
    """``(module, names imported from it)`` for every import statement anywhere in ``tree``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def import_edges(name: str, path: Path) -> set[str]:
    """The codeit modules that module ``name`` imports (a submodule named in ``from pkg import x``
    counts as that submodule)."""
    edges = set()
    for module, names in imported_modules(ast.parse(path.read_text())):
        targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES] or [module]
        edges |= {t for t in targets if t in MODULES and t != name}
    return edges


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_among_codeit_modules():
    graph = {name: import_edges(name, path) for name, path in MODULES.items()}
    assert cycles(graph) == []


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(path: Path, own_module: str | None) -> list[str]:
    """``module._name`` uses and ``from module import _name`` imports of another codeit module."""
    tree = ast.parse(path.read_text())
    problems = []
    aliases: dict[str, str] = {}  # local name -> codeit module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if full in MODULES:
                    aliases[alias.asname or alias.name] = full
                elif node.module in MODULES and node.module != own_module and is_private(alias.name):
                    problems.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES and alias.asname:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and aliases[node.value.id] != own_module and is_private(node.attr)):
            problems.append(f"{path.relative_to(ROOT)}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    return problems


def test_no_module_uses_a_private_name_of_another():
    own = {path: name for name, path in MODULES.items()}
    problems = []
    for tree in CLIENTS:
        for path in sorted((ROOT / tree).rglob("*.py")):
            if ".venv" in path.parts or "node_modules" in path.parts:
                continue
            problems += private_uses(path, own.get(path))
    assert problems == []
