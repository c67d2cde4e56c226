"""Speed from a roofline: decode is bound by memory bandwidth, prefill by FLOPs.

decode step time = max(bytes read / (bandwidth * efficiency), FLOPs / (peak * MFU))
                   + layers * per-layer launch overhead,            tok/s = batch / step
TTFT             = max(prefill FLOPs / (peak * MFU), weight bytes / (bandwidth * efficiency))
                   + chunks * layers * per-layer overhead
(Williams, Waterman & Patterson, "Roofline", CACM 2009; applied to LLM decoding e.g. in
"LLM Inference Unveiled: Survey and Roofline Model Insights", arXiv:2402.16363.)
Efficiencies per runtime and kernel are data in ``profiles/runtimes.toml``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from compress import formulas


@dataclass(frozen=True)
class Device:
    """What the roofline needs of the hardware, with tensor parallelism already folded in."""

    bandwidth_gbs: float
    peak_tflops: float
    bandwidth_efficiency: float
    compute_efficiency: float
    layer_overhead_us: float


def decode_flops(matmul_params: int, batch: int, layers: int, heads: int, head_dim: int, kv_tokens: int) -> float:
    """FLOPs of one decode step of ``batch`` sequences against ``kv_tokens`` cached positions:
    ``batch *`` :func:`compress.formulas.flops_per_token` (input embedding not counted)."""
    return batch * formulas.flops_per_token(matmul_params, layers, kv_tokens, heads * head_dim)


def decode_step_s(read_bytes: float, flops: float, layers: int, device: Device, speedup: float = 1.0) -> float:
    memory_s = read_bytes / (device.bandwidth_gbs * 1e9 * device.bandwidth_efficiency)
    compute_s = flops / (device.peak_tflops * 1e12 * device.compute_efficiency) if device.peak_tflops else 0.0
    return max(memory_s, compute_s) / speedup + layers * device.layer_overhead_us * 1e-6


def decode_tok_s(read_bytes: float, flops: float, layers: int, batch: int, device: Device, speedup: float = 1.0) -> float:
    """Generated tokens per second summed over the batch."""
    return batch / decode_step_s(read_bytes, flops, layers, device, speedup)


def ttft_ms(prefill_flops: float, weight_bytes: float, layers: int, chunks: int, device: Device, speedup: float = 1.0) -> float:
    """Time to first token for the prompt in milliseconds."""
    compute_s = prefill_flops / (device.peak_tflops * 1e12 * device.compute_efficiency) if device.peak_tflops else math.inf
    memory_s = chunks * weight_bytes / (device.bandwidth_gbs * 1e9 * device.bandwidth_efficiency)
    return 1e3 * (max(compute_s, memory_s) / speedup + chunks * layers * device.layer_overhead_us * 1e-6)


def prefill_flops(matmul_params: int, prompt_tokens: int, batch: int, layers: int, heads: int, head_dim: int) -> float:
    """FLOPs of a causal prefill (:func:`compress.formulas.prefill_flops`)."""
    return formulas.prefill_flops(matmul_params, prompt_tokens, layers, heads * head_dim, batch)
