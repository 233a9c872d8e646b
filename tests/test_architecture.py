"""ivr/ is the call flow and nothing else: no web framework, no database."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

IVR = Path(__file__).resolve().parent.parent / "ivr"
ALLOWED_THIRD_PARTY = {"twilio", "phonenumbers"}
HAND_WRITTEN = re.compile(r"[\"']\s*<(Response|Say|Dial|Gather|Number|Record)\b")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_ivr_imports_only_the_standard_library_twilio_and_phonenumbers() -> None:
    for path in IVR.glob("*.py"):
        foreign = {
            name
            for name in _imports(path)
            if name not in sys.stdlib_module_names and name not in ALLOWED_THIRD_PARTY and name != "ivr"
        }
        assert not foreign, f"{path.name} imports {sorted(foreign)}"


def test_ivr_twiml_comes_from_the_sdk_not_hand_written_xml() -> None:
    for path in IVR.glob("*.py"):
        assert not HAND_WRITTEN.search(path.read_text()), f"{path.name} writes TwiML by hand"


# ---------------------------------------------------------------- app: one-way imports

ROOT = IVR.parent
APP = ROOT / "app"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path: Path, known: set[str]) -> set[str]:
    """Every module this file imports, at the top or inside a function, resolved to a file we have."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                stem = f"{base}.{node.module}" if node.module else base
            else:
                stem = node.module or ""
            # `from app.services import calls` imports the module app.services.calls
            targets = [f"{stem}.{alias.name}" for alias in node.names] + [stem]
        else:
            continue
        for target in targets:
            # the longest known module the name starts with: `app.models.Call` -> `app.models`
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != module:
                found.add(target)
    return found


def _app_import_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in APP.rglob("*.py")}
    known = set(paths)
    return {name: _imported_modules(path, known) for name, path in paths.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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


def test_the_import_graph_reads_imports_inside_functions_too() -> None:
    graph = _app_import_graph()
    assert "app.services.reminders" in graph["app.services.calls"]
    assert "app.scheduler" in graph["app.cli"]  # imported inside a command
    assert "app.services.cursor" in graph["app.services.upsert"]


def test_app_modules_import_each_other_one_way_only() -> None:
    cycles = _cycles(_app_import_graph())
    assert not cycles, f"import cycles among app modules: {cycles}"


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_only_the_command_line_and_the_tests_use_the_simulator() -> None:
    users = {
        name
        for name, imported in _app_import_graph().items()
        if any(m == "app.simulator" or m.startswith("app.simulator.") for m in imported)
        and not name.startswith("app.simulator")
    }
    assert users == {"app.cli"}
    for path in (ROOT / "scripts").rglob("*.py"):
        assert "app.simulator" not in path.read_text(), f"{path.name} uses the simulator"
