"""llama.cpp GGUF files (``q4_k_m``, ``q8_0``, ``gguf-f16`` ...; ``-imatrix`` for an importance matrix)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from compress.methods.base import Method, MethodConfig, QualitySource, Suffix, bad_variant
from compress.model.spec import ModelSpec
from compress.model.tensors import Tensor, tensors

#: llama.cpp file types the converter and quantizer accept, by their usual names.
GGUF_TYPES = (
    "F32", "F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_0", "Q5_1",
    "Q4_K_M", "Q4_K_S", "Q4_0", "Q4_1", "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K",
)
#: File types that store weights unquantized.
UNQUANTIZED = ("F32", "F16", "BF16")


@dataclass(frozen=True)
class GgufConfig(MethodConfig):
    qtype: str = "Q4_K_M"
    #: None/False: no importance matrix.
    imatrix: bool | None = None

    def __post_init__(self) -> None:
        if self.qtype not in GGUF_TYPES:
            raise bad_variant(self.qtype, f"GGUF type is one of {', '.join(GGUF_TYPES)}")


class Gguf(Method):
    name = "gguf"
    Config = GgufConfig
    aliases: ClassVar[dict[str, str]] = {"gguf": "q4_k_m"}
    suffixes = (Suffix("imatrix", "imatrix", bool, False),)
    apply = "compress.apply.gguf:apply"
    candidates: ClassVar[dict[str, tuple[str, ...]]] = {
        kind: ("q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0", "q3_k_m", "q2_k") for kind in ("gpu", "cpu")}
    kernels = ("llama_cpp_cuda", "llama_cpp_metal")
    grammar = "q8_0 | q6_k | q4_k_m | ... | gguf-f16   a llama.cpp GGUF type [-imatrix]"

    @classmethod
    def parse_core(cls, core: str, text: str) -> GgufConfig | None:
        qtype = (core[5:] if core.startswith("gguf-") else core).upper()
        return GgufConfig(qtype) if qtype in GGUF_TYPES else None

    @classmethod
    def core_name(cls, config: GgufConfig) -> str:
        return config.qtype.lower() if config.qtype.startswith("Q") else f"gguf-{config.qtype.lower()}"

    @classmethod
    def tensor_bytes(cls, t: Any, config: GgufConfig, spec: Any, fmt: dict[str, Any], *,
                     sparse_storage: bool = False) -> int:
        return gguf_type_bytes(gguf_tensor_type(config.qtype, t, spec, fmt), t.numel, fmt)

    @classmethod
    def extra_file_bytes(cls, config: GgufConfig, spec: Any) -> int:
        return gguf_metadata_bytes(spec)

    @classmethod
    def quality_source(cls, config: GgufConfig) -> QualitySource:
        if config.qtype in UNQUANTIZED:
            return QualitySource("reference")
        return QualitySource("table", (cls.core_name(config),), gguf_ftype=config.qtype)


# --- the GGUF layout: which GGML type each tensor gets, and the bytes it takes ------------------

def _formats() -> dict[str, Any]:
    from compress.planner import profiles

    return profiles.load("formats.toml")


def gguf_type_bytes(qtype: str, numel: int, fmt: dict[str, Any] | None = None) -> int:
    """Bytes of ``numel`` weights stored as GGML type ``qtype`` (whole blocks)."""
    block_bytes, block_weights = (fmt or _formats())["gguf_block"][qtype]
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
    fmt = fmt or _formats()
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
    """What a GGUF file holds besides tensor data: the vocabulary and one header a tensor."""
    meta = _formats()["gguf_file"]
    return spec.vocab * meta["metadata_bytes_per_token"] + len(tensors(spec)) * meta["header_bytes_per_tensor"]
