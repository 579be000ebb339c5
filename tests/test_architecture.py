"""The engine's folders are its layers: a module imports only its own level or lower ones,
and no two modules import each other, even through others (imports inside functions
count too: they are how cycles used to hide)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parent.parent / "lakehouse"
# lowest first: each level may use the ones before it, never the ones after
LEVELS = ("core", "coordination", "io", "declare", "layers", "ops", "runtime")


def _module(path: Path) -> str:
    parts = path.relative_to(ENGINE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Module -> the engine modules it imports, anywhere in its code."""
    modules = {_module(p): p for p in ENGINE.rglob("*.py")}
    found: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    dotted = f"{node.module}.{alias.name}"
                    targets.add(dotted if dotted in modules else node.module)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
        found[name] = {t for t in targets if t in modules and t != name}
    return found


def _level(module: str) -> int | None:
    parts = module.split(".")
    return LEVELS.index(parts[1]) if len(parts) > 1 and parts[1] in LEVELS else None


def test_every_module_lives_in_a_level():
    loose = [m for m in _imports() if m != "lakehouse" and _level(m) is None]
    assert not loose, f"modules outside {LEVELS}: {loose}"


def test_no_module_imports_a_higher_level():
    upward = [
        f"{module} -> {target}"
        for module, targets in _imports().items()
        for target in targets
        if module != "lakehouse" and _level(target) is not None and _level(target) > _level(module)
    ]
    assert not upward, "\n".join(sorted(upward))


def test_no_import_cycles():
    graph = _imports()
    graph.pop("lakehouse", None)
    cycles, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


@pytest.mark.parametrize("path", sorted(ENGINE.rglob("*.py")), ids=lambda p: _module(p))
def test_no_module_is_long(path):
    lines = len(path.read_text().splitlines())
    assert lines <= 350, f"{path.relative_to(ENGINE.parent)}: {lines} lines; split it"
