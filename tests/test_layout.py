"""The package layout: modules of one concept, and imports that flow one way (docs/architecture.md).

Layers, lowest first; a module may import its own layer and the ones below,
never one above. Imports anywhere in a file count, inside functions and
``TYPE_CHECKING`` blocks too. The ``mnistcnn`` package's ``__init__`` (the
lazy public API) and ``__main__`` sit above every layer.
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "mnistcnn"

#: A module is split by meaning, not by a line count: past WARN_LINES it is worth a look
#: (does it hold two concepts?), past MAX_LINES it certainly does.
WARN_LINES = 500
MAX_LINES = 700

LAYERS: dict[str, int] = {
    "mnistcnn.errors": 0,
    "mnistcnn._io": 0,
    "mnistcnn._text": 0,
    "mnistcnn.config": 0,
    "mnistcnn.prepare": 1,
    "mnistcnn.data": 2,
    "mnistcnn.models": 2,
    "mnistcnn.artifact": 3,
    "mnistcnn.engine": 4,
    "mnistcnn.evaluation": 4,
    "mnistcnn.predict": 5,
    "mnistcnn.explain": 5,
    "mnistcnn.serve": 6,
    "mnistcnn.cli": 7,
}
EXEMPT = {"mnistcnn", "mnistcnn.__main__"}


def _modules() -> list[tuple[str, Path]]:
    """(dotted name, path) of every module of the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append((".".join(parts), path))
    return found


def _layer(module: str) -> int | None:
    """The layer of ``module`` (longest matching prefix), None outside every layer."""
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return LAYERS[prefix]
    return None


def _imported(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, dotted name) of every mnistcnn module ``tree`` imports."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                package = module.split(".")
                package = package if is_package else package[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            # ``from mnistcnn import data``: the name is a submodule (else the package itself)
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "mnistcnn"]


def test_layers_cover_every_module():
    unplaced = [m for m, _ in _modules() if m not in EXEMPT and _layer(m) is None]
    assert not unplaced, f"give these modules a layer in LAYERS: {unplaced}"


@pytest.mark.parametrize("module,path", _modules(), ids=lambda v: str(v))
def test_module_holds_one_concept(module, path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    name = str(path.relative_to(PACKAGE))
    assert lines <= MAX_LINES, f"{name} has {lines} lines (at most {MAX_LINES}): split it"
    if lines > WARN_LINES:
        warnings.warn(
            f"{name} has {lines} lines (over {WARN_LINES}): does it hold more than one concept?",
            stacklevel=1,
        )


def test_imports_flow_one_way():
    wrong = []
    for module, path in _modules():
        if module in EXEMPT:
            continue
        own = _layer(module)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for line, name in _imported(tree, module, path.name == "__init__.py"):
            target = _layer(name)
            if target is not None and own is not None and target > own:
                wrong.append(f"{path.relative_to(SRC)}:{line}: layer {own} imports {name}")
    assert not wrong, "imports against the layers (docs/architecture.md):\n" + "\n".join(wrong)


def test_nothing_imports_cli_or_serve():
    wrong = []
    for module, path in _modules():
        if module in EXEMPT or module.startswith(("mnistcnn.cli", "mnistcnn.serve")):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for line, name in _imported(tree, module, path.name == "__init__.py"):
            if name.startswith(("mnistcnn.cli", "mnistcnn.serve")):
                wrong.append(f"{path.relative_to(SRC)}:{line}: imports {name}")
    assert not wrong, "\n".join(wrong)


def test_import_scan_sees_relative_and_nested_imports():
    source = (
        "import mnistcnn.data\n"
        "from . import idx\n"
        "from ..engine import run_dir\n"
        "def f():\n"
        "    from mnistcnn import cli\n"
    )
    found = _imported(ast.parse(source), "mnistcnn.data.loaders", is_package=False)
    assert [name for _, name in found] == [
        "mnistcnn.data",
        "mnistcnn.data.idx",
        "mnistcnn.engine.run_dir",
        "mnistcnn.cli",
    ]
