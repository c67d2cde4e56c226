"""Latency and throughput by one code path for every runtime.

Tests follow llama-bench's names (llama.cpp ``tools/llama-bench``): ``pp<N>`` processes a
prompt of N tokens from an empty cache (the time to first token, TTFT), ``tg<M>``
generates M tokens one at a time (time per output token, TPOT, and each step's
inter-token latency, ITL), ``batch<B>`` generates M tokens for B sequences at once.
Warm-up runs come first and are discarded; every timed repetition is kept as a raw
sample. The adapters return only once the device has finished (CUDA is synchronized),
so ``time.perf_counter`` around a call measures the work, not its launch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from compress.errors import UnsupportedError
from compress.progress import steps


def _timed(call: Any, *args: Any) -> float:
    started = time.perf_counter()
    call(*args)
    return time.perf_counter() - started


def measure_prefill(runtime: Any, prompt: Sequence[int], reps: int, warmup: int) -> list[float]:
    """Seconds to process ``prompt`` from an empty cache, one sample per timed repetition."""
    if hasattr(runtime, "timed_generate"):
        # An engine that schedules whole generations (vLLM) times them itself: the prompt and
        # its first token, the time to first token a user sees.
        return runtime.timed_generate([list(prompt)], 1, reps, warmup)["run_s"]
    samples = []
    with steps(f"prefill {len(prompt)} tokens, warm-up + repetitions", warmup + reps) as done:
        for i in range(warmup + reps):
            runtime.reset()
            seconds = _timed(runtime.prefill, [list(prompt)])
            if i >= warmup:
                samples.append(seconds)
            done()
    runtime.reset()
    return samples


def measure_decode(runtime: Any, rows: Sequence[Sequence[int]], tokens: int, reps: int,
                   warmup: int) -> dict[str, list[float]]:
    """Decode ``tokens`` steps after prefilling ``rows`` (one row per sequence).

    Returns ``run_s`` (seconds for all steps, one per repetition) and ``step_s`` (every
    step of every timed repetition: the inter-token latencies). The prefill is not timed,
    except by an engine that only runs whole generations (``timed_generate``): its
    ``run_s`` covers the prompt too, its ``step_s`` is empty and ``timed_as`` says so.
    """
    if tokens < 1:
        raise ValueError(f"decode needs at least one token, got {tokens}")
    if runtime.max_batch is not None and len(rows) > runtime.max_batch:
        raise UnsupportedError(f"{runtime.name} runs at most {runtime.max_batch} sequence(s) at once, asked for {len(rows)}")
    if hasattr(runtime, "timed_generate"):
        return runtime.timed_generate(rows, tokens, reps, warmup)
    run_s: list[float] = []
    step_s: list[float] = []
    with steps(f"decode {tokens} tokens x {len(rows)} sequence(s), warm-up + repetitions", warmup + reps) as done:
        for i in range(warmup + reps):
            runtime.prefill([list(r) for r in rows])
            times = [_timed(runtime.decode_step) for _ in range(tokens)]
            if i >= warmup:
                run_s.append(sum(times))
                step_s.extend(times)
            done()
    runtime.reset()
    return {"run_s": run_s, "step_s": step_s}


def batch_rows(ids: Sequence[int], batch: int, length: int) -> list[list[int]]:
    """``batch`` different prompts of ``length`` tokens cut one after another from ``ids``."""
    if len(ids) < batch * length:
        raise ValueError(f"need {batch * length} tokens for {batch} prompts of {length}, have {len(ids)}")
    return [list(ids[b * length : (b + 1) * length]) for b in range(batch)]
