"""The layers stay visible: no import cycle, small modules, and each package says its job.

The import walk reads the source (``ast``), so it sees imports inside functions too; only
``if TYPE_CHECKING:`` blocks are left out, since they never run.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import servefn

PACKAGE = Path(servefn.__file__).parent
MAX_LINES = 420  # "about 400": a module past it does two jobs


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
PACKAGES = sorted(n for n, p in MODULES.items() if p.name == "__init__.py")


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(sub) for stmt in node.body for sub in ast.walk(stmt))
    return skipped


def _imports(name: str, path: Path) -> set[str]:
    """servefn modules that ``name`` imports, at module level or inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            candidates = [target, *(f"{target}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found.update(c for c in candidates if c in MODULES and c != name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_no_import_cycle_between_modules() -> None:
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# Which layer may import which (docs/architecture.md): imports stay at or below a module's layer.
LAYERS = {
    "servefn.errors": 0,
    "servefn._version": 0,
    "servefn._registry": 0,
    "servefn._compat": 0,
    "servefn._logtext": 0,
    "servefn._redact": 0,
    "servefn.schema": 1,
    "servefn.predictors": 2,
    "servefn.trainers": 2,
    # the training profile, drift and telemetry hooks: save (model/) writes the profile, model
    # loads (loaders/) and requests (http/) report to it, so it sits below them and imports
    # only errors and schema/; OpenTelemetry itself is imported lazily inside it
    "servefn.telemetry": 2,
    "servefn.model": 3,
    # ML.NET's model.zip read as it is: model/_archive.py converts one when it loads it, so the
    # reader sits beside model/ (it uses model/_limits' caps, never the archive code above it)
    "servefn.mlnet": 3,
    "servefn.loaders": 4,
    "servefn.http": 5,
    "servefn.batch": 5,
    "servefn.azure": 6,
    # many models behind one app: serve_models adapts requests with azure.py's helpers, so it
    # sits beside azure.py; devhost/ (servefn serve REPOSITORY) imports it
    "servefn.repository": 6,
    # the Open Inference Protocol routes: adapt requests with azure.py's helpers, beside it;
    # devhost/ (servefn serve MODEL) imports them
    "servefn.oip": 6,
    "servefn.devhost": 7,
    "servefn.cli": 8,
    "servefn.__main__": 9,
    "servefn": 9,
}


def _layer(module: str) -> int:
    while module not in LAYERS:
        module = module.rpartition(".")[0]
    return LAYERS[module]


def test_nothing_imports_upward() -> None:
    upward = sorted(
        f"{name} -> {target}"
        for name, targets in GRAPH.items()
        for target in targets
        if _layer(target) > _layer(name)
    )
    assert upward == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small(name: str) -> None:
    lines = MODULES[name].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it along one of its seams"


@pytest.mark.parametrize("name", PACKAGES)
def test_each_package_says_what_its_layer_does(name: str) -> None:
    doc = importlib.import_module(name).__doc__
    assert doc and len(doc.split()) >= 20, f"{name}'s docstring should say its job and imports"
