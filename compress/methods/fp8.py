"""FP8 W8A8 through llm-compressor (``fp8``): E4M3 weights per output channel, activations
quantized to FP8 per token at run time, written as a compressed-tensors checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from compress.methods.base import Method, MethodConfig, QualitySource, bad_variant

SCHEMES = ("FP8_DYNAMIC",)


@dataclass(frozen=True)
class Fp8Config(MethodConfig):
    #: compressed-tensors preset: FP8 weights per channel, dynamic per-token FP8 activations.
    scheme: str = "FP8_DYNAMIC"

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise bad_variant(self.scheme, f"fp8 takes the scheme {', '.join(SCHEMES)}")


def w8_bytes(t: Any, layout: dict[str, Any], dense: dict[str, Any]) -> int:
    """One byte a weight plus one 16-bit scale per output row (compressed-tensors channel
    strategy); everything that is not a decoder linear layer stays fp16."""
    if not t.is_linear:
        return t.numel * dense["fp16"]
    return (t.rows * t.cols * layout["weight_bytes"] + t.rows * layout["scale_bytes_per_row"]) * t.count


class Fp8(Method):
    name = "fp8"
    Config = Fp8Config
    apply = "compress.apply.llm_compressor:apply_fp8"
    # FP8 tensor cores on sm89+; weight-only FP8 Marlin below (profiles/kernels.toml).
    kernels = ("cutlass_fp8", "fp8_marlin")
    candidates: ClassVar[dict[str, tuple[str, ...]]] = {"gpu": ("fp8",)}
    grammar = "fp8                                     FP8 W8A8 (E4M3 per channel, dynamic per-token activations)"

    @classmethod
    def parse_core(cls, core: str, text: str) -> Fp8Config | None:
        return Fp8Config() if core in ("fp8", "fp8-dynamic") else None

    @classmethod
    def core_name(cls, config: Fp8Config) -> str:
        return "fp8"

    @classmethod
    def weight_bits(cls, config: Fp8Config) -> int:
        return 8

    @classmethod
    def tensor_bytes(cls, t: Any, config: Fp8Config, spec: Any, fmt: dict[str, Any], *,
                     sparse_storage: bool = False) -> int:
        return w8_bytes(t, fmt[cls.name], fmt["dense_bytes"])

    @classmethod
    def quality_source(cls, config: Fp8Config) -> QualitySource:
        return QualitySource("table", ("fp8",))
