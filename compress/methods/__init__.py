"""The method registry: method name → its descriptor class, as a lazy ``"module:Class"`` string.

Each method describes itself in one module (``compress/methods/<name>.py``, a
:class:`compress.methods.base.Method` subclass): its config, grammar, storage layout,
kernels, quality source and apply function. Adding a method is that module plus one row
here. Descriptor modules import nothing heavy, so the planner can read them.
"""

from __future__ import annotations

from functools import cache

from compress.methods.base import Method, MethodConfig, bad_variant
from compress.registry import lookup

#: method name → ``"module:Class"``. The order is the order names are tried when parsing.
METHODS = {
    "baseline": "compress.methods.baseline:Baseline",
    "bnb": "compress.methods.bnb:Bnb",
    "gptq": "compress.methods.gptq:Gptq",
    "awq": "compress.methods.awq:Awq",
    "gguf": "compress.methods.gguf:Gguf",
    "prune": "compress.methods.prune:Prune",
    "layerdrop": "compress.methods.layerdrop:Layerdrop",
    "distill": "compress.methods.distill:Distill",
    "onnx": "compress.methods.onnx:Onnx",
    "fp8": "compress.methods.fp8:Fp8",
    "w8a8": "compress.methods.w8a8:W8a8",
    "nvfp4": "compress.methods.microscaling:Nvfp4",
    "mxfp4": "compress.methods.microscaling:Mxfp4",
}


@cache
def descriptor(name: str) -> type[Method]:
    """The descriptor of method ``name``; an unknown name raises with the close matches."""
    return lookup(METHODS, name, "method")


def descriptors() -> list[type[Method]]:
    return [descriptor(name) for name in METHODS]


def aliases() -> dict[str, str]:
    """Bare names of every method and the variant each stands for."""
    return {alias: target for d in descriptors() for alias, target in d.aliases.items()}


def parse_step(text: str) -> tuple[str, MethodConfig]:
    """``(method name, config)`` of one step string such as ``gptq-4-g64``."""
    s = text.strip().lower()
    s = aliases().get(s, s)
    for d in descriptors():
        config = d.parse(s)
        if config is not None:
            return d.name, config
    raise bad_variant(text, "not a known variant name")


__all__ = ["METHODS", "Method", "MethodConfig", "aliases", "descriptor", "descriptors", "parse_step"]
