"""The engine registry: engine name → its descriptor class, as a lazy ``"module:Class"`` string.

Each engine describes itself in one module (``compress/engines/<name>.py``, a
:class:`compress.engines.base.Engine` subclass): the formats it opens, its rows in
``profiles/runtimes.toml``, its serve command and its bench adapter. Adding an engine is
that module, one row here and its data rows. Descriptor modules import nothing heavy, so
the planner reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from compress.engines.base import Engine
from compress.errors import UserInputError
from compress.registry import lookup

#: engine name → ``"module:Class"``, in the order help texts list them.
ENGINES = {
    "vllm": "compress.engines.vllm:Vllm",
    "llama.cpp": "compress.engines.llama_cpp:LlamaCpp",
    "transformers": "compress.engines.transformers:Transformers",
    "onnxruntime": "compress.engines.onnxruntime:OnnxRuntime",
    "mlx": "compress.engines.mlx:Mlx",
}
#: ``--engine any``: each candidate takes the first engine of its format that runs on the device.
ANY = "any"
#: The engine of an artifact that names none, and of a format no engine list names.
DEFAULT = "transformers"


@cache
def engine(name: str) -> type[Engine]:
    """The descriptor of engine ``name``; an unknown name raises with the close matches."""
    return lookup(ENGINES, name, "engine")


def descriptors() -> list[type[Engine]]:
    return [engine(name) for name in ENGINES]


def check(name: str) -> str:
    """``name`` if it is a registered engine or "any", else a user error listing them."""
    if name not in (*ENGINES, ANY):
        raise UserInputError(f"unknown engine {name!r}: expected one of {', '.join((*ENGINES, ANY))}")
    return name


def loading(fmt: str, method: str, config: Mapping[str, Any]) -> list[str]:
    """The engines that open an artifact of ``fmt`` written by ``method`` (a manifest's ``loads_in``)."""
    return [d.name for d in descriptors() if d.loads(fmt, method, config)]


def measurable() -> list[str]:
    """The engines ``compress bench`` runs (those with an adapter)."""
    return [d.name for d in descriptors() if d.adapter]


def adapter(name: str) -> Any:
    """The bench adapter class of engine ``name``; a user error where bench cannot run it."""
    if name not in ENGINES:
        raise UserInputError(f"unknown runtime {name!r}: expected one of {', '.join(measurable())}")
    target = engine(name).adapter
    if target is None:
        raise UserInputError(f"compress bench cannot run {name} here: use one of {', '.join(measurable())}")
    return lookup({name: target}, name, "runtime")


__all__ = ["ANY", "DEFAULT", "ENGINES", "Engine", "adapter", "check", "descriptors", "engine", "loading", "measurable"]
