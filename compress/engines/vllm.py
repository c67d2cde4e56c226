"""vLLM: the datacenter serving engine (continuous batching, CUDA graphs, Marlin/Machete/CUTLASS
kernels). Its bench adapter runs the offline engine in vLLM's own environment
(``compress/measure/vllm_runtime.py`` with ``vllm_worker.py``); ``vllm serve`` runs the
served tests (``compress/measure/serving.py``, ``vllm_serve.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from compress.engines.base import Engine

#: vLLM's ``--quantization`` value by the kernel the planner chose (vLLM reads the same value
#: from the checkpoint's quantization_config; naming it makes a wrong artifact fail loudly).
#: Sources: vLLM docs, "Supported hardware" quantization table; vLLM quantization/__init__.py
#: method names (gptq_marlin, awq_marlin, compressed-tensors ...).
QUANTIZATION = {
    "machete": "gptq_marlin",  # vLLM's GPTQ path picks Machete on Hopper by itself
    "marlin": "gptq_marlin",
    "gptq_exllamav2": "gptq",
    "gptq_cuda": "gptq",
    "awq_marlin": "awq_marlin",
    "awq_gemm": "awq",
    "cutlass_fp8": "compressed-tensors",
    "fp8_marlin": "compressed-tensors",
    "cutlass_w8a8_int8": "compressed-tensors",
    "onednn_w8a8_int8": "compressed-tensors",
}


class Vllm(Engine):
    name = "vllm"
    formats = ("hf",)
    adapter = "compress.measure.vllm_runtime:VllmRuntime"
    gpu_rule = "vllm"
    sparse_2_4 = True
    serves = True
    #: bitsandbytes checkpoints vLLM loads pre-quantized: 4-bit NF4 only.
    bnb_types: ClassVar[tuple[str, ...]] = ("nf4",)

    @classmethod
    def loads(cls, fmt: str, method: str, config: Mapping[str, Any]) -> bool:
        if method == "bnb":
            return fmt == "hf" and config.get("quant_type", "nf4") in cls.bnb_types
        return fmt in cls.formats

    @classmethod
    def serve_command(cls, artifact: str, candidate: Mapping[str, Any], context: int, batch: int, gpus: int,
                      on_gpu: bool) -> str | None:
        parts = ["vllm serve", artifact, f"--max-model-len {context}", f"--max-num-seqs {max(batch, 1)}"]
        quantization = QUANTIZATION.get(candidate["kernel"])
        if quantization:
            parts.append(f"--quantization {quantization}")
        elif candidate["method"] == "baseline":
            parts.append(f"--dtype {candidate['config']['dtype']}")
        if gpus > 1:
            parts.append(f"--tensor-parallel-size {gpus}")
        # The share of the GPU the plan sized the KV cache in, where it is not vLLM's default.
        fraction = candidate.get("memory", {}).get("engine_memory_fraction")
        if fraction is not None and fraction != float(cls.profile()["memory_fraction"]):
            parts.append(f"--gpu-memory-utilization {fraction:g}")
        return " ".join(parts)
