"""No circular imports between deepatlas modules.

The check reads the source with ``ast`` and imports nothing, so it sees every import: those at
module level and those deferred into functions (a deferred import hides a cycle until the day
someone moves it to the top). Imports under ``if TYPE_CHECKING:`` are left out: they never run,
and with ``from __future__ import annotations`` a type-only dependency cannot fail at import time.
Imports by string (``importlib.import_module``: the lazy public API in ``deepatlas/__init__``, the
registry loading a catalogue entry's module) are not statements and are not seen.

An import becomes an edge to the module it loads:
- ``import a.b.c`` -> ``a.b.c``;
- ``from pkg import x`` -> ``pkg.x`` when that is a module (a submodule, whatever the package's
  ``__init__`` re-exports), else ``pkg`` (a name defined in the package's ``__init__``);
- relative imports are resolved against the importing module's package, so ``from . import x``
  in ``pkg/y.py`` is ``pkg.x`` (or ``pkg`` when ``x`` is only a name), and
  ``from ..registry import TASKS`` in ``pkg/sub/y.py`` is ``pkg.registry``.
Parent packages that Python runs first are not edges: every module would then depend on every
``__init__`` above it, and the cycles that matter would drown in ones nobody can break.
"""

from __future__ import annotations

import ast
import itertools
from collections import deque
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def module_files(src: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` under ``src``, by dotted name (a package by its own name)."""
    modules = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Import statements anywhere in the tree except the body of ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))
    return found


def _deepest_known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of dotted ``name`` that is a known module (``a.b.Cls`` -> ``a.b``)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def _targets(node: ast.Import | ast.ImportFrom, module: str, modules: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        found = (_deepest_known(alias.name, modules) for alias in node.names)
        return [name for name in found if name is not None]
    if node.level:
        is_package = modules[module].name == "__init__.py"
        package = module.split(".") if is_package else module.split(".")[:-1]
        keep = len(package) - (node.level - 1)
        if keep <= 0:
            return []  # beyond the top-level package: not ours
        base = ".".join(package[:keep] + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    targets = []
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        if submodule in modules:
            targets.append(submodule)
        else:
            known = _deepest_known(base, modules)
            if known is not None:
                targets.append(known)
    return targets


def import_graph(src: Path, package: str) -> dict[str, dict[str, int]]:
    """module -> {imported module: line of the first such import}, within ``package`` only."""
    modules = module_files(src, package)
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges: dict[str, int] = {}
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _import_nodes(tree):
            for target in _targets(node, module, modules):
                if target != module:
                    edges[target] = min(edges.get(target, node.lineno), node.lineno)
        graph[module] = edges
    return graph


def _strongly_connected(graph: dict[str, dict[str, int]]) -> list[set[str]]:
    """Tarjan's components, iteratively (no recursion limit on a deep graph)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def _shortest_path(graph: dict[str, dict[str, int]], start: str, goal: str, within: set[str]):
    previous = {start: start}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path = [goal]
            while path[-1] != start:
                path.append(previous[path[-1]])
            return path[::-1]
        for child in sorted(graph.get(node, {})):
            if child in within and child not in previous:
                previous[child] = node
                queue.append(child)
    raise AssertionError(f"{goal} is not reachable from {start} inside its component")


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Cycles that together use every edge lying on a cycle, each as ``[a, b, ..., a]``.

    For each such edge ``a -> b`` the cycle is the edge plus the shortest way back from ``b`` to
    ``a``; so every import to remove or defer appears in at least one printed cycle.
    """
    cycles: dict[tuple[str, ...], list[str]] = {}
    for component in _strongly_connected(graph):
        if len(component) < 2:
            continue
        for source in sorted(component):
            for target in sorted(graph[source]):
                if target not in component:
                    continue
                loop = [source, *_shortest_path(graph, target, source, component)]
                # one key per cycle whatever node it is printed from
                turn = loop.index(min(loop[:-1]))
                key = tuple(loop[turn:-1] + loop[:turn])
                cycles.setdefault(key, [*key, key[0]])
    return sorted(cycles.values(), key=lambda cycle: (len(cycle), cycle))


def describe(cycles: list[list[str]], graph: dict[str, dict[str, int]]) -> str:
    """Each cycle as ``a -> b -> a``, then the line of each of its imports."""
    lines = []
    for cycle in cycles:
        lines.append(" -> ".join(cycle))
        for source, target in itertools.pairwise(cycle):
            lines.append(f"    {source} line {graph[source][target]}: imports {target}")
    return "\n".join(lines)


def test_no_circular_imports_in_deepatlas() -> None:
    graph = import_graph(SRC, "deepatlas")
    assert "deepatlas.engine.trainer" in graph  # the walk found the package
    cycles = find_cycles(graph)
    assert not cycles, f"{len(cycles)} circular imports:\n{describe(cycles, graph)}"


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_cycle_finder_reports_a_two_module_cycle(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "fake/__init__.py": "",
            "fake/a.py": "from .b import thing\n",
            # deferred into a function: still a cycle
            "fake/b.py": "def f():\n    from fake import a\n    return a\n",
            "fake/c.py": "from . import a\n",
        },
    )
    graph = import_graph(tmp_path, "fake")
    assert graph["fake.b"] == {"fake.a": 2}  # `from fake import a` is the submodule, not the init
    assert find_cycles(graph) == [["fake.a", "fake.b", "fake.a"]]
    assert describe(find_cycles(graph), graph).splitlines()[0] == ("fake.a -> fake.b -> fake.a")


def test_relative_imports_resolve_to_the_module_they_load(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "fake/__init__.py": "from .pkg import y\n",
            "fake/registry.py": "TASKS = {}\n",
            "fake/pkg/__init__.py": "from . import x\nNAME = 1\n",
            "fake/pkg/x.py": "",
            "fake/pkg/y.py": (
                "from typing import TYPE_CHECKING\n"
                "from ..registry import TASKS\n"
                "from . import x, NAME\n"
                "import fake.pkg.x as alias\n"
                "if TYPE_CHECKING:\n"
                "    from fake import registry\n"
            ),
        },
    )
    graph = import_graph(tmp_path, "fake")
    assert graph["fake.pkg.y"] == {"fake.registry": 2, "fake.pkg.x": 3, "fake.pkg": 3}
    assert graph["fake.pkg"] == {"fake.pkg.x": 1}
    assert graph["fake"] == {"fake.pkg.y": 1}
    # y imports NAME from its own package's __init__, which does not import y: no cycle
    assert find_cycles(graph) == []
    _write(tmp_path, {"fake/pkg/__init__.py": "from . import x, y\nNAME = 1\n"})
    assert find_cycles(import_graph(tmp_path, "fake")) == [["fake.pkg", "fake.pkg.y", "fake.pkg"]]
