"""The package's import graph follows the pipeline: no module imports from a layer below it in the pipeline.

Layers, first to last: the shared foundations (``paths``, ``stats``, ``outputs``), ``prompts``, ``harness``, ``attacks``,
``judges``, ``train`` (its data uses the attack wrappers and a judge) and ``activations`` (beside it: it reads the
same local checkpoints), ``experiments``, ``book``, and on top ``parameters``, ``experiment``, ``pipeline``, ``stability`` and ``cli``.
Every import counts, including the lazy ones inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "personalab"

LAYERS: dict[str, int] = {
    "paths": 0, "stats": 0, "outputs": 0, "prompts": 1, "harness": 2, "attacks": 3, "judges": 4, "train": 5, "activations": 5,
    "experiments": 6, "book": 7, "parameters": 8, "experiment": 8, "pipeline": 8, "stability": 8, "cli": 8,
}


def layer_of(dotted: str) -> str | None:
    """The layer name of a ``personalab.X...`` module path, or None for the package root itself."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else None


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(name: str, is_package: bool, source: str) -> list[tuple[int, str]]:
    """Every ``personalab`` module that ``source`` (the module ``name``) imports, with its line; relative
    imports resolved."""
    package = name if is_package else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("personalab")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "personalab":  # ``from personalab import attacks``: each name is a module
                found += [(node.lineno, f"personalab.{a.name}") for a in node.names]
            elif target.startswith("personalab"):
                found.append((node.lineno, target))
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_top_level_module_has_a_layer():
    tops = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in SOURCES} - {"__init__"}
    assert tops <= set(LAYERS), f"modules without a layer: {sorted(tops - set(LAYERS))}"


def upward_imports(name: str, is_package: bool, source: str) -> list[str]:
    """The imports of a module that reach a later layer than its own."""
    own = layer_of(name)
    if own is None:
        return []
    return [f"line {line}: {target}" for line, target in imported_modules(name, is_package, source)
            if (other := layer_of(target)) is not None and LAYERS[other] > LAYERS[own]]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_runs_back_up_the_pipeline(path: Path):
    upward = upward_imports(module_name(path), path.name == "__init__.py", path.read_text(encoding="utf-8"))
    assert not upward, f"{path.relative_to(PACKAGE)} imports from later layers: {upward}"


def test_the_check_sees_upward_imports_absolute_and_relative():
    source = "import json\nfrom personalab.stats import rate\ndef f():\n    from personalab.book import pct\n" \
             "    from ..experiments import depth\n    from . import cache\n"
    assert upward_imports("personalab.harness.client", False, source) == [
        "line 4: personalab.book", "line 5: personalab.experiments"]
    assert upward_imports("personalab.book.figures", False, source) == []
