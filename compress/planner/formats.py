"""True storage size of each format: weights are sized per tensor from byte layouts.

Each method's descriptor (:mod:`compress.methods`) sizes a tensor in its own layout (the
GGUF type-mixing rules are :mod:`compress.methods.gguf`'s); this module owns the sums over
the model's tensors (:func:`compress.model.tensors.tensors`, named the way llama.cpp names
them). :func:`tensor_bytes` sizes one tensor in one format,
and :func:`weight_bytes` sums them for a variant: GGUF per-tensor type mixes, GPTQ/AWQ packed
ints with their per-group scales/zeros, NF4 with its (double-quantized) absmax, LLM.int8 with
its row scales. Layouts and block sizes are data (``profiles/formats.toml``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from compress import variants
from compress.model.spec import ModelSpec
from compress.model.tensors import Tensor, tensors
from compress.planner import profiles

@lru_cache(maxsize=64)
def _tensors(spec: ModelSpec) -> tuple[Tensor, ...]:
    return tuple(tensors(spec))


def formats() -> dict[str, Any]:
    return profiles.load("formats.toml")


# --- Hugging Face formats ---------------------------------------------------------------------

def tensor_bytes(t: Tensor, step: variants.Step, spec: ModelSpec, *, sparse_storage: bool = False,
                 fmt: dict[str, Any] | None = None) -> int:
    """Bytes of one tensor stored in the format of ``step`` (the method's descriptor knows its layout)."""
    return step.descriptor.tensor_bytes(t, step.settings, spec, fmt or formats(), sparse_storage=sparse_storage)


# --- variants -----------------------------------------------------------------------------------

def variant_spec(spec: ModelSpec, variant: variants.Variant) -> ModelSpec:
    """The architecture after the variant's structural steps (layer drop, distillation)."""
    out = spec
    for step in variant.steps:
        out = step.descriptor.model_spec(step.settings, out)
    return out


def storage_step(variant: variants.Variant) -> variants.Step:
    """The step that decides the storage format: the last one, or fp16 after structural steps."""
    last = variant.steps[-1]
    if not last.descriptor.stores_weights:
        return variants.Step("baseline", {"dtype": "float16"})
    return last


def weight_bytes(spec: ModelSpec, variant: variants.Variant | str, *, sparse_storage: bool = False) -> int:
    """Bytes of all weights of ``spec`` stored as ``variant`` (GGUF: plus file metadata)."""
    v = variants.parse(variant) if isinstance(variant, str) else variant
    return _weight_bytes(spec, v.name, sparse_storage, str(profiles.profiles_dir()))


@lru_cache(maxsize=4096)
def _weight_bytes(spec: ModelSpec, variant_name: str, sparse_storage: bool, _profiles: str) -> int:
    v = variants.parse(variant_name)
    model = variant_spec(spec, v)
    step = storage_step(v)
    fmt = formats()
    total = sum(tensor_bytes(t, step, model, sparse_storage=sparse_storage, fmt=fmt) for t in _tensors(model))
    return total + step.descriptor.extra_file_bytes(step.settings, model)
