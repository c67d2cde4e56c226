"""Pure formulas of measurement: sample statistics, perplexity, FLOPs, MFU and MBU.

Every function takes plain numbers and returns plain numbers; units are in the
names (``_ms``, ``_bytes``, ``_per_s``). Nothing here imports torch or touches a
device, so the formulas are tested against hand calculations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between order statistics.

    This is numpy's default ("linear", Hyndman & Fan 1996 definition 7): the value at
    rank ``(n - 1) * q / 100`` of the sorted samples.
    """
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def sample_stats(samples: Sequence[float]) -> dict[str, float | int]:
    """``n, mean, median, p90, p99, stddev, min, max`` of raw samples.

    ``stddev`` is the sample standard deviation (Bessel's n-1 divisor; 0 for a single
    sample), as optimum-benchmark's ``Latency.from_values`` and llama-bench report.
    """
    if not samples:
        raise ValueError("statistics of no samples")
    values = [float(s) for s in samples]
    n = len(values)
    mean = math.fsum(values) / n
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return {"n": n, "mean": mean, "median": percentile(values, 50), "p90": percentile(values, 90),
            "p99": percentile(values, 99), "stddev": math.sqrt(variance), "min": min(values), "max": max(values)}


def perplexity(nll_sum_nats: float, tokens: int) -> float:
    """PPL = exp(sum of negative log-likelihoods in nats / number of scored tokens)."""
    if tokens <= 0:
        raise ValueError(f"perplexity needs at least one scored token, got {tokens}")
    return math.exp(nll_sum_nats / tokens)


def tokens_per_s(tokens: int, seconds: float) -> float:
    if seconds <= 0:
        raise ValueError(f"elapsed time must be positive, got {seconds} s")
    return tokens / seconds


def matmul_params(params: int, vocab: int, hidden: int, tied_embeddings: bool) -> int:
    """Parameters that take part in a matrix multiply per token.

    The input embedding is a table lookup, not a matmul, so its ``vocab * hidden``
    weights are left out; the output head multiplies by a ``hidden x vocab`` matrix,
    which a tied model shares with the embedding and so must be counted back in.
    (Kaplan et al. 2020, section 2.1, likewise count non-embedding parameters.)
    """
    return params - vocab * hidden + (vocab * hidden if tied_embeddings else 0)


def flops_per_token(matmul_params_count: int, layers: int, context_tokens: float, attention_dim: int) -> float:
    """Forward FLOPs for one token: ``2 * N + 4 * n_layer * n_ctx * d_attn``.

    ``2 * N``: one multiply and one add per matmul weight. The attention term counts the
    two products with the cache, QK^T and AV, each ``2 * n_ctx * d_attn`` per token and
    layer (``d_attn`` = heads x head_dim, the query width; grouped-query attention does
    not change it). PaLM (Chowdhery et al. 2022, appendix B) gives ``6N + 12 L H Q T``
    for training = 3 x this forward count; Kaplan et al. 2020 (table 1) write
    ``2N + 2 n_layer n_ctx d_attn``, which is the same figure averaged over a causal
    window (a token attends to ``n_ctx / 2`` positions on average).

    ``context_tokens`` is the number of positions the token attends to: ``t`` for a
    decode step at position ``t``; ``(n + 1) / 2`` averaged over a causal prompt of ``n``.
    """
    return 2.0 * matmul_params_count + 4.0 * layers * context_tokens * attention_dim


def mfu(flops_per_s: float, peak_flops_per_s: float) -> float:
    """Model FLOPs utilisation: achieved model FLOP/s over the device's peak (a fraction).

    PaLM (Chowdhery et al. 2022, section 4.1 and appendix B) defines MFU with the model's
    FLOPs, not the hardware's (no recomputation counted).
    """
    if peak_flops_per_s <= 0:
        raise ValueError(f"peak FLOP/s must be positive, got {peak_flops_per_s}")
    return flops_per_s / peak_flops_per_s


def kv_cache_bytes(layers: int, kv_heads: int, head_dim: int, tokens: float, bytes_per_element: float) -> float:
    """Bytes of keys and values for ``tokens`` positions: ``2 * layers * kv_heads * head_dim * tokens * bytes``."""
    return 2.0 * layers * kv_heads * head_dim * tokens * bytes_per_element


def decode_bytes_per_token(weight_bytes: float, kv_bytes_read: float) -> float:
    """Bytes a decode step must read from memory: every weight once, plus the KV cache so far.

    At batch 1 each generated token streams all weights through the processor once and
    reads the keys and values of every earlier position (activations are negligible).
    """
    return weight_bytes + kv_bytes_read


def mbu(bytes_per_token: float, tokens_per_s_value: float, bandwidth_bytes_per_s: float) -> float:
    """Model bandwidth utilisation: achieved bytes/s over the peak bandwidth (a fraction).

    ``MBU = bytes_per_token * tokens_per_s / peak_bandwidth`` (Databricks/MosaicML, "LLM
    inference performance engineering: best practices", 2023). Example: a 7e9-parameter
    FP16 model (1.4e10 bytes) at 100 tok/s moves 1.4e12 B/s = 1.4 TB/s.
    """
    if bandwidth_bytes_per_s <= 0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth_bytes_per_s}")
    return bytes_per_token * tokens_per_s_value / bandwidth_bytes_per_s


def prediction_error_pct(measured: float, predicted: float) -> float | None:
    """``(measured - predicted) / predicted * 100``: positive when the planner under-predicted."""
    if predicted is None or measured is None or predicted == 0:
        return None
    return (measured - predicted) / predicted * 100.0
