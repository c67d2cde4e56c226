"""True storage size of each format: weights are sized per tensor from byte layouts.

Each method's descriptor (:mod:`compress.methods`) sizes a tensor in its own layout;
this module owns the model's tensor list, the GGUF type-mixing rules and the sums.
:func:`tensors` lists the tensors of a model spec the way llama.cpp names them
(``token_embd``, ``blk.N.attn_q`` ...). :func:`tensor_bytes` sizes one tensor in one format,
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
from compress.planner import profiles
from compress.planner.spec import ModelSpec, family_members, with_layers

LINEAR_ROLES = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


@dataclass(frozen=True)
class Tensor:
    """One weight tensor: ``cols`` is the row length (input features, GGUF ne0)."""

    role: str  # token_embd, output, attn_q ... ffn_down, router, vector
    layer: int | None
    rows: int
    cols: int
    count: int = 1  # stacked experts

    @property
    def numel(self) -> int:
        return self.rows * self.cols * self.count

    @property
    def is_linear(self) -> bool:
        return self.role in LINEAR_ROLES


def tensors(spec: ModelSpec) -> list[Tensor]:
    """Every weight tensor of ``spec``; 1-D tensors (norms, biases) are role ``vector``."""
    h, q_out, kv_out = spec.hidden, spec.heads * spec.head_dim, spec.kv_heads * spec.head_dim
    out = [Tensor("token_embd", None, spec.vocab, h)]
    if not spec.tied_embeddings:
        out.append(Tensor("output", None, spec.vocab, h))
    out.append(Tensor("vector", None, 1, h))  # final norm
    for i in range(spec.layers):
        out += [Tensor("attn_q", i, q_out, h), Tensor("attn_k", i, kv_out, h),
                Tensor("attn_v", i, kv_out, h), Tensor("attn_output", i, h, q_out),
                Tensor("ffn_gate", i, spec.intermediate, h, spec.experts),
                Tensor("ffn_up", i, spec.intermediate, h, spec.experts),
                Tensor("ffn_down", i, h, spec.intermediate, spec.experts),
                Tensor("vector", i, 1, spec.norms_per_layer * h)]
        if spec.qkv_bias:
            out.append(Tensor("vector", i, 1, q_out + 2 * kv_out))
        if spec.experts > 1:
            out.append(Tensor("router", i, spec.experts, h))
    return out


@lru_cache(maxsize=64)
def _tensors(spec: ModelSpec) -> tuple[Tensor, ...]:
    return tuple(tensors(spec))


def formats() -> dict[str, Any]:
    return profiles.load("formats.toml")


# --- GGUF ---------------------------------------------------------------------------------------

def gguf_type_bytes(qtype: str, numel: int, fmt: dict[str, Any] | None = None) -> int:
    """Bytes of ``numel`` weights stored as GGML type ``qtype`` (whole blocks)."""
    block_bytes, block_weights = (fmt or formats())["gguf_block"][qtype]
    return math.ceil(numel / block_weights) * block_bytes


def _more_bits(layer: int, layers: int) -> bool:
    """llama.cpp's use_more_bits(): the first and last eighth, and every third layer between."""
    eighth = layers // 8
    return layer < eighth or layer >= 7 * layers // 8 or (layer - eighth) % 3 == 2


def _rule_applies(layers_rule: str, layer: int | None, layers: int) -> bool:
    if layers_rule == "all" or layer is None:
        return True
    if layers_rule == "more_bits":
        return _more_bits(layer, layers)
    if layers_rule.startswith("first:"):
        return layer < int(layers_rule.split(":", 1)[1])
    raise ValueError(f"unknown layer rule {layers_rule!r} in formats.toml")


def gguf_tensor_type(ftype: str, tensor: Tensor, spec: ModelSpec, fmt: dict[str, Any] | None = None, *,
                     fit_blocks: bool = True) -> str:
    """The GGML type llama.cpp's quantizer gives ``tensor`` in file type ``ftype``; with
    ``fit_blocks=False``, the type the file type's mix names before rows that do not fit its
    blocks fall back to another."""
    fmt = fmt or formats()
    mix = fmt["gguf_ftype"][ftype]
    if tensor.role in ("vector", "router"):
        return "F32"
    role = "output" if tensor.role == "token_embd" and spec.tied_embeddings else tensor.role
    qtype = mix["base"]
    rule = mix.get(role)
    if isinstance(rule, str):
        qtype = rule
    elif rule is not None:
        for option in rule if isinstance(rule, list) else [rule]:
            if _rule_applies(option.get("layers", "all"), tensor.layer, spec.layers):
                qtype = option["type"]
                break
    block_weights = fmt["gguf_block"][qtype][1]
    if fit_blocks and tensor.cols % block_weights:
        qtype = fmt["gguf_k_fallback"].get(qtype, "F16")
        if tensor.cols % fmt["gguf_block"][qtype][1]:
            qtype = "F16"
    return qtype


def gguf_metadata_bytes(spec: ModelSpec) -> int:
    meta = formats()["gguf_file"]
    return spec.vocab * meta["metadata_bytes_per_token"] + len(tensors(spec)) * meta["header_bytes_per_tensor"]


# --- Hugging Face formats ---------------------------------------------------------------------

def tensor_bytes(t: Tensor, step: variants.Step, spec: ModelSpec, *, sparse_storage: bool = False,
                 fmt: dict[str, Any] | None = None) -> int:
    """Bytes of one tensor stored in the format of ``step`` (the method's descriptor knows its layout)."""
    return step.descriptor.tensor_bytes(t, step.settings, spec, fmt or formats(), sparse_storage=sparse_storage)


# --- variants -----------------------------------------------------------------------------------

def student_spec(spec: ModelSpec, student_layers: int) -> ModelSpec:
    """The distillation student: the family member with that many layers, else the same width."""
    for member in family_members(spec):
        if member.layers == student_layers and member.params < spec.params:
            return member
    return with_layers(spec, student_layers, name=f"{spec.name}-student-{student_layers}l")


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


def gguf_type_mix(spec: ModelSpec, ftype: str) -> dict[str, int]:
    """How many weights each GGML type holds in ``ftype`` (for explaining a mixed file)."""
    mix: dict[str, int] = {}
    for t in tensors(spec):
        qtype = gguf_tensor_type(ftype, t, spec)
        mix[qtype] = mix.get(qtype, 0) + t.numel
    return mix


def bits_per_weight(spec: ModelSpec, variant: variants.Variant | str) -> float:
    """Average stored bits per parameter, everything included."""
    v = variants.parse(variant) if isinstance(variant, str) else variant
    return 8 * weight_bytes(spec, v) / variant_spec(spec, v).params
