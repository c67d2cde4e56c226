"""llama.cpp GGUF files (``q4_k_m``, ``q8_0``, ``gguf-f16`` ...; ``-imatrix`` for an importance matrix)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from compress.methods.base import Method, MethodConfig, QualitySource, Suffix, bad_variant

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
        from compress.planner.formats import gguf_tensor_type, gguf_type_bytes

        return gguf_type_bytes(gguf_tensor_type(config.qtype, t, spec, fmt), t.numel, fmt)

    @classmethod
    def extra_file_bytes(cls, config: GgufConfig, spec: Any) -> int:
        from compress.planner.formats import gguf_metadata_bytes

        return gguf_metadata_bytes(spec)

    @classmethod
    def quality_source(cls, config: GgufConfig) -> QualitySource:
        if config.qtype in UNQUANTIZED:
            return QualitySource("reference")
        return QualitySource("table", (cls.core_name(config),), gguf_ftype=config.qtype)
