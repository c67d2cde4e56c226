"""MLX (ml-explore/mlx-lm) on Apple GPUs: 16-bit Hugging Face checkpoints. The planner models
it (``profiles/runtimes.toml [engines.metal]``); bench has no adapter for it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from compress.engines.base import Engine


class Mlx(Engine):
    name = "mlx"
    formats = ("hf",)
    #: Methods whose checkpoints stay 16-bit dense (the quantized ones need CUDA/ROCm kernels).
    dense_methods: ClassVar[tuple[str, ...]] = ("baseline", "prune", "layerdrop", "distill")

    @classmethod
    def loads(cls, fmt: str, method: str, config: Mapping[str, Any]) -> bool:
        return fmt in cls.formats and method in cls.dense_methods
