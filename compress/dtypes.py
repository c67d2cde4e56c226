"""The floating-point dtypes the suite loads and saves models in: their torch names, the short
names variants and kernel tables use (``fp16``), and their sizes."""

from __future__ import annotations

from typing import Any

from compress.errors import UserInputError

DTYPES = ("float32", "float16", "bfloat16")
#: short name (``bf16``, as variant names and profiles/kernels.toml write it) → torch name.
TORCH_NAMES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
#: torch name → short name.
SHORT_NAMES = {torch: short for short, torch in TORCH_NAMES.items()}
#: Bytes of one element.
BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


def torch_name(name: str) -> str | None:
    """The torch name of a dtype written either way (``bf16`` or ``bfloat16``); None if neither."""
    return name if name in BYTES else TORCH_NAMES.get(name)


def torch_dtype(name: str) -> Any:
    """The ``torch.dtype`` of ``name`` (one of :data:`DTYPES`)."""
    import torch

    if name not in DTYPES:
        raise UserInputError(f"dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    return getattr(torch, name)
