"""Baseline: the model unchanged but for its dtype (``fp32``, ``fp16``, ``bf16``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from compress.dtypes import SHORT_NAMES, TORCH_NAMES
from compress.methods.base import Method, MethodConfig, QualitySource, bad_variant


@dataclass(frozen=True)
class BaselineConfig(MethodConfig):
    dtype: str = "float16"

    def __post_init__(self) -> None:
        if self.dtype not in SHORT_NAMES:
            raise bad_variant(self.dtype, f"baseline dtype is one of {', '.join(SHORT_NAMES)}")


class Baseline(Method):
    name = "baseline"
    Config = BaselineConfig
    aliases: ClassVar[dict[str, str]] = {"baseline": "fp32"}
    apply = "compress.apply.baseline:apply"
    candidates: ClassVar[dict[str, tuple[str, ...]]] = {"gpu": ("fp16", "bf16"), "cpu": ("fp32", "bf16", "fp16")}
    grammar = "fp32 | fp16 | bf16                      baseline in that dtype"

    @classmethod
    def parse_core(cls, core: str, text: str) -> BaselineConfig | None:
        return BaselineConfig(TORCH_NAMES[core]) if core in TORCH_NAMES else None

    @classmethod
    def core_name(cls, config: BaselineConfig) -> str:
        return SHORT_NAMES[config.dtype]

    @classmethod
    def tensor_bytes(cls, t: Any, config: BaselineConfig, spec: Any, fmt: dict[str, Any], *,
                     sparse_storage: bool = False) -> int:
        return t.numel * fmt["dense_bytes"][SHORT_NAMES[config.dtype]]

    @classmethod
    def quality_source(cls, config: BaselineConfig) -> QualitySource:
        return QualitySource("reference")
