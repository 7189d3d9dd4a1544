"""The package's imports go down the layers only, and no module imports itself round a circle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ganvas"

# Lowest first. A module may import modules of its own layer or of lower ones; a package's modules
# belong to the package's layer unless named themselves.
LAYERS = [
    ("ganvas.errors", "ganvas.registry", "ganvas.speed", "ganvas.safe", "ganvas.files"),
    (
        "ganvas.checkpoint",
        "ganvas.data",
        "ganvas.nets",
        "ganvas.losses",
        "ganvas.metrics",
        "ganvas.pool",
        "ganvas.report",
        "ganvas.backends",
        "ganvas.color",
        "ganvas.hints",
    ),
    ("ganvas.options",),
    ("ganvas.models", "ganvas.interop"),
    (
        "ganvas.distributed",
        "ganvas.train",
        "ganvas.infer",
        "ganvas.api",
        "ganvas.export",
        "ganvas.bench",
        "ganvas.edit",
        "ganvas.demo",
        "ganvas.video",
        "ganvas.evaluate",
    ),
    ("ganvas.cli", "ganvas.__main__", "ganvas.studio"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer(module: str) -> int:
    """The layer of a module: that of the longest LAYERS name it is, or lies under."""
    best = max(
        (name for names in LAYERS for name in names if module == name or module.startswith(name + ".")),
        key=len,
        default=None,
    )
    if best is None:
        raise AssertionError(f"{module} is in no layer of tests/test_layers.py; add it where it belongs")
    return next(i for i, names in enumerate(LAYERS) if best in names)


def imports(module: str) -> set[str]:
    """The ganvas modules `module` imports anywhere (module level, functions, TYPE_CHECKING blocks)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            # The package root only lends __version__ (it imports its API lazily); a package may import its parts.
            if target and target != "ganvas" and target != module and not module.startswith(target + "."):
                found.add(target)
    return found


GRAPH = {m: imports(m) for m in MODULES if m != "ganvas"}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_go_down_the_layers(module: str) -> None:
    upward = sorted(t for t in GRAPH[module] if layer(t) > layer(module))
    assert not upward, f"{module} (layer {layer(module)}) imports {upward} from higher layers"


def test_there_is_no_import_circle() -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(GRAPH.get(module, ())):
            if state.get(target) == 1:
                raise AssertionError("import circle: " + " -> ".join(path[path.index(target) :] + [target]))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


def test_the_check_sees_an_upward_import() -> None:
    # The walker must find imports inside functions too (where the old circles hid).
    assert "ganvas.models" in imports("ganvas.api") and layer("ganvas.cli") > layer("ganvas.options")
