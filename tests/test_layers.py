"""One-way layers: ``jobs/`` may import ``webapp``, nothing under ``webapp/``
imports ``jobs`` (at module level or inside a function), so the web app
enqueues jobs by dotted name (``services/jobqueue.py``) and the periodic-job
table is data (``services/schedule.py``)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WEBAPP = ROOT / "webapp"


def _imported_modules(tree: ast.AST, module: str) -> list[tuple[int, str]]:
    """Every module an Import/ImportFrom anywhere in ``tree`` names, made
    absolute for relative imports of ``module`` (a dotted name)."""
    found = []
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            if not node.module or node.level:  # ``from . import x``: x may be a module
                found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
    return found


def _is_jobs(name: str) -> bool:
    return name == "jobs" or name.startswith("jobs.")


def _webapp_modules() -> list[Path]:
    return sorted(WEBAPP.rglob("*.py"))


def test_the_checker_sees_every_form_of_import():
    source = ("import jobs\nimport jobs.email as e\nfrom jobs import schedule\nfrom jobs.worker import QUEUES\n"
              "def f():\n    from jobs.coops import aggregate_coop_hashrate\n"
              "import webapp.jobs\nfrom .jobs import x\n")
    names = [name for _, name in _imported_modules(ast.parse(source), "webapp.cli.demo")]
    assert [n for n in names if _is_jobs(n)] == ["jobs", "jobs.email", "jobs", "jobs.worker",
                                                  "jobs.coops"]
    assert "webapp.cli.jobs" in names  # a relative import stays inside webapp


@pytest.mark.parametrize("path", _webapp_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_under_webapp_imports_jobs(path: Path):
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if path.name == "__init__.py":
        module += ".__init__"  # its relative imports start at the package itself
    offending = [f"line {line}: {name}" for line, name in _imported_modules(ast.parse(path.read_text()), module)
                 if _is_jobs(name)]
    assert not offending, f"{path.relative_to(ROOT)} imports jobs ({', '.join(offending)})"


# ---- services: imports at the top, and no cycle among them ---------------------------

SERVICES = WEBAPP / "services"


def _module_name(path: Path) -> str:
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return module + ".__init__" if path.name == "__init__.py" else module


def _node_of(module: str) -> str:
    return module.removesuffix(".__init__")


def _service_graph() -> dict[str, set[str]]:
    """Service module -> the service modules its top-level imports name."""
    paths = sorted(SERVICES.rglob("*.py"))
    nodes = {_node_of(_module_name(p)) for p in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        module = _module_name(path)
        top = ast.Module(body=[n for n in ast.parse(path.read_text()).body
                              if isinstance(n, ast.Import | ast.ImportFrom)], type_ignores=[])
        graph[_node_of(module)] = {name for _, name in _imported_modules(top, module)
                                   if name in nodes and name != _node_of(module)}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_service_imports_another_inside_a_function():
    """A function-level import is how a cycle hides; services import each
    other at the top, so the graph below is the whole truth."""
    hidden = []
    for path in sorted(SERVICES.rglob("*.py")):
        module = _module_name(path)
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                hidden += [f"{path.relative_to(ROOT)}:{line} {name}"
                           for line, name in _imported_modules(func, module) if name.startswith("webapp")]
    assert hidden == []


def test_services_import_each_other_without_a_cycle():
    graph = _service_graph()
    assert "webapp.services.notifications" in graph["webapp.services.activity"]  # the graph is read
    assert _cycle(graph) is None
