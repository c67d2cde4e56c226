"""bitsandbytes NF4, FP4 and LLM.int8 (``nf4``, ``fp4``, ``int8``; ``nf4-nodq``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from compress.dtypes import DTYPES
from compress.errors import UnsupportedError, UserInputError
from compress.methods.base import Method, MethodConfig, Suffix, bad_variant

QUANT_TYPES = ("nf4", "fp4", "int8")


@dataclass(frozen=True)
class BnbConfig(MethodConfig):
    quant_type: str = "nf4"
    #: 4-bit only; None for int8.
    double_quant: bool | None = None
    #: None: float32 on the CPU, float16 on CUDA (decided at apply time). A runtime setting
    #: (the stored weights do not change), so it is not written into the variant name.
    compute_dtype: str | None = None

    def __post_init__(self) -> None:
        if self.quant_type not in QUANT_TYPES:
            raise bad_variant(self.quant_type, f"bitsandbytes quant type is one of {', '.join(QUANT_TYPES)}")
        if self.compute_dtype is not None and self.compute_dtype not in DTYPES:
            raise UserInputError(f"--compute-dtype must be one of {', '.join(DTYPES)}, "
                                 f"got {self.compute_dtype!r}")
        if self.quant_type == "int8" and self.double_quant:
            raise UnsupportedError("double quantization applies to bitsandbytes 4-bit (nf4, fp4), not int8: "
                                   "drop --double-quant or pick nf4")


class Bnb(Method):
    name = "bnb"
    Config = BnbConfig
    aliases: ClassVar[dict[str, str]] = {"bnb": "nf4"}
    suffixes = (Suffix("double_quant", "dq", bool, True),)
    apply = "compress.apply.bnb:apply"
    candidates: ClassVar[dict[str, tuple[str, ...]]] = {"gpu": ("int8", "nf4"), "cpu": ("int8", "nf4")}
    kernels = ("bnb_4bit", "bnb_int8")
    grammar = "int8 | nf4 | fp4 [-nodq]                 bitsandbytes (nf4/fp4 with double quant)"

    @classmethod
    def parse_core(cls, core: str, text: str) -> BnbConfig | None:
        if core == "int8":
            return BnbConfig("int8")
        if core in ("nf4", "fp4"):
            return BnbConfig(core, double_quant=True)
        return None

    @classmethod
    def core_name(cls, config: BnbConfig) -> str:
        return config.quant_type

    @classmethod
    def weight_bits(cls, config: BnbConfig) -> int:
        return 8 if config.quant_type == "int8" else 4

    @classmethod
    def tensor_bytes(cls, t: Any, config: BnbConfig, spec: Any, fmt: dict[str, Any], *,
                     sparse_storage: bool = False) -> int:
        if not t.is_linear:
            return t.numel * fmt["dense_bytes"]["fp16"]
        if config.quant_type == "int8":
            layout = fmt["bnb_int8"]
            return (t.rows * t.cols * layout["weight_bytes"] + t.rows * layout["row_scale_bytes"]) * t.count
        return _nf4_bytes(t, config.double_quant is not False, fmt["bnb_4bit"])


def _nf4_bytes(t: Any, double_quant: bool, layout: dict[str, Any]) -> int:
    """NF4/FP4: 4-bit codes + absmax per block of 64 (8-bit + fp32 per 256 blocks when double-quantized)."""
    blocks = math.ceil(t.rows * t.cols / layout["block_size"])
    if double_quant:
        absmax = blocks * layout["double_quant_absmax_bytes"] + \
            math.ceil(blocks / layout["double_quant_block_blocks"]) * layout["double_quant_constant_bytes"]
    else:
        absmax = blocks * layout["absmax_bytes"]
    return (math.ceil(t.rows * t.cols / 2) + absmax) * t.count
