"""Every model or tokenizer load in compress/ says trust_remote_code explicitly.

transformers asks on the terminal whether to run a folder's code when the argument is
left out, and ``yes | compress ...`` would answer it; an explicit value never asks.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "compress"
#: Calls that load a model, config or tokenizer from a folder and accept trust_remote_code.
LOADERS = ("from_pretrained", "GPTQModel.load", "LLM")


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}" if isinstance(func.value, ast.Name | ast.Attribute) else func.attr
    return func.id if isinstance(func, ast.Name) else ""


def test_every_load_passes_trust_remote_code():
    calls, missing = 0, []
    for file in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and _name(node.func).endswith(LOADERS):
                calls += 1
                if not any(k.arg == "trust_remote_code" for k in node.keywords):
                    missing.append(f"{file.relative_to(PACKAGE.parent)}:{node.lineno} {_name(node.func)}")
    assert calls >= 4  # the check sees the loads (a test that cannot fail is not a test)
    assert not missing, "loads without an explicit trust_remote_code: " + ", ".join(missing)
