"""Memory: the seed formula, the real breakdown (weights, KV cache, activations, overhead),
and how each engine reserves device memory (:class:`EngineMemory`: vLLM's share of the GPU,
its KV blocks and profiling pass; llama.cpp's compute buffer).

Units: the seed formula is decimal GB (1e9 bytes), as it is usually quoted; the breakdown is
GiB (2**30 bytes), as GPU memory is reported.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from compress import formulas
from compress.planner import profiles
from compress.model.spec import ModelSpec

GIB = 2**30
GB = 1e9

#: M = P * 4 B / (32 / Q) * 1.2 -- the back-of-the-envelope rule for serving memory.
SEED_FORMULA = "M = P * 4 B / (32 / Q) * 1.2"
SEED_SOURCE = ("serving rule of thumb (Substratus blog, 'Calculating GPU memory for serving LLMs'): "
               "4 bytes per fp32 parameter scaled to Q bits, plus 20% for KV cache, activations and runtime")


def seed_memory_gb(params: float, bits: int) -> float:
    """Seed formula in decimal GB: ``params * 4 / (32 / bits) * 1.2 / 1e9``.

    Worked examples: 7e9 params at 16 bits = 16.8 GB, at 8 bits = 8.4 GB; 1.23e9 at 16 bits = 2.952 GB.
    """
    return params * 4 / (32 / bits) * 1.2 / GB


def nominal_params(name: str) -> float | None:
    """The size a model name advertises ('llama-2-7b' -> 7e9, 'smollm2-135m' -> 1.35e8)."""
    m = re.search(r"(?:^|[-_/])(\d+(?:\.\d+)?)([bm])(?:$|[-_])", name.lower())
    if not m:
        return None
    return float(m.group(1)) * (1e9 if m.group(2) == "b" else 1e6)


def seed_formula(spec: ModelSpec, bits: tuple[int, ...] = (16, 8, 4)) -> dict[str, Any]:
    """The seed formula's numbers for ``spec`` at each of ``bits``, with P from the architecture."""
    nominal = nominal_params(spec.name)
    rows = []
    for q in bits:
        row = {"bits": q, "memory_gb": round(seed_memory_gb(spec.params, q), 3)}
        if nominal:
            row["memory_gb_nominal"] = round(seed_memory_gb(nominal, q), 3)
        rows.append(row)
    return {"formula": SEED_FORMULA, "unit": "GB (1e9 bytes)", "params": spec.params,
            "params_nominal": nominal, "rows": rows, "source": SEED_SOURCE}


def kv_bytes_per_element(kv_dtype: str) -> float:
    table = profiles.load("formats.toml")["kv_bytes"]
    return float(table[kv_dtype])


def kv_cache_bytes(spec: ModelSpec, context: int, batch: int = 1, bytes_per_element: float = 2.0) -> int:
    """KV cache of ``spec`` in bytes (:func:`compress.formulas.kv_cache_bytes`: GQA- and
    sliding-window-aware)."""
    return int(formulas.kv_cache_bytes(spec.layers, spec.kv_heads, spec.head_dim, context, bytes_per_element, batch,
                                       spec.sliding_window, spec.sliding_window_layers))


def prefill_activation_bytes(spec: ModelSpec, tokens_per_pass: int, bytes_per_element: int = 2) -> int:
    """Largest live activations while one layer processes ``tokens_per_pass`` prompt tokens
    (summed over the batch): tokens * (2 * hidden [residual in/out] + 2 * intermediate *
    experts_per_token [gate and up outputs]) * bytes. Attention scores are not counted:
    FlashAttention / SDPA memory-efficient kernels and llama.cpp's flash attention never
    materialise them."""
    per_token = 2 * spec.hidden + 2 * spec.intermediate * spec.experts_per_token
    return int(tokens_per_pass * per_token * bytes_per_element)


def logits_bytes(spec: ModelSpec, positions: int) -> int:
    """fp32 logits of ``positions`` positions: positions * vocab * 4 bytes (one position a
    sequence when generating; every position of a window when scoring perplexity)."""
    return positions * spec.vocab * 4


@dataclass(frozen=True)
class MemoryBreakdown:
    """Peak memory of serving one variant, per device, in GiB."""

    weights_gib: float
    kv_cache_gib: float
    activations_gib: float
    overhead_gib: float
    #: Buffers a runtime adds once loaded (compute buffers, logits copies, its libraries).
    buffers_gib: float = 0.0
    #: The part of ``overhead_gib`` the engine keeps outside its memory budget (vLLM: the
    #: CUDA context and CUDA graphs, beside its --gpu-memory-utilization share).
    outside_budget_gib: float = 0.0

    @property
    def total_gib(self) -> float:
        return self.weights_gib + self.kv_cache_gib + self.activations_gib + self.overhead_gib + self.buffers_gib

    @property
    def in_budget_gib(self) -> float:
        """What must fit in the engine's budget: everything but ``outside_budget_gib``."""
        return self.total_gib - self.outside_budget_gib

    def to_dict(self) -> dict[str, float]:
        d = {k: round(v, 3) for k, v in asdict(self).items()}
        d["total_gib"] = round(self.total_gib, 3)
        return d


