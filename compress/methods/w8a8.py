"""INT8 W8A8 through llm-compressor (``w8a8-int8[-sq<alpha>]``): SmoothQuant, then GPTQ to
INT8 weights per output channel, INT8 activations per token at run time, written as a
compressed-tensors checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from compress.methods.base import Method, MethodConfig, QualitySource, Suffix, bad_variant
from compress.methods.fp8 import w8_bytes

SCHEMES = ("W8A8",)
#: SmoothQuant migration strength llm-compressor's W8A8 example uses.
DEFAULT_STRENGTH = 0.8


@dataclass(frozen=True)
class W8a8Config(MethodConfig):
    scheme: str = "W8A8"
    #: None: DEFAULT_STRENGTH.
    smoothing_strength: float | None = None

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise bad_variant(self.scheme, f"w8a8 takes the scheme {', '.join(SCHEMES)}")
        if self.smoothing_strength is not None and not 0 < self.smoothing_strength < 1:
            raise bad_variant(f"sq{self.smoothing_strength:g}", "SmoothQuant strength is a fraction in (0, 1)")


class W8a8(Method):
    name = "w8a8"
    Config = W8a8Config
    aliases: ClassVar[dict[str, str]] = {"w8a8": "w8a8-int8"}
    suffixes = (Suffix("smoothing_strength", "sq", float, DEFAULT_STRENGTH),)
    apply = "compress.apply.llm_compressor:apply_w8a8"
    # CUTLASS scaled_mm on CUDA sm75-sm90; oneDNN in vLLM's CPU backend (profiles/kernels.toml).
    kernels = ("cutlass_w8a8_int8", "onednn_w8a8_int8")
    candidates: ClassVar[dict[str, tuple[str, ...]]] = {"gpu": ("w8a8-int8",), "cpu": ("w8a8-int8",)}
    grammar = "w8a8-int8[-sq<alpha>]                   INT8 W8A8: SmoothQuant (alpha 0.8) + GPTQ, dynamic per-token activations"

    @classmethod
    def parse_core(cls, core: str, text: str) -> W8a8Config | None:
        return W8a8Config() if core == "w8a8-int8" else None

    @classmethod
    def core_name(cls, config: W8a8Config) -> str:
        return "w8a8-int8"

    @classmethod
    def weight_bits(cls, config: W8a8Config) -> int:
        return 8

    @classmethod
    def tensor_bytes(cls, t: Any, config: W8a8Config, spec: Any, fmt: dict[str, Any], *,
                     sparse_storage: bool = False) -> int:
        return w8_bytes(t, fmt[cls.name], fmt["dense_bytes"])

    @classmethod
    def quality_source(cls, config: W8a8Config) -> QualitySource:
        return QualitySource("table", ("w8a8-int8",))
