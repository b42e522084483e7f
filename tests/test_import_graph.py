"""No import cycle anywhere in src, inside packages too (test_architecture.py checks only
between rooms, so it cannot see a circle inside one). The graph is read from the source with
ast: an import inside a function counts (it runs sooner or later), one under
`if TYPE_CHECKING:` does not (it never runs). `from pkg import name` imports the submodule
pkg.name when there is one, else pkg's __init__, so a submodule that takes a name from its
own package's __init__ depends on that __init__; `import a.b.c` imports a.b.c.

An import by a string (importlib.import_module) is not seen. The one in src is the config
package's lazy __init__, which reaches down into its own submodules by name; the test below
holds the other half, that none of them takes anything from that __init__, so no circle can
pass through it unseen."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "src" / "ainews_newsletter"


def module_names(package_dir: Path) -> dict[str, Path]:
    """Every module of the package by dotted name; a package is named by its __init__."""
    found: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: all but those under `if TYPE_CHECKING:` (its
    `else:` branch runs, so it counts)."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
        return
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        children: list[ast.AST] = list(node.orelse)
    else:
        children = list(ast.iter_child_nodes(node))
    for child in children:
        yield from _import_nodes(child)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The module a `from ... import` names, with relative imports resolved."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base[:len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _longest_known(name: str, known: dict[str, Path]) -> str | None:
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            return candidate
    return None


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Module → the modules of the same package it imports (itself left out)."""
    known = module_names(package_dir)
    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        targets: set[str] = set()
        is_package = path.name == "__init__.py"
        for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                source = _absolute(node, module, is_package)
                names = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in known
                         else source for alias in node.names]
            targets.update(hit for name in names
                           if (hit := _longest_known(name, known)) is not None)
        graph[module] = targets - {module}
    return graph


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of more than one module, each sorted, iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            step = next(successors, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(sorted(graph.get(step, ())))))
                elif step in on_stack:
                    low[node] = min(low[node], index[step])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return sorted(components)


def _cycle_through(start: str, members: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest path start → … → start inside one component (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for step in sorted(graph[node] & members):
                if step == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if step not in previous:
                    previous[step] = node
                    following.append(step)
        frontier = following
    raise AssertionError(f"{start} is in no cycle")  # pragma: no cover


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per tangle of modules, in import order, starting at its first name."""
    return [_cycle_through(members[0], set(members), graph)
            for members in _strongly_connected(graph)]


def test_no_import_cycle_in_src() -> None:
    cycles = import_cycles(import_graph(PACKAGE_DIR))
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)


def test_the_lazy_config_package_is_never_imported_by_its_own_modules() -> None:
    graph = import_graph(PACKAGE_DIR)
    inside = [name for name in graph if name.startswith("ainews_newsletter.config.")]
    assert "ainews_newsletter.config.root" in inside
    assert [name for name in inside if "ainews_newsletter.config" in graph[name]] == []


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_checker_finds_a_cycle(tmp_path: Path) -> None:
    """A deliberately broken tree: the checker names its cycle, counts the import inside a
    function and the one through the package's __init__, and sees through TYPE_CHECKING."""
    _write(tmp_path, {
        "pkg/__init__.py": "from pkg.a import thing\nVERSION = '1'\n",
        "pkg/a.py": "def thing() -> None:\n    from pkg.b import helper\n",
        "pkg/b.py": "from pkg import VERSION\n\ndef helper() -> None: ...\n",
        # c ⇄ d only for the type checker: no cycle
        "pkg/c.py": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                     "    from pkg.d import D\nelse:\n    import json\n"),
        "pkg/d.py": "import pkg.c\nclass D: ...\n",
        # `from pkg.sub import f` is the submodule f, not the package
        "pkg/sub/__init__.py": "",
        "pkg/sub/e.py": "from pkg.sub import f\nimport os.path\n",
        "pkg/sub/f.py": "from . import e as _e\n",
    })
    graph = import_graph(tmp_path / "pkg")
    assert graph == {
        "pkg": {"pkg.a"}, "pkg.a": {"pkg.b"}, "pkg.b": {"pkg"},
        "pkg.c": set(), "pkg.d": {"pkg.c"},
        "pkg.sub": set(), "pkg.sub.e": {"pkg.sub.f"}, "pkg.sub.f": {"pkg.sub.e"},
    }
    assert import_cycles(graph) == [["pkg", "pkg.a", "pkg.b", "pkg"],
                                    ["pkg.sub.e", "pkg.sub.f", "pkg.sub.e"]]
