"""No import cycles between the command line and the commands, the executors and the SLURM
executor, the store and its claims, or the method registries and the plug-ins they load; no
test fixtures in the shipped packages.

The import graph is read from the sources with ``ast``: every ``import`` counts, at module level
or inside a function (a lazy import still ties the two modules together), except those under
``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("suite", "baselines")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``module`` imports anywhere in its source."""
    found: set[str] = set()
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parent = package[: len(package) - child.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    found.add(full if full in known else base)
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in found if m in known and m != module}


def import_graph() -> dict[str, set[str]]:
    """Module -> project modules it imports."""
    modules = _modules()
    return {m: _imports(m, p, set(modules)) for m, p in modules.items()}


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def in_cycle(graph: dict[str, set[str]], a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` import each other, directly or through other modules."""
    return b in reachable(graph, a) and a in reachable(graph, b)


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_sees_lazy_imports(graph):
    assert "baselines" in graph["suite.methods.plugins"]  # imported inside load_plugins()
    assert "suite.commands" in graph["suite.cli"]  # imported inside main()
    assert "suite.claims" in graph["suite.store"]  # imported inside Store.claim_owner()


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (each an import cycle)."""
    return [c for c in ({m} | {n for n in reachable(graph, m) if m in reachable(graph, n)}
                        for m in graph) if len(c) > 1]


def test_cycles_finds_a_lazy_cycle():
    toy = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(toy) == [{"a", "b", "c"}] * 3
    assert not cycles({"a": {"b"}, "b": set()})


# The store, its claims, the SLURM executor and the scheduler client, the planner and the
# training entry point: none of them may sit on an import cycle, lazy imports included.
CORE = ("suite.store", "suite.claims", "suite.scheduler", "suite.slurm", "suite.tables",
        "suite.train", "suite.launch", "suite.params")


def test_no_import_cycle_anywhere(graph):
    """No two project modules import each other, directly or through others, lazily or not."""
    found = {frozenset(c) for c in cycles(graph)}
    assert not found, [sorted(c) for c in found]


@pytest.mark.parametrize("module", CORE)
def test_no_import_cycle_through(graph, module):
    assert not [c for c in cycles(graph) if module in c]


@pytest.mark.parametrize("a, b", [("suite.cli", "suite.commands"), ("suite.launch", "suite.slurm"),
                                  ("suite.claims", "suite.slurm"), ("suite.store", "suite.slurm"),
                                  ("suite.claims", "suite.store")])
def test_no_cycle_between(graph, a, b):
    assert not in_cycle(graph, a, b)


def test_no_cycle_between_the_method_registries_and_their_plugins(graph):
    plugins = {m for m in graph if m.startswith("baselines")}
    plugins |= {"suite.methods.bcd", "suite.distill.connectors"}
    loaders = {"suite.methods", "suite.methods.registry", "suite.methods.plugins",
               "suite.methods.catalog", "suite.methods.options"}
    tied = sorted((a, b) for a in loaders for b in plugins if in_cycle(graph, a, b))
    assert not tied
    for plugin in plugins:  # a plug-in sees the registries, never what loads it
        assert not reachable(graph, plugin) & (loaders - {"suite.methods", "suite.methods.registry"})


@pytest.mark.parametrize("first, second", [
    ("suite.commands", "suite.cli"),
    ("suite.slurm", "suite.launch"),
    ("suite.claims", "suite.slurm"),
    ("suite.store", "suite.claims"),
    ("baselines.kd", "suite.methods.registry"),
    ("suite.methods.bcd", "suite.methods"),
])
def test_either_import_order_works(first, second):
    code = f"import {first}, {second}; import suite.methods as m; assert 'kd' in m.method_names()"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=300)


def test_no_test_fixtures_in_shipped_packages():
    for pkg in PACKAGES:
        names = [p.relative_to(ROOT) for p in (ROOT / pkg).rglob("*.py")
                 if p.stem.startswith(("_testing", "test_", "conftest")) or p.stem.endswith("_test")]
        assert not names, names
