"""Structured layer dropping (``layerdrop-<n>``: drop the n least important decoder layers)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from compress.model.spec import with_layers
from compress.methods.base import Method, MethodConfig, QualitySource, bad_variant

_CORE = re.compile(r"^layerdrop-(\d+)$")


@dataclass(frozen=True)
class LayerdropConfig(MethodConfig):
    drop_layers: int = 1

    def __post_init__(self) -> None:
        if self.drop_layers < 1:
            raise bad_variant(f"layerdrop-{self.drop_layers}",
                              f"layerdrop needs a positive layer count, got {self.drop_layers}")


class Layerdrop(Method):
    name = "layerdrop"
    Config = LayerdropConfig
    apply = "compress.apply.layerdrop:apply"
    may_precede = True
    stores_weights = False
    grammar = "layerdrop-<n>                           drop the n least important decoder layers"

    @classmethod
    def parse_core(cls, core: str, text: str) -> LayerdropConfig | None:
        m = _CORE.match(core)
        if not m:
            return None
        n = int(m.group(1))
        if n < 1:
            raise bad_variant(text, f"layerdrop needs a positive layer count, got {n}")
        return LayerdropConfig(n)

    @classmethod
    def core_name(cls, config: LayerdropConfig) -> str:
        return f"layerdrop-{config.drop_layers}"

    @classmethod
    def model_spec(cls, config: LayerdropConfig, spec: Any) -> Any:
        n = config.drop_layers
        if n >= spec.layers:
            raise ValueError(f"cannot drop {n} of {spec.layers} layers")
        return with_layers(spec, spec.layers - n, name=f"{spec.name}-drop{n}")

    @classmethod
    def quality_source(cls, config: LayerdropConfig) -> QualitySource:
        return QualitySource("layerdrop")
