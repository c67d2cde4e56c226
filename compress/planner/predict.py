"""Predictions for one variant on one device: runtime, kernel, memory, speed, quality.

:func:`predict_variant` is what ``plan`` evaluates for each candidate and what ``bench`` puts
next to its measurements. Which kernel serves a format on a compute capability comes from
the rules in ``profiles/kernels.toml``; efficiencies from ``profiles/runtimes.toml``.
"""

from __future__ import annotations

import dataclasses

import math
from dataclasses import dataclass
from typing import Any

from compress import variants
from compress.errors import UserInputError
from compress.planner import formats, memory, profiles, quality, roofline
from compress.planner.hardware import GpuProfile, kernel_rules, kernel_support
from compress.planner.spec import ModelSpec

GIB = 2**30


@dataclass(frozen=True)
class KernelChoice:
    """How a variant runs on a device: runtime, kernel, speed key, and whether it runs at all."""

    runtime: str
    kernel: str
    speed_key: str
    supported: bool
    compute_dtype: str
    reasons: tuple[str, ...] = ()
    sparse_kernels: bool = False


def runtimes() -> dict[str, Any]:
    return profiles.load("runtimes.toml")


def default_context(spec: ModelSpec) -> int:
    return min(spec.max_context, runtimes()["defaults"]["context_tokens"])


def choose_kernel(variant: variants.Variant, gpu: GpuProfile, runtime: str | None = None) -> KernelChoice:
    """Runtime and kernel for ``variant`` on ``gpu``, with the compatibility reasons."""
    step = formats.storage_step(variant)
    prune = next((s for s in variant.steps if s.method == "prune"), None)
    c, cpu = step.config, gpu.kind == "cpu"
    key = step.descriptor.runtime_key(step.settings)
    table = runtimes()["method_runtime"]["cpu" if cpu else "gpu"]
    rt = runtime or table.get(key, "transformers")
    reasons: list[str] = []
    supported, kernel, speed, dtype, sparse = True, "dense", "dense", "fp16", False

    def need(rule: str) -> bool:
        ok, why = kernel_support(gpu, rule)
        if not ok:
            reasons.append(why)
        return ok

    def has(rule: str, what: str) -> bool:
        """A fast kernel that has a slower fallback: say so briefly when it is missing."""
        ok, _ = kernel_support(gpu, rule)
        if not ok:
            reasons.append(f"no {rule.replace('_', ' ').title()} {what} kernel below "
                           f"sm{kernel_rules()[rule]['min_cc'].replace('.', '')}: slower fallback kernel")
        return ok

    if cpu:
        dtype = "fp32"
        if step.method in ("gptq", "awq", "bnb"):
            kernel, speed = f"{step.method}-cpu", "cpu_dequant"
        elif step.method == "gguf":
            kernel, speed = "llama.cpp-cpu", "gguf"
        if prune and prune.config.get("pattern") == "2:4":
            reasons.append("no 2:4 sparse kernels on the CPU: stored dense, no speedup, no memory saved")
    elif step.method == "baseline":
        dtype = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}[c["dtype"]]
        if dtype == "bf16" and not need("bf16"):
            supported = False
            reasons.append("use fp16 instead (bf16 would be emulated, slowly)")
    elif step.method == "bnb":
        rule = "bnb_int8" if c["quant_type"] == "int8" else "bnb_4bit"
        kernel, speed = rule, rule
        supported = need(rule)
    elif step.method == "gptq":
        marlin = c["bits"] in (4, 8) and has("marlin", "GPTQ")
        if marlin:
            kernel, speed = "marlin", "marlin"
        elif c["bits"] == 4 and need("gptq_exllamav2"):
            kernel, speed = "gptq_exllamav2", "gptq_exllamav2"
        else:
            kernel, speed = "gptq_cuda", "gptq_cuda"
            supported = need("gptq_cuda")
            if c["bits"] not in (4, 8):
                reasons.append(f"{c['bits']}-bit GPTQ has no Marlin/exllama kernel: generic CUDA kernel, slower")
    elif step.method == "awq":
        if has("marlin", "AWQ"):
            kernel, speed = "awq_marlin", "marlin"
        elif need("awq_gemm"):
            kernel, speed = "awq_gemm", "awq_gemm"
        else:
            kernel, speed, supported = "awq_gemm", "awq_gemm", False
    elif step.method == "gguf":
        kernel, speed = "llama_cpp_cuda", "gguf"
        supported = need("llama_cpp_cuda")
    if not cpu and rt == "vllm":
        supported = need("vllm") and supported
    if prune is not None and not cpu:
        if prune.config.get("pattern") == "2:4":
            sparse = rt == "vllm" and need("sparse_2_4") and step.method == "prune"
            if sparse:
                reasons.append("2:4 sparse kernels (sm80+): linear layers stored compressed (9 bits/weight) and ~1.2x faster")
            elif step.method != "prune":
                reasons.append("2:4 sparsity under a quantized format: the kernels are dense, no extra saving")
            elif rt != "vllm":
                reasons.append("stored dense: no memory saved, no speedup")
        else:
            reasons.append("unstructured sparsity saves nothing in dense kernels: same memory and speed as the dense model")
    if dtype == "fp16" and not cpu and gpu.cc is not None and gpu.cc >= 8.0 and step.method != "baseline":
        dtype = "bf16" if "bf16" in gpu.tflops else "fp16"
    return KernelChoice(rt, kernel, speed, supported, dtype, tuple(reasons), sparse)


