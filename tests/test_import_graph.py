"""The package's import graph has no circle: every `import` in benchmark/, function-level ones included.

A circle hidden in a function-level import still ties two rooms together (one cannot be read,
tested or moved without the other), so the graph is drawn from the source with `ast`, not from
what Python happens to import at start-up. An edge goes to the module named, never implicitly to
the packages above it (importing `benchmark.data.voc`, or `from benchmark.data import voc`, runs
`benchmark/data/__init__.py`, but that is Python's doing, not a dependency the code states).
"""
import ast
from pathlib import Path

from tests.helpers.tools import ROOT


def module_names(package: Path) -> dict:
    """{dotted module name: file} of every .py under `package` (a package is named by its folder)."""
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def import_graph(package: Path) -> dict:
    """{module: set of modules of the same package it imports anywhere in its source}."""
    modules = module_names(package)
    graph = {}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package `level - 1` above this module's
                    up = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                # `from pkg import module` depends on the module; `from module import name` on the module
                targets.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names)
        graph[name] = {_known(t, modules) for t in targets} - {None, name}
    return graph


def _known(target: str, modules: dict):
    """The module of `target` (a module, or a name inside one) in the package, else None."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def circles(graph: dict) -> list:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
    return sorted(found)


def test_the_package_has_no_import_circle():
    graph = import_graph(ROOT / "benchmark")
    assert len(graph) > 40 and graph["benchmark.engine.runner"], "the graph was not drawn"
    assert circles(graph) == []


def test_a_circle_through_a_function_level_import_is_found(tmp_path):
    """The check can fail: a circle that only a function-level import closes, as the ones it replaced."""
    package = tmp_path / "pkg"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "data" / "__init__.py").write_text("from pkg.data.families import get_family\n")
    (package / "data" / "families.py").write_text("def task_datasets(task):\n    from pkg.tasks import get_task\n")
    (package / "tasks.py").write_text("from .data import families\n")
    (package / "alone.py").write_text("import os\n")
    assert circles(import_graph(package)) == [["pkg.data.families", "pkg.tasks"]]
