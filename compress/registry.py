"""Lazy registries: plain dicts of ``"module:attr"`` strings, resolved on first use.

Keeping the heavy modules behind strings means that listing or validating names
imports nothing (no torch in the planner's path).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Mapping
from typing import Any

from compress.errors import UserInputError


def suggest(name: str, choices: Iterable[str], what: str) -> UserInputError:
    """An error for an unknown ``name`` that lists close matches (or all choices)."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name.lower(), [c.lower() for c in choices], n=3, cutoff=0.5)
    if close:
        hint = "did you mean " + ", ".join(repr(c) for c in close) + "?"
    else:
        shown = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
        hint = f"choose one of: {shown}"
    return UserInputError(f"unknown {what} {name!r}: {hint}")


def lookup(registry: Mapping[str, str], name: str, what: str) -> Any:
    """Import and return the object registered under ``name``."""
    if name not in registry:
        raise suggest(name, registry, what)
    module_name, _, attr = registry[name].partition(":")
    return getattr(importlib.import_module(module_name), attr)
