"""The import graph of the library and the plugin: no module imports one that imports it back."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
PACKAGES = ("alignment", "plugins")


def imports_of(path: Path) -> set[str]:
    """Modules of ours that ``path`` imports anywhere (a function's import too), except for type checking."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    checking_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
        for statement in block.body
        for node in ast.walk(statement)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in checking_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def module_graph() -> dict[str, set[str]]:
    modules = {
        ".".join(path.relative_to(PROJECT).with_suffix("").parts): path
        for package in PACKAGES
        for path in (PROJECT / package).rglob("*.py")
        if path.name != "__init__.py"
    }
    return {name: imports_of(path) & modules.keys() - {name} for name, path in modules.items()}


def cycle_in(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path that ends where it starts, or None."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        for imported in sorted(graph[module]):
            found = visit(imported, [*path, module])
            if found:
                return found
        done.add(module)
        return None

    for module in sorted(graph):
        found = visit(module, [])
        if found:
            return found
    return None


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = module_graph()
    assert "alignment.registry" in graph["alignment.pipeline"]  # the graph is read at all
    assert cycle_in(graph) is None


def test_a_cycle_is_found() -> None:
    assert cycle_in({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle_in({"a": {"b"}, "b": set()}) is None


def test_a_worker_does_not_load_the_controllers_side() -> None:
    """An xdist worker imports the plugin and the collected module, and nothing the controller alone uses."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, plugins.alignment_plugin, alignment.test_branches; print(*sys.modules)"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "plugins.handoff" in loaded
    controller_side = {"plugins.controller", "plugins.scheduler", "alignment.ledger", "alignment.html_report"}
    assert controller_side.isdisjoint(loaded)


def test_nothing_of_ours_warns_when_imported() -> None:
    """The suite's warnings-are-errors filter (tests/conftest.py, not pyproject.toml: a run of the harness keeps
    pytest's defaults) starts once that file is loaded, after what it imports: every module is checked here."""
    modules = [name for name in sorted(module_graph()) if not name.endswith("__main__")]
    imported = subprocess.run(
        [sys.executable, "-W", "error", "-c", IMPORT_ALL, "conftest", "tests.conftest", *modules],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (imported.returncode, imported.stderr) == (0, "")
    assert imported.stdout.split() == ["conftest", "tests.conftest", *modules]


IMPORT_ALL = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n    print(name)"
