"""The package's shape: wings in data-flow order, imports one way, no cycles (lazy imports count).

    cli ─► tools ─► api ─► config ─► tasks ─► models / decoding / training ─► nn / data ─► errors

A module may import its own wing and the wings below it, never one above: the library never
imports tools/, nothing below the API imports api/cli, and no pair of modules imports each other
through any path, not even inside a function.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rnncli"

# wing -> rank; a module imports only modules of an equal or lower rank
RANK = {
    "errors": 0,
    "nn": 1, "data": 1, "metrics": 1,
    "schema": 2, "models": 2,
    "decoding": 3, "training": 3,
    "tasks": 4,
    "config": 5,
    "api": 6,
    "tools": 7,
    "cli": 8,
    "__main__": 9,
}
MAX_ROOT_MODULES = 8


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every rnncli module `name` imports, anywhere in the file (function bodies included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target != "rnncli":
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _wing(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "rnncli"


def test_every_wing_has_a_rank():
    wings = {_wing(m) for m in _modules()} - {"rnncli"}
    assert wings <= set(RANK), f"new wing(s) {wings - set(RANK)}: give them a place in RANK"


def test_imports_run_one_way():
    wrong = [f"{a} -> {b}" for a, targets in _graph().items() for b in targets
             if a != "rnncli" and RANK[_wing(a)] < RANK[_wing(b)]]
    assert not wrong, "imports that run up the layers:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target, stack + [target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_library_never_imports_tools():
    users = sorted(a for a, targets in _graph().items()
                   if _wing(a) not in ("tools", "cli", "__main__") and any(_wing(b) == "tools" for b in targets))
    assert not users


def test_the_root_stays_small():
    root = [p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert len(root) <= MAX_ROOT_MODULES, sorted(root)


def test_the_checker_sees_lazy_imports(tmp_path):
    """An import inside a function body counts (the old cycles hid behind such imports)."""
    fake = tmp_path / "x.py"
    fake.write_text("def f():\n    from rnncli.api import train\n")
    assert _imports("rnncli.nn.x", fake, {"rnncli.nn.x", "rnncli.api"}) == {"rnncli.api"}
