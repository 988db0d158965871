"""The package's imports point one way, and form no cycle.

Read from the source (every ``import``, those inside functions too, since an
import moved into a function hides a cycle without breaking it), so the test
sees the design, not just what one interpreter happened to load.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "flaskserve"
Graph = dict[str, set[str]]


def _module_name(file: Path) -> str:
    parts = ["flaskserve", *file.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(node: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The flaskserve modules one import statement loads."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in known}
    if not isinstance(node, ast.ImportFrom):
        return set()
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        source = ".".join([*base, node.module] if node.module else base)
    else:
        source = node.module or ""
    found = {f"{source}.{alias.name}" for alias in node.names} & known
    return found or ({source} & known)


def import_graph() -> Graph:
    files = {_module_name(f): f for f in PACKAGE.rglob("*.py")}
    known = set(files)
    graph: Graph = {}
    for module, file in files.items():
        tree = ast.parse(file.read_text(encoding="utf-8"))
        is_package = file.name == "__init__.py"
        edges = set()
        for node in ast.walk(tree):
            edges |= _targets(node, module, is_package, known)
        graph[module] = edges - {module}
    return graph


def find_cycle(graph: Graph) -> list[str] | None:
    """One import cycle, as the modules along it, or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)) is not None:
            return cycle
    return None


def test_the_package_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def _imports_of(prefix: str) -> dict[str, set[str]]:
    graph = import_graph()
    return {m: graph[m] for m in graph if m == prefix or m.startswith(prefix + ".")}


def _source(module: str) -> Path:
    path = PACKAGE.parent / module.replace(".", "/")
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _third_party_imports(module: str) -> set[str]:
    tree = ast.parse(_source(module).read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add((node.module or "").split(".")[0])
    return names


ABOVE = (
    "flaskserve.app",
    "flaskserve.api",
    "flaskserve.settings",
    "flaskserve.cli",
    "flaskserve.serving",
    "flaskserve.dataplane",
)


@pytest.mark.parametrize(
    "layer",
    ["flaskserve.runtime", "flaskserve.codecs", "flaskserve.artifact", "flaskserve.explain"],
)
def test_lower_layers_never_import_the_web_layers(layer: str) -> None:
    for module, targets in _imports_of(layer).items():
        wrong = {t for t in targets if t.startswith(ABOVE)}
        assert not wrong, f"{module} imports {sorted(wrong)}"
        web = _third_party_imports(module) & {"flask", "werkzeug"}
        assert not web, f"{module} imports {sorted(web)}"


def test_modules_and_functions_stay_readable() -> None:
    """Modules under 400 lines and functions under 60, so each reads at a glance."""
    too_long = []
    for file in sorted(PACKAGE.rglob("*.py")):
        source = file.read_text(encoding="utf-8")
        if source.count("\n") > 400:
            too_long.append(f"{file.relative_to(PACKAGE)}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 60:
                    too_long.append(f"{file.relative_to(PACKAGE)}: {node.name}() {length} lines")
    assert not too_long, "split these: " + "; ".join(too_long)
