"""The package's layers point one way: no import cycles (counting imports inside functions
and under TYPE_CHECKING), no underscored name imported across modules, and the queue core
never importing the simulator, the service or the notebook stack."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "jobsim"
CORE = {
    "errors", "keys", "limits", "config", "retry", "models", "scripts", "leases", "tasks",
    "requests", "builtin_tasks", "logs", "failures", "periodic", "scheduler",
    "connection", "clusters", "localcluster", "localredis",
    "control", "inspection", "dead_letters", "queue",
    "books", "pool_settings", "worker", "threads", "slot", "procs", "pool", "pool_process",
}  # fmt: skip
EDGE_LIBRARIES = ("pandas", "numpy", "matplotlib", "ipywidgets", "fastapi", "uvicorn")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(imported module, names) for every import in the file, wherever it sits."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for target, names in _imports(path):
            candidates = [target] + [f"{target}.{n}" for n in names]
            for c in candidates:
                if c in modules and c != name and not (name.startswith(c + ".") or c == "jobsim"):
                    graph[name].add(c)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_has_no_cycle() -> None:
    assert _cycle(_graph()) is None


def test_no_underscored_name_is_imported_from_another_module() -> None:
    offenders = [
        f"{_module_name(path)} imports {target}.{name}"
        for path in PACKAGE.rglob("*.py")
        for target, names in _imports(path)
        if target.startswith("jobsim")
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert offenders == []


def test_the_core_imports_nothing_above_it() -> None:
    graph = _graph()

    def in_core(module: str) -> bool:
        return module.removeprefix("jobsim.").split(".")[0] in CORE

    for name in [m for m in graph if in_core(m)]:
        above = {m for m in graph[name] if not in_core(m)}
        assert above == set(), f"{name} imports {above}"
    for module in CORE:
        path = PACKAGE / f"{module}.py"
        files = [path] if path.exists() else list((PACKAGE / module).rglob("*.py"))
        libraries = {t for f in files for t, _ in _imports(f)}
        assert not any(t.split(".")[0] in EDGE_LIBRARIES for t in libraries), (module, libraries)
