"""Pure formulas of measurement: sample statistics, perplexity, MFU and MBU.

FLOPs per token, KV-cache bytes and bytes per decoded token are the planner's too: they
live in :mod:`compress.formulas` (re-exported here) so predicted and measured figures
count the same things.

Every function takes plain numbers and returns plain numbers; units are in the
names (``_ms``, ``_bytes``, ``_per_s``). Nothing here imports torch or touches a
device, so the formulas are tested against hand calculations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from compress.formulas import decode_bytes_per_token, flops_per_token, kv_cache_bytes, matmul_params

__all__ = ["decode_bytes_per_token", "flops_per_token", "kv_cache_bytes", "matmul_params", "mbu", "mfu",
           "percentile", "perplexity", "prediction_error_pct", "sample_stats", "tokens_per_s"]


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


def mfu(flops_per_s: float, peak_flops_per_s: float) -> float:
    """Model FLOPs utilisation: achieved model FLOP/s over the device's peak (a fraction).

    PaLM (Chowdhery et al. 2022, section 4.1 and appendix B) defines MFU with the model's
    FLOPs, not the hardware's (no recomputation counted).
    """
    if peak_flops_per_s <= 0:
        raise ValueError(f"peak FLOP/s must be positive, got {peak_flops_per_s}")
    return flops_per_s / peak_flops_per_s


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
