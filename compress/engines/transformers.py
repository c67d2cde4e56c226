"""Hugging Face transformers in torch (CPU or CUDA): opens every Hugging Face checkpoint
``compress apply`` writes, with no server of its own. Its bench adapter is
``compress/measure/runtimes.py`` ``TransformersRuntime``."""

from __future__ import annotations

from compress.engines.base import Engine


class Transformers(Engine):
    name = "transformers"
    formats = ("hf",)
    adapter = "compress.measure.runtimes:TransformersRuntime"
