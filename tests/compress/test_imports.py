"""The import layers of docs/architecture.md hold for every module of ``compress``, imports
inside functions included: no module imports a higher layer, and no modules import each
other in a circle. Imports under ``if TYPE_CHECKING:`` are annotations, not imports, and
are left out."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Layers from the bottom up: a module may import its own layer and those below. A module
#: belongs to the longest prefix listed; every module not listed is the foundation (0).
LAYERS = {
    "compress.planner.profiles": 0,  # the data layer: profiles/ as dicts, read by every layer
    "compress.model": 1,
    "compress.methods": 2, "compress.variants": 2, "compress.engines": 2,
    "compress.planner": 3,
    "compress.sources": 4, "compress.synthetic": 4, "compress.loading": 4, "compress.gguf_vocab": 4,
    "compress.gguf_writer": 4, "compress.llamacpp": 4, "compress.spm_tokenizer": 4,
    "compress.apply": 5, "compress.algorithms": 5,
    "compress.measure": 6,
    "compress.metrics": 2,
    "compress.verdict": 7, "compress.report": 7, "compress.review": 7, "compress.doctor": 7, "compress.plots": 7,
    "compress.commands": 8,
}
LAYER_NAMES = ("foundation", "model", "vocabulary", "planner", "model files", "apply", "measure", "views",
               "commands")

#: Edges that still go up a layer, each with the reason it stays; a new one fails the test,
#: and so does an entry here that no longer holds.
KNOWN_UPWARD = {
    ("compress.planner.measured", "compress.sources"):
        "bench records name a local model by its fingerprint, which only sources knows",
    ("compress.planner.serving", "compress.sources"):
        "a review's `compress apply --model` line names the default model as sources does",
    ("compress.apply.evaluation", "compress.measure.perplexity"):
        "held-out perplexity after pruning is computed by the bench's own code path",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in (ROOT / "compress").rglob("*.py")}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for n in ast.walk(node)}
    return skipped


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The compress modules ``path`` imports anywhere in its body (``from pkg import submodule``
    counts as the submodule)."""
    tree = ast.parse(path.read_text())
    skipped = _type_checking_nodes(tree)
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                    for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return {m for m in out if m in modules}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def layer(module: str) -> int:
    prefixes = [p for p in LAYERS if module == p or module.startswith(p + ".")]
    return LAYERS[max(prefixes, key=len)] if prefixes else 0


def _cycle_from(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A shortest circle of imports through ``start``, or None."""
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        for nxt in sorted(graph[path[-1]]):
            if nxt == start:
                return path
            if nxt not in seen:
                seen.add(nxt)
                paths.append([*path, nxt])
    return None


def test_no_module_imports_a_higher_layer():
    upward = {(a, b) for a, targets in _graph().items() for b in targets if layer(b) > layer(a)}
    new = sorted(upward - set(KNOWN_UPWARD))
    assert not new, "imports of a higher layer:\n" + "\n".join(
        f"  {a} ({LAYER_NAMES[layer(a)]}) -> {b} ({LAYER_NAMES[layer(b)]})" for a, b in new)
    gone = sorted(set(KNOWN_UPWARD) - upward)
    assert not gone, f"no longer imported, drop from KNOWN_UPWARD: {gone}"


def test_no_import_circles():
    graph = _graph()
    circles = {tuple(sorted(c)) for m in graph if (c := _cycle_from(graph, m))}
    assert not circles, "modules that import each other in a circle:\n" + "\n".join(
        "  " + " -> ".join(c) for c in sorted(circles))


@pytest.mark.parametrize("source, expected", [
    ("import compress.planner.spec\n", {"compress.planner.spec"}),
    ("def f():\n    from compress.planner import formats, make_plan\n", {"compress.planner.formats", "compress.planner"}),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from compress.planner.spec import x\n", set()),
])
def test_the_scan_sees_function_level_imports_and_skips_annotations(tmp_path, source, expected):
    path = tmp_path / "m.py"
    path.write_text(source)
    assert _imports(path, _modules()) == expected


def test_a_violation_is_caught():
    assert layer("compress.methods.gguf") < layer("compress.planner.formats") < layer("compress.measure.sweep")
    assert layer("compress.planner.profiles") == 0 and layer("compress.errors") == 0
