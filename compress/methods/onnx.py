"""ONNX export with dynamic INT8 quantization (``onnx-int8``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from compress.methods.base import Method, MethodConfig, bad_variant


@dataclass(frozen=True)
class OnnxConfig(MethodConfig):
    weight_type: str = "int8"

    def __post_init__(self) -> None:
        if self.weight_type != "int8":
            raise bad_variant(self.weight_type, "ONNX weight type is int8")


class Onnx(Method):
    name = "onnx"
    Config = OnnxConfig
    aliases: ClassVar[dict[str, str]] = {"onnx": "onnx-int8"}
    apply = "compress.apply.onnx:apply"
    kernels = ("ort_int8",)
    grammar = "onnx-int8                               ONNX export, dynamic INT8 quantization"

    @classmethod
    def parse_core(cls, core: str, text: str) -> OnnxConfig | None:
        return OnnxConfig("int8") if core == "onnx-int8" else None

    @classmethod
    def core_name(cls, config: OnnxConfig) -> str:
        return f"onnx-{config.weight_type}"

    @classmethod
    def tensor_bytes(cls, t: Any, config: OnnxConfig, spec: Any, fmt: dict[str, Any], *,
                     sparse_storage: bool = False) -> int:
        if not t.is_linear:
            return t.numel * fmt["dense_bytes"]["fp32"]
        return t.numel * fmt["dense_bytes"]["int8"] + 8  # per-tensor scale and zero point