def _read_bytes(spec: ModelSpec, weight_bytes: int, batch: int) -> float:
    """Weight bytes one decode step reads: all but the embedding table (one row is read), and
    for MoE only the experts the batch routes to (expected distinct experts: 1-(1-k/E)^batch)."""
    embed_share = spec.vocab * spec.hidden / spec.params if not spec.tied_embeddings else 0.0
    read = weight_bytes * (1 - embed_share)
    if spec.experts > 1:
        expert_share = spec.layers * 3 * spec.hidden * spec.intermediate * spec.experts / spec.params
        touched = 1 - (1 - spec.experts_per_token / spec.experts) ** batch
        read -= weight_bytes * expert_share * (1 - touched)
    return read


def predict_variant(spec: ModelSpec, gpu: GpuProfile, variant_name: str, context: int | None = None, batch: int = 1, *,
                    gpus: int = 1, kv_dtype: str = "fp16", runtime: str | None = None, headroom_gib: float = 0.0,
                    prompt_tokens: int | None = None) -> dict[str, Any]:
    """Predicted memory, speed and quality of one variant of ``spec`` on ``gpu`` (x ``gpus``)."""
    v = variants.parse(variant_name)
    rt_data = runtimes()
    context = context or default_context(spec)
    if batch < 1 or gpus < 1 or context < 1:
        raise UserInputError(f"batch, gpus and context must be positive, got batch={batch}, gpus={gpus}, context={context}")
    try:
        model = formats.variant_spec(spec, v)
    except ValueError as err:
        raise UserInputError(f"variant {v.name!r} does not apply to {spec.name}: {err}") from None
    choice = choose_kernel(v, gpu, runtime)
    if choice.runtime not in rt_data["runtime"]:
        raise UserInputError(f"unknown runtime {choice.runtime!r}; known: {', '.join(sorted(rt_data['runtime']))}")
    rt = rt_data["runtime"][choice.runtime]
    cpu = gpu.kind == "cpu"
    devices = 1 if cpu else gpus

    artifact = formats.weight_bytes(spec, v)
    resident = formats.weight_bytes(spec, v, sparse_storage=choice.sparse_kernels)
    kv_elem = memory.kv_bytes_per_element(kv_dtype)
    kv = memory.kv_cache_bytes(model, context, batch, kv_elem)
    chunk = min(context, rt_data["defaults"]["prefill_chunk_tokens"])
    act = memory.activation_bytes(model, chunk, batch, 4 if choice.compute_dtype == "fp32" else 2)
    overhead = rt["cpu_overhead_gib" if cpu else "overhead_gib"]
    mem = memory.breakdown(resident, kv, act, overhead, devices, kv_shards=min(devices, model.kv_heads))
    usable = gpu.usable_memory_gib - headroom_gib
    margin = usable - mem.total_gib

    tp = 1.0 if devices == 1 else rt_data["tensor_parallel"]["efficiency"]
    kernel_factor = rt_data["kernel_speed"].get(choice.speed_key, 1.0)
    device = roofline.Device(
        bandwidth_gbs=gpu.memory_bandwidth_gbs * devices * tp,
        peak_tflops=gpu.peak_tflops(choice.compute_dtype) * devices * tp,
        bandwidth_efficiency=rt["cpu_bandwidth_efficiency" if cpu else "bandwidth_efficiency"] * kernel_factor,
        compute_efficiency=rt["compute_efficiency"],
        layer_overhead_us=rt["cpu_layer_overhead_us" if cpu else "layer_overhead_us"],
    )
    speedup = rt_data["sparse_2_4"]["linear_speedup"] if choice.sparse_kernels else 1.0
    prompt = min(prompt_tokens or rt_data["defaults"]["prompt_tokens"], context)
    kv_prompt = memory.kv_cache_bytes(model, prompt, batch, kv_elem)
    read = _read_bytes(model, formats.weight_bytes(spec, v), batch) + kv_prompt
    attn = roofline.attention_flops(model.layers, model.heads, model.head_dim, prompt)
    flops = roofline.decode_flops(model.matmul_params, batch, attn)
    # Decode pays more per layer than prefill in eager runtimes (a generate() step per token),
    # and some kernels launch extra work per layer: both measured, see profiles/runtimes.toml.
    decode_overhead_us = rt.get("cpu_decode_layer_overhead_us" if cpu else "decode_layer_overhead_us",
                                device.layer_overhead_us)
    if not cpu:
        decode_overhead_us += rt_data.get("kernel_layer_overhead_us", {}).get(choice.speed_key, 0.0)
    decode_device = dataclasses.replace(device, layer_overhead_us=decode_overhead_us)
    tok_s = roofline.decode_tok_s(read, flops, model.layers, batch, decode_device, speedup)
    pf = roofline.prefill_flops(model.matmul_params, prompt, batch, model.layers, model.heads, model.head_dim)
    ttft = roofline.ttft_ms(pf, read, model.layers, math.ceil(prompt / chunk), device, speedup)
    q = quality.estimate(spec, v)

    reasons = list(choice.reasons)
    fits = margin >= 0
    if not fits:
        reasons.insert(0, f"too big: needs {mem.total_gib:.1f} GiB per device, {usable:.1f} GiB usable "
                          f"({-margin:.1f} GiB short)")
    if model is not spec and model.name != spec.name:
        reasons.append(f"model becomes {model.name} ({model.layers} layers, {model.params / 1e9:.2f}B params)")
    if v.method == "distill" or any(s.method == "distill" for s in v.steps):
        reasons.append("needs a distillation (training) run before it can be served")
    return {
        "variant": v.name,
        "method": v.method,
        "config": {**formats.storage_step(v).config, **({"student": model.name} if model.name != spec.name else {})},
        "runtime": choice.runtime,
        "kernel": choice.kernel,
        "supported": choice.supported,
        "fits": bool(fits and choice.supported),
        "margin_gib": round(margin, 3),
        "reasons": reasons,
        "memory": mem.to_dict(),
        "predicted": {
            "artifact_gib": round(artifact / GIB, 3),
            "artifact_gb": round(artifact / 1e9, 3),
            "bits_per_weight": round(8 * artifact / model.params, 3),
            "peak_memory_gib": round(mem.total_gib, 3),
            "decode_tok_s": round(tok_s, 2),
            "ttft_ms": round(ttft, 1),
            "prompt_tokens": prompt,
            **q.to_dict(),
        },
    }


def artifact_bytes(spec: ModelSpec, variant_name: str) -> int:
    """Size of the saved artifact (all weight tensors, GGUF metadata included) in bytes."""
    return formats.weight_bytes(spec, variants.parse(variant_name))
