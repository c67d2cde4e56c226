"""ONNX Runtime: the ONNX export of ``compress apply --method onnx-int8``, no server of its own.
Its bench adapter is ``compress/measure/runtimes.py`` ``OnnxRuntime``."""

from __future__ import annotations

from compress.engines.base import Engine


class OnnxRuntime(Engine):
    name = "onnxruntime"
    formats = ("onnx",)
    adapter = "compress.measure.runtimes:OnnxRuntime"
