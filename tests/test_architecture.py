"""The import structure of `src/parley`: no cycles, private modules stay private, and the
infrastructure packages import no domain (docs/architecture.md explains the layers)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.mode_independent

SRC = Path(__file__).resolve().parents[1] / "src"
DOMAINS = {"parley.auth", "parley.chats", "parley.jobs", "parley.billing"}
# Packages that serve the domains and must not know them.
INFRASTRUCTURE = {
    "parley.common",
    "parley.db",
    "parley.outbox",
    "parley.parser",
    "parley.worker",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, package: str) -> Iterator[str]:
    """Every module imported at run time (in functions too; not under TYPE_CHECKING)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            node.body = []  # the walk has not entered it yet: drop what it guards
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            for alias in node.names:
                # `from package import module` needs the module; `from module import name`
                # the module: the graph keeps whichever of the two exists.
                yield f"{base}.{alias.name}|{base}"


def import_graph() -> dict[str, set[str]]:
    """Module -> the parley modules it imports."""
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for found in _imports(ast.parse(path.read_text()), package):
            first, _, fallback = found.partition("|")
            target = first if first in modules else fallback or first
            if target in modules:
                targets.add(target)
        graph[name] = targets - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def _in(module: str, packages: set[str]) -> str | None:
    return next((p for p in packages if module == p or module.startswith(p + ".")), None)


def test_there_is_no_import_cycle(graph: dict[str, set[str]]) -> None:
    assert _cycles(graph) == []


def test_a_private_module_is_imported_only_within_its_package(
    graph: dict[str, set[str]],
) -> None:
    wrong = [
        f"{source} -> {target}"
        for source, targets in graph.items()
        for target in targets
        if target.rpartition(".")[2].startswith("_")
        and not source.startswith(target.rpartition(".")[0] + ".")
        and source != target.rpartition(".")[0]
    ]
    assert wrong == []


def test_infrastructure_imports_no_domain(graph: dict[str, set[str]]) -> None:
    wrong = [
        f"{source} -> {target}"
        for source, targets in graph.items()
        if _in(source, INFRASTRUCTURE)
        for target in targets
        if _in(target, DOMAINS)
    ]
    assert wrong == []


def test_the_graph_sees_the_imports_it_must(graph: dict[str, set[str]]) -> None:
    """A check of the check: it reads relative, lazy and package imports."""
    assert "parley.outbox.emit" in graph["parley.outbox"]
    assert "parley.worker.process" in graph["parley.cli"]  # imported inside a function
    assert "parley.chats.previews" in graph["parley.chats.tasks"]
