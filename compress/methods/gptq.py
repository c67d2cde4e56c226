"""GPTQ through GPTQModel (``gptq-<bits>[-g<group>][-act][-nosym][-damp<f>]``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from compress.methods.base import Method, MethodConfig, QualitySource, Suffix, bad_variant, group_bytes
from compress.methods.groups import DEFAULT_GROUP_SIZE

BITS = (2, 3, 4, 8)
_CORE = re.compile(r"^gptq-(\d+)(?:-g(-1|\d+))?(-act)?$")


@dataclass(frozen=True)
class GptqConfig(MethodConfig):
    bits: int = 4
    group_size: int = DEFAULT_GROUP_SIZE
    desc_act: bool = False
    #: None: symmetric (GPTQModel's default).
    sym: bool | None = None
    #: None: GPTQModel's default dampening.
    damp_percent: float | None = None

    def __post_init__(self) -> None:
        if self.bits not in BITS:
            raise bad_variant(f"gptq-{self.bits}", f"GPTQ takes bits {', '.join(map(str, BITS))}, got {self.bits}")
        if self.group_size != -1 and self.group_size < 1:
            raise bad_variant(f"g{self.group_size}", "group size is a positive integer or -1 (per channel)")


class Gptq(Method):
    name = "gptq"
    Config = GptqConfig
    aliases: ClassVar[dict[str, str]] = {"gptq": "gptq-4-g128"}
    suffixes = (Suffix("sym", "sym", bool, True), Suffix("damp_percent", "damp", float))
    apply = "compress.apply.gptq:apply_gptq"
    candidates: ClassVar[dict[str, tuple[str, ...]]] = {"gpu": ("gptq-8-g128", "gptq-4-g128", "gptq-3-g128"),
                                                        "cpu": ("gptq-4-g128",)}
    kernels = ("machete", "marlin", "gptq_exllamav2", "gptq_cuda")
    grammar = "gptq-<bits>[-g<group>][-act]            GPTQ, bits in {2,3,4,8}, group 128 by default, g-1 per channel"

    @classmethod
    def parse_core(cls, core: str, text: str) -> GptqConfig | None:
        m = _CORE.match(core)
        if not m:
            return None
        bits = int(m.group(1))
        if bits not in BITS:
            raise bad_variant(text, f"GPTQ takes bits {', '.join(map(str, BITS))}, got {bits}")
        group = int(m.group(2)) if m.group(2) else DEFAULT_GROUP_SIZE
        return GptqConfig(bits, group, bool(m.group(3)))

    @classmethod
    def core_name(cls, config: GptqConfig) -> str:
        return f"gptq-{config.bits}-g{config.group_size}" + ("-act" if config.desc_act else "")

    @classmethod
    def weight_bits(cls, config: GptqConfig) -> int:
        return config.bits

    @classmethod
    def tensor_bytes(cls, t: Any, config: GptqConfig, spec: Any, fmt: dict[str, Any], *,
                     sparse_storage: bool = False) -> int:
        if not t.is_linear:
            return t.numel * fmt["dense_bytes"]["fp16"]
        return group_bytes(t, config.bits, config.group_size, fmt[cls.name])

    @classmethod
    def quality_source(cls, config: GptqConfig) -> QualitySource:
        return QualitySource("table", (cls.core_name(config), f"{cls.name}-{config.bits}-g{DEFAULT_GROUP_SIZE}"))
