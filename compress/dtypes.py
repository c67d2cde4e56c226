"""The floating-point dtypes the suite loads and saves models in, by their torch names."""

from __future__ import annotations

from typing import Any

from compress.errors import UserInputError

DTYPES = ("float32", "float16", "bfloat16")


def torch_dtype(name: str) -> Any:
    """The ``torch.dtype`` of ``name`` (one of :data:`DTYPES`)."""
    import torch

    if name not in DTYPES:
        raise UserInputError(f"dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    return getattr(torch, name)
