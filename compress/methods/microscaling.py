"""NVFP4 and MXFP4: 4-bit floats with a shared scale per block (``nvfp4``, ``mxfp4``).

Planned only: the planner sizes them (block layouts in ``profiles/formats.toml``) and offers
them on the devices whose kernels run them (``kernel`` of each layout, a rule of
``profiles/kernels.toml``: Blackwell for both); ``compress apply`` cannot write them yet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from compress.methods.base import Method, MethodConfig, QualitySource, bad_variant

FORMATS = ("nvfp4", "mxfp4")


@dataclass(frozen=True)
class MicroscalingConfig(MethodConfig):
    format: str = "nvfp4"

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise bad_variant(self.format, f"a microscaling format is one of {', '.join(FORMATS)}")


class Microscaling(Method):
    """Shared by :class:`Nvfp4` and :class:`Mxfp4`: each is its own method so that each names
    only its own kernel (the kernel rule decides which devices run it)."""

    Config = MicroscalingConfig
    apply = "compress.apply.microscaling:apply"
    #: `plan` sizes it; `apply` refuses it with one line (compress/apply/__init__.py).
    planned_only: ClassVar[bool] = True

    @classmethod
    def parse_core(cls, core: str, text: str) -> MicroscalingConfig | None:
        return MicroscalingConfig(core) if core == cls.name else None

    @classmethod
    def core_name(cls, config: MicroscalingConfig) -> str:
        return config.format

    @classmethod
    def tensor_bytes(cls, t: Any, config: MicroscalingConfig, spec: Any, fmt: dict[str, Any], *,
                     sparse_storage: bool = False) -> int:
        """Linear layers: ``value_bits`` per weight + one scale per block along each row + a
        tensor scale; the rest stays fp16."""
        if not t.is_linear:
            return t.numel * fmt["dense_bytes"]["fp16"]
        layout = fmt["microscaling"][config.format]
        blocks = math.ceil(t.cols / layout["block_size"]) * t.rows
        values = math.ceil(t.rows * t.cols * layout["value_bits"] / 8)
        return (values + blocks * layout["scale_bytes"] + layout["tensor_scale_bytes"]) * t.count

    @classmethod
    def quality_source(cls, config: MicroscalingConfig) -> QualitySource:
        return QualitySource("table", (config.format,))


class Nvfp4(Microscaling):
    name = "nvfp4"
    kernels = ("nvfp4",)
    grammar = "nvfp4                                   NVFP4: E2M1 + FP8 scale per 16 (planned only)"


class Mxfp4(Microscaling):
    name = "mxfp4"
    kernels = ("mxfp4",)
    grammar = "mxfp4                                   MXFP4: E2M1 + E8M0 scale per 32 (planned only)"
