"""Weight pruning (``wanda-50``, ``magnitude-37.5``, ``sparsegpt-2:4``, ``2:4``)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from compress.methods.base import Method, MethodConfig, bad_variant

ALGORITHMS = ("magnitude", "wanda", "sparsegpt")
PATTERNS = ("unstructured", "2:4")
_CORE = re.compile(r"^(magnitude|wanda|sparsegpt)-(\d+(?:\.\d+)?|2:4)$")


@dataclass(frozen=True)
class PruneConfig(MethodConfig):
    algorithm: str = "wanda"
    sparsity: float = 0.5
    pattern: str = "unstructured"

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise bad_variant(self.algorithm, f"pruning algorithm is one of {', '.join(ALGORITHMS)}")
        if self.pattern not in PATTERNS:
            raise bad_variant(self.pattern, f"sparsity pattern is one of {', '.join(PATTERNS)}")


class Prune(Method):
    name = "prune"
    Config = PruneConfig
    aliases: ClassVar[dict[str, str]] = {"prune": "wanda-50", "wanda": "wanda-50", "magnitude": "magnitude-50",
                                         "sparsegpt": "sparsegpt-50", "2:4": "wanda-2:4"}
    apply = "compress.apply.prune:apply"
    candidates: ClassVar[dict[str, tuple[str, ...]]] = {"gpu": ("wanda-50", "wanda-2:4"), "cpu": ("wanda-50", "wanda-2:4")}
    kernels = ("sparse_2_4",)
    may_precede = True
    grammar = ("magnitude-<pct> | wanda-<pct> | sparsegpt-<pct>     unstructured pruning\n"
               "magnitude-2:4 | wanda-2:4 | sparsegpt-2:4 | 2:4     semi-structured 2:4 (wanda by default)")

    @classmethod
    def parse_core(cls, core: str, text: str) -> PruneConfig | None:
        m = _CORE.match(core)
        if not m:
            return None
        algorithm, amount = m.groups()
        if amount == "2:4":
            return PruneConfig(algorithm, 0.5, "2:4")
        pct = float(amount)
        if not 0 < pct < 100:
            raise bad_variant(text, f"sparsity is a percentage between 0 and 100, got {amount}")
        return PruneConfig(algorithm, pct / 100, "unstructured")

    @classmethod
    def core_name(cls, config: PruneConfig) -> str:
        amount = "2:4" if config.pattern == "2:4" else f"{config.sparsity * 100:g}"
        return f"{config.algorithm}-{amount}"

    @classmethod
    def tensor_bytes(cls, t: Any, config: PruneConfig, spec: Any, fmt: dict[str, Any], *,
                     sparse_storage: bool = False) -> int:
        if t.is_linear and config.pattern == "2:4" and sparse_storage:
            return math.ceil(t.numel * fmt["sparse_2_4"]["bits_per_weight"] / 8)
        return t.numel * fmt["dense_bytes"]["fp16"]  # stored dense fp16

    @classmethod
    def runtime_key(cls, config: PruneConfig) -> str:
        return "prune_2_4" if config.pattern == "2:4" else cls.name
