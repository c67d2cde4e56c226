"""AWQ through GPTQModel (``awq-4[-g<group>][-nozp]``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from compress.methods.base import Method, MethodConfig, QualitySource, Suffix, bad_variant, group_bytes
from compress.methods.groups import DEFAULT_GROUP_SIZE

BITS = (4,)
_CORE = re.compile(r"^awq-(\d+)(?:-g(-1|\d+))?$")


@dataclass(frozen=True)
class AwqConfig(MethodConfig):
    bits: int = 4
    group_size: int = DEFAULT_GROUP_SIZE
    zero_point: bool = True

    def __post_init__(self) -> None:
        if self.bits not in BITS:
            raise bad_variant(f"awq-{self.bits}", f"AWQ takes bits 4, got {self.bits}")
        if self.group_size != -1 and self.group_size < 1:
            raise bad_variant(f"g{self.group_size}", "group size is a positive integer or -1 (per channel)")


class Awq(Method):
    name = "awq"
    Config = AwqConfig
    aliases: ClassVar[dict[str, str]] = {"awq": "awq-4-g128"}
    suffixes = (Suffix("zero_point", "zp", bool, True),)
    apply = "compress.apply.gptq:apply_awq"
    candidates: ClassVar[dict[str, tuple[str, ...]]] = {"gpu": ("awq-4-g128",), "cpu": ("awq-4-g128",)}
    kernels = ("awq_marlin", "awq_gemm")
    grammar = "awq-4[-g<group>]                        AWQ 4-bit, group 128 by default"

    @classmethod
    def parse_core(cls, core: str, text: str) -> AwqConfig | None:
        m = _CORE.match(core)
        if not m:
            return None
        bits = int(m.group(1))
        if bits not in BITS:
            raise bad_variant(text, f"AWQ takes bits 4, got {bits}")
        return AwqConfig(bits, int(m.group(2)) if m.group(2) else DEFAULT_GROUP_SIZE)

    @classmethod
    def core_name(cls, config: AwqConfig) -> str:
        return f"awq-{config.bits}-g{config.group_size}"

    @classmethod
    def weight_bits(cls, config: AwqConfig) -> int:
        return config.bits

    @classmethod
    def tensor_bytes(cls, t: Any, config: AwqConfig, spec: Any, fmt: dict[str, Any], *,
                     sparse_storage: bool = False) -> int:
        if not t.is_linear:
            return t.numel * fmt["dense_bytes"]["fp16"]
        return group_bytes(t, config.bits, config.group_size, fmt[cls.name])

    @classmethod
    def quality_source(cls, config: AwqConfig) -> QualitySource:
        return QualitySource("table", (cls.core_name(config), f"{cls.name}-{config.bits}-g{DEFAULT_GROUP_SIZE}"))