def engine_budget_gib(device_gib: float, headroom_gib: float, memory_fraction: float, outside_gib: float) -> float:
    """Memory an engine lets weights, activations and KV cache use on one device:
    min(memory_fraction x device memory, device memory - headroom - what it keeps outside).

    vLLM takes ``gpu_memory_utilization`` x total memory and sizes its KV cache in it
    (vllm/v1/worker/gpu_worker.py, determine_available_memory); an engine without such a
    share has memory_fraction 1 and nothing outside, so its budget is the device less the
    headroom.
    """
    return min(memory_fraction * device_gib, device_gib - headroom_gib - outside_gib)


def block_tokens(context: int, block: int) -> int:
    """Tokens a sequence of ``context`` tokens holds in a paged KV cache of ``block``-token
    blocks: whole blocks, ceil(context / block) x block (vLLM's PagedAttention allocation)."""
    return -(-context // block) * block if block > 1 else context


def breakdown(weight_bytes: int, kv_bytes: int, act_bytes: int, overhead_gib: float, devices: int = 1,
              kv_shards: int | None = None, buffer_bytes: int = 0, outside_budget_gib: float = 0.0) -> MemoryBreakdown:
    """Per-device breakdown; with tensor parallelism weights split over ``devices`` and the KV
    cache over ``kv_shards`` (KV heads cannot be split finer than one head a device)."""
    shards = kv_shards or devices
    return MemoryBreakdown(
        weights_gib=weight_bytes / devices / GIB,
        kv_cache_gib=kv_bytes / shards / GIB,
        activations_gib=act_bytes / GIB,
        overhead_gib=overhead_gib,
        buffers_gib=buffer_bytes / GIB,
        outside_budget_gib=outside_budget_gib,
    )


@dataclass(frozen=True)
class EngineMemory:
    """How an engine reserves device memory, from its ``[runtime.X]`` table in
    profiles/runtimes.toml (each key's source is there). An engine without these keys uses
    the device less the headroom, holds exactly the tokens it needs, and is sized by the
    prefill pass of the planned batch."""

    #: Share of the device the engine may use (vLLM's gpu_memory_utilization).
    fraction: float = 1.0
    #: The option that sets ``fraction`` ("--gpu-memory-utilization").
    option: str | None = None
    #: Overhead the engine counts inside its budget (vLLM's non-torch memory).
    budget_overhead_gib: float = 0.0
    #: Overhead it keeps outside its budget (CUDA context, CUDA graphs).
    outside_gib: float = 0.0
    #: KV-cache block size in tokens (1: no paging).
    kv_block_tokens: int = 1
    #: Activations reserved for a profiling pass of the whole prefill chunk, whatever the batch.
    profile_activations: bool = False
    #: Sampler logits reserved by that pass: sequences x copies x vocab x 4 bytes.
    sampler_logit_rows: int = 0
    #: A compute buffer for the logits of every position of one prefill pass (llama.cpp).
    compute_buffer_logits: bool = False

    @classmethod
    def of(cls, rt: dict[str, Any], cpu: bool, fraction: float | None = None) -> EngineMemory:
        """The engine's memory rules on a GPU; on the CPU only its plain overhead counts.
        ``fraction`` replaces the engine's default share where it has one."""
        if cpu:
            return cls()
        has_share = "memory_fraction" in rt
        return cls(
            fraction=(fraction if fraction is not None else float(rt["memory_fraction"])) if has_share else 1.0,
            option=rt.get("memory_fraction_option"),
            budget_overhead_gib=float(rt.get("budget_overhead_gib", 0.0)),
            outside_gib=float(rt["overhead_gib"]) + float(rt.get("cuda_graph_gib", 0.0)) if has_share else 0.0,
            kv_block_tokens=int(rt.get("kv_block_tokens", 1)),
            profile_activations=bool(rt.get("profile_activations", False)),
            sampler_logit_rows=int(rt.get("profile_sampler_sequences", 0)) * int(rt.get("profile_sampler_copies", 0)),
            compute_buffer_logits=bool(rt.get("compute_buffer_logits", False)),
        )

    def budget_gib(self, device_gib: float, headroom_gib: float) -> float:
        return engine_budget_gib(device_gib, headroom_gib, self.fraction, self.outside_gib)
