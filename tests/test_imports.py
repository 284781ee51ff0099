"""No import cycle anywhere in emorec, imports inside functions included.

A cycle works only while every module in it imports the others lazily or in the right
order; the next top-level import then breaks it at start-up, far from the change that
closed it. This test reads the sources with ``ast`` (nothing is imported, so it is
instant) and names the first cycle it finds.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "emorec"


def module_names() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    names = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _type_checking_only(node: ast.AST, parents: dict) -> bool:
    """Inside ``if TYPE_CHECKING:``: never run, so no dependency at run time."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports, at any depth of its code."""
    tree = ast.parse(path.read_text(), str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, up level - 1 more
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, *([base] if base else [])])
            for alias in node.names:
                # `from emorec.x import y` names the submodule emorec.x.y when there is one.
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (depth-first search, colouring nodes)."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_walk_sees_lazy_relative_and_submodule_imports(tmp_path):
    """The walker itself: a cycle closed only by an import inside a function, through a
    relative import and a `from package import submodule`, is found."""
    modules = {
        "emorec.a": tmp_path / "a.py",
        "emorec.b": tmp_path / "b.py",
        "emorec.sub": tmp_path / "sub" / "__init__.py",
        "emorec.sub.c": tmp_path / "sub" / "c.py",
    }
    modules["emorec.sub"].parent.mkdir()
    modules["emorec.a"].write_text("from emorec.sub import c\n")
    modules["emorec.sub.c"].write_text("def f():\n    from ..b import g\n")
    modules["emorec.b"].write_text("def g():\n    import emorec.a\n")
    modules["emorec.sub"].write_text("")
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    assert graph["emorec.a"] == {"emorec.sub.c"} and graph["emorec.sub.c"] == {"emorec.b"}
    assert find_cycle(graph) == ["emorec.a", "emorec.sub.c", "emorec.b", "emorec.a"]
