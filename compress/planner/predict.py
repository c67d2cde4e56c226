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

from compress import dtypes, engines, variants
from compress.errors import UserInputError
from compress.planner import formats, kernel_data, memory, profiles, quality, roofline
from compress.planner.document import Reason
from compress.planner.hardware import GpuProfile, kernel_rules, kernel_support
from compress.model.spec import ModelSpec
from compress.model.tensors import tensors

GIB = 2**30


@dataclass(frozen=True)
class KernelChoice:
    """How a variant runs on a device: runtime, kernel, speed key, and whether it runs at all."""

    runtime: str
    kernel: str
    speed_key: str
    supported: bool
    compute_dtype: str
    reasons: tuple[Reason, ...] = ()
    sparse_kernels: bool = False


def runtimes() -> dict[str, Any]:
    return profiles.load("runtimes.toml")


def default_context(spec: ModelSpec) -> int:
    return min(spec.max_context, runtimes()["defaults"]["context_tokens"])


def engines_for(variant: variants.Variant, gpu: GpuProfile) -> list[str]:
    """Engines that serve ``variant``'s artifact on this kind of device, most deployable first."""
    tables = runtimes()["engines"]
    table = tables["cpu" if gpu.kind == "cpu" else gpu.backend if gpu.backend in tables else "gpu"]
    step = formats.storage_step(variant)
    return list(table.get(step.descriptor.runtime_key(step.settings), []))


def _weight_bits(step: variants.Step) -> int | None:
    return step.descriptor.weight_bits(step.settings)


def _matmul_kernels(step: variants.Step) -> list[str]:
    """The method's kernels that engines ship (rows with ``engines``), fastest first."""
    rules = kernel_rules()
    return [k for k in step.descriptor.kernels if rules[k].get("engines")]


def _runs_on(gpu: GpuProfile, name: str) -> tuple[bool, str]:
    """kernel_support plus the rule's exclusive ``max_cc`` (architectures that dropped a kernel)."""
    ok, why = kernel_support(gpu, name)
    rule = kernel_rules()[name]
    if ok and rule.get("max_cc") and gpu.cc is not None and gpu.cc >= float(rule["max_cc"]):
        return False, (f"{rule['what']} is not built for sm{rule['max_cc'].replace('.', '')}+, "
                       f"{gpu.display_name} is sm{gpu.compute_capability.replace('.', '')}")
    return ok, why


def _speed_factor(name: str) -> float:
    rule = kernel_rules()[name]
    return runtimes()["kernel_speed"].get(rule.get("speed", name), 1.0)


def pick_kernel(gpu: GpuProfile, engine: str, step: variants.Step,
                device: str = "cuda") -> tuple[str | None, list[str], str | None]:
    """The first of the method's kernels (its descriptor's list) that ``engine`` runs on ``gpu``.

    Returns (kernel name or None, reasons, why-not when none runs). A faster kernel that was
    passed over, or one with quantized activations where the chosen one computes in 16 bits,
    is named in the reasons with the compute capability it needs.
    """
    rules = kernel_rules()
    bits = _weight_bits(step)
    mine = [(n, rules[n]) for n in step.descriptor.kernels
            if engine in rules[n].get("engines", ()) and rules[n].get("device", "cuda") == device]
    fitting = [(n, r) for n, r in mine if bits is None or bits in r.get("weight_bits", (bits,))]
    if device != "cuda":
        return (fitting[0][0] if fitting else None), [], None
    skipped: list[tuple[str, str]] = []  # (kernel, why it does not run here)
    for name, rule in fitting:
        ok, why = _runs_on(gpu, name)
        if not ok:
            skipped.append((name, why))
            continue
        return name, _passed_over(gpu, name, mine, fitting, skipped[-1:], bits, step), None
    if not fitting:
        return None, [], f"{engine} has no kernel for {variants.step_name(step)} artifacts"
    return None, [], skipped[-1][1]


def _short_why(gpu: GpuProfile, name: str) -> str:
    """"<kernel> kernel needs smNN+" or "... is not built for smNN+": the bound the GPU misses."""
    rule = kernel_rules()[name]
    if gpu.cc is not None and rule.get("max_cc") and gpu.cc >= float(rule["max_cc"]):
        return f"{name} kernel is not built for sm{rule['max_cc'].replace('.', '')}+"
    return f"{name} kernel needs sm{rule['min_cc'].replace('.', '')}+"


def _passed_over(gpu: GpuProfile, name: str, mine: list[tuple[str, dict[str, Any]]],
                 fitting: list[tuple[str, dict[str, Any]]], skipped: list[tuple[str, str]], bits: int | None,
                 step: variants.Step) -> list[str]:
    """Why a faster kernel does not serve this candidate: the one just before the chosen kernel
    that this GPU lacks (``skipped``), or one that runs here but not at this weight width."""
    rules, rule = kernel_rules(), kernel_rules()[name]
    reasons = []
    if skipped:
        other = skipped[-1][0]
        why = _short_why(gpu, other)
        lost = set(rules[other].get("act_dtypes", ())) - set(rule.get("act_dtypes", ())) - {"fp16", "bf16", "fp32"}
        if lost:
            reasons.append(f"{why}: weight-only through {name} (no {'/'.join(sorted(lost))} activations)")
        elif _speed_factor(other) > _speed_factor(name):
            reasons.append(f"{why}: {name}, slower")
    widths = set(rule.get("weight_bits", ()))
    for other, other_rule in [] if reasons else mine[:[n for n, _ in mine].index(name)]:
        # a generic kernel (more widths) chosen because the fast one lacks this width
        if other not in dict(fitting) and widths > set(other_rule.get("weight_bits", ())) \
                and _runs_on(gpu, other)[0] and _speed_factor(other) > _speed_factor(name):
            reasons.append(f"no {bits}-bit {other} kernel: {name}, slower")
            break
    return reasons


def choose_kernel(variant: variants.Variant, gpu: GpuProfile, runtime: str | None = None) -> KernelChoice:
    """Engine and kernel for ``variant`` on ``gpu``, with the compatibility reasons.

    ``runtime`` (an engine name) forces the engine; otherwise the first engine of the format's
    list in ``runtimes.toml [engines]`` whose kernel runs on the device is taken.
    """
    if runtime and runtime != engines.ANY:
        return _engine_choice(variant, gpu, runtime)
    served = engines_for(variant, gpu) or [engines.DEFAULT]
    choices = [_engine_choice(variant, gpu, e) for e in served]
    return next((c for c in choices if c.supported), choices[0])


def _engine_choice(variant: variants.Variant, gpu: GpuProfile, rt: str) -> KernelChoice:
    step = formats.storage_step(variant)
    prune = next((s for s in variant.steps if s.method == "prune"), None)
    c, cpu, engine = step.config, gpu.kind == "cpu", engines.engine(rt)
    reasons: list[Reason] = []
    supported, kernel, speed, dtype, sparse = True, "dense", "dense", "fp16", False
    served = engines_for(variant, gpu)
    if rt not in served:
        where = "the CPU" if cpu else "a GPU"
        reasons.append(Reason("engine_unsupported", f"{rt} does not serve {variants.step_name(step)} artifacts on {where}"
                              + (f"; {', '.join(served)} does" if served else "")))
        supported = False

    def need(rule: str) -> bool:
        ok, why = kernel_support(gpu, rule)
        if not ok:
            reasons.append(Reason("kernel_missing", why))
        return ok

    if cpu:
        dtype = "fp32"
        if getattr(step.descriptor, "planned_only", False):
            supported = False
            reasons.append(Reason("kernel_missing", f"{variants.step_name(step)} needs FP4 tensor cores; not on the CPU"))
        kernel, speed = _cpu_kernel(gpu, engine, step)
        if prune and prune.config.get("pattern") == "2:4":
            reasons.append(Reason("sparsity_no_gain", "no 2:4 sparse kernels on the CPU: stored dense, no speedup, no memory saved"))
    elif step.method == "baseline":
        dtype = dtypes.SHORT_NAMES[c["dtype"]]
        if dtype == "bf16" and not need("bf16"):
            supported = False
            reasons.append(Reason("dtype_emulated", "use fp16 instead (bf16 would be emulated, slowly)"))
    elif _matmul_kernels(step):
        found, why_chosen, why_not = pick_kernel(gpu, rt, step, device="metal" if gpu.backend == "metal" else "cuda")
        if found is None:
            supported = False
            kernel = _matmul_kernels(step)[0]  # the kernel the format needs
            reasons.append(Reason("kernel_missing",
                                  why_not or f"no kernel for {variants.step_name(step)} on {gpu.display_name}"))
        else:
            rule = kernel_rules()[found]
            kernel, speed = found, rule.get("speed", found)
            dtype = rule.get("compute", dtype)
            reasons += [Reason("kernel_fallback", why) for why in why_chosen]
    if not cpu and getattr(step.descriptor, "planned_only", False):
        reasons.append(Reason("planned_only", f"{variants.step_name(step)}: planned only, `compress apply` cannot write it yet"))
    if not cpu and engine.gpu_rule is not None:
        supported = need(engine.gpu_rule) and supported
    if prune is not None and not cpu:
        sparse, said = _gpu_sparsity(gpu, engine, prune, step)
        reasons += said
    if dtype == "fp16" and not cpu and step.method != "baseline" and kernel_support(gpu, "bf16")[0]:
        dtype = "bf16" if "bf16" in gpu.tflops else "fp16"
    return KernelChoice(rt, kernel, speed, supported, dtype, tuple(reasons), sparse)


def _cpu_kernel(gpu: GpuProfile, engine: type[engines.Engine], step: variants.Step) -> tuple[str, str]:
    """Kernel and speed key on the CPU: the method's own CPU kernel for this engine (vLLM's
    oneDNN W8A8), else the engine's, else a path that dequantizes each block before the
    matmul (GPTQ/AWQ/bnb), else dense."""
    found, _, _ = pick_kernel(gpu, engine.name, step, device="cpu")
    if found is not None:
        return found, kernel_rules()[found].get("speed", found)
    if engine.cpu_kernel is not None:
        return engine.cpu_kernel
    if _weight_bits(step) is not None:
        return f"{step.method}-cpu", "cpu_dequant"
    return "dense", "dense"


def _gpu_sparsity(gpu: GpuProfile, engine: type[engines.Engine], prune: variants.Step,
                  step: variants.Step) -> tuple[bool, list[Reason]]:
    """Whether a pruned candidate runs 2:4 sparse kernels on ``gpu``, and what the plan says of
    its sparsity (unstructured or under a quantized format, it saves nothing)."""
    if prune.config.get("pattern") != "2:4":
        return False, [Reason("sparsity_no_gain", "unstructured sparsity saves nothing in dense kernels: "
                              "same memory and speed as the dense model")]
    reasons, sparse = [], False
    if engine.sparse_2_4:
        ok, why = kernel_support(gpu, "sparse_2_4")
        if not ok:
            reasons.append(Reason("kernel_missing", why))
        sparse = ok and step.method == "prune"
    if sparse:
        reasons.append(Reason("sparse_kernels", "2:4 sparse kernels (sm80+): linear layers stored compressed "
                              "(9 bits/weight) and ~1.2x faster"))
    elif step.method != "prune":
        reasons.append(Reason("sparsity_no_gain", "2:4 sparsity under a quantized format: the kernels are dense, "
                              "no extra saving"))
    elif not engine.sparse_2_4:
        reasons.append(Reason("sparsity_no_gain", "stored dense: no memory saved, no speedup"))
    return sparse, reasons


def batch_factor(engine: str, batch: int) -> float:
    """The engine's decode efficiency at ``batch`` relative to batch 1, from the published
    points in ``runtimes.toml [batch_efficiency]``, interpolated in log(batch)."""
    points = sorted(runtimes().get("batch_efficiency", {}).get(engine, {}).get("points", [[1, 1.0]]))
    if batch <= points[0][0]:
        return float(points[0][1])
    for (b0, f0), (b1, f1) in zip(points, points[1:]):
        if batch <= b1:
            t = math.log(batch / b0) / math.log(b1 / b0)
            return float(f0 + t * (f1 - f0))
    return float(points[-1][1])


def _read_bytes(spec: ModelSpec, weight_bytes: int, batch: int) -> float:
    """Weight bytes one decode step reads (:func:`compress.formulas.decode_weight_bytes`)."""
    from compress.formulas import decode_weight_bytes

    return decode_weight_bytes(weight_bytes, spec.params, spec.vocab, spec.hidden, spec.tied_embeddings,
                               spec.layers, spec.intermediate, spec.experts, spec.experts_per_token, batch)


def prefill_tokens_per_pass(rt: dict[str, Any], prompt_tokens: int, batch: int) -> int:
    """Tokens one prefill forward pass holds: the runtime's ``prefill_chunk_tokens`` over the
    whole batch, or every prompt token of the batch where it is 0 (transformers)."""
    chunk = int(rt.get("prefill_chunk_tokens", 0))
    total = prompt_tokens * batch
    return total if chunk <= 0 else min(total, chunk)


@dataclass(frozen=True)
class _Shape:
    """What memory depends on for one variant on one device, to size it at any context and batch."""

    model: ModelSpec
    choice: KernelChoice
    rt: dict[str, Any]
    cpu: bool
    devices: int
    kv_elem: float
    resident_bytes: int
    method: str
    engine: memory.EngineMemory = memory.EngineMemory()

    def breakdown_at(self, context: int, batch: int, logits_positions: int | None = None) -> memory.MemoryBreakdown:
        model, rt, engine = self.model, self.rt, self.engine
        kv = memory.kv_cache_bytes(model, memory.block_tokens(context, engine.kv_block_tokens), batch, self.kv_elem)
        act_elem = 4 if self.choice.compute_dtype == "fp32" else 2
        # A profiling engine reserves the peak of a full chunk, not of the planned prompts.
        pass_tokens = (int(rt["prefill_chunk_tokens"]) if engine.profile_activations
                       else prefill_tokens_per_pass(rt, context, batch))
        act = memory.prefill_activation_bytes(model, pass_tokens, act_elem)
        positions = batch if logits_positions is None else logits_positions
        act += memory.logits_bytes(model, positions) + memory.logits_bytes(model, engine.sampler_logit_rows)
        if self.cpu:
            buffers = host_buffer_bytes(rt, self.method, model, positions, prefill_tokens_per_pass(rt, context, batch))
        else:
            buffers = memory.logits_bytes(model, int(rt["prefill_chunk_tokens"])) if engine.compute_buffer_logits else 0
        overhead = rt["cpu_overhead_gib"] if self.cpu else \
            rt["overhead_gib"] + rt.get("cuda_graph_gib", 0.0) + engine.budget_overhead_gib
        return memory.breakdown(self.resident_bytes, kv, act, overhead, self.devices,
                                kv_shards=min(self.devices, model.kv_heads), buffer_bytes=buffers,
                                outside_budget_gib=engine.outside_gib)

    def capacity(self, budget_gib: float, context: int, batch: int, model_max_context: int) -> dict[str, int]:
        """Largest context at ``batch`` and largest batch at ``context`` whose memory fits the
        engine's budget (0 where none does). Memory grows with both, so a binary search finds each."""
        def fits(c: int, b: int) -> bool:
            return self.breakdown_at(c, b).in_budget_gib <= budget_gib

        return {"max_context": _largest(lambda c: fits(c, batch), model_max_context),
                "max_batch": _largest(lambda b: fits(context, b), MAX_BATCH_SEARCHED)}


#: The largest batch the capacity search tries.
MAX_BATCH_SEARCHED = 65536


def _largest(ok: Any, upper: int) -> int:
    """The largest n in 1..upper with ok(n), for ok true up to some n and false after; 0 if none."""
    if not ok(1):
        return 0
    if ok(upper):
        return upper
    lo, hi = 1, upper  # ok(lo), not ok(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def host_buffer_bytes(rt: dict[str, Any], method: str, model: ModelSpec, logits_positions: int,
                      tokens_per_pass: int) -> int:
    """What a runtime allocates on the host besides weights, KV cache and activations: its
    fixed cost once loaded (``cpu_buffers_fixed_bytes``, plus ``cpu_method_bytes`` of the
    method's library), copies of the kept logits beyond the one counted with the activations
    (``cpu_logits_copies`` x positions x vocab x 4 bytes) and a compute buffer holding the
    logits one pass outputs (``cpu_pass_logits`` x min(positions, tokens per pass) x vocab x 4).
    The constants are in profiles/runtimes.toml with their sources."""
    fixed = rt.get("cpu_buffers_fixed_bytes", 0) + rt.get("cpu_method_bytes", {}).get(method, 0)
    logits = rt.get("cpu_logits_copies", 0) * logits_positions * model.vocab * 4
    compute = rt.get("cpu_pass_logits", 0) * min(logits_positions, tokens_per_pass) * model.vocab * 4
    return int(fixed + logits + compute)


def predict_variant(spec: ModelSpec, gpu: GpuProfile, variant_name: str, context: int | None = None, batch: int = 1, *,
                    gpus: int = 1, kv_dtype: str = "fp16", runtime: str | None = None, headroom_gib: float = 0.0,
                    prompt_tokens: int | None = None, logits_positions: int | None = None,
                    memory_fraction: float | None = None) -> dict[str, Any]:
    """Predicted memory, speed and quality of one variant of ``spec`` on ``gpu`` (x ``gpus``).

    ``memory_fraction`` replaces the engine's own share of the device where it has one
    (vLLM's --gpu-memory-utilization); the variant fits when what the engine holds in its
    budget fits there and its overhead outside the budget fits in the rest.

    Memory is held at ``context`` tokens for each of ``batch`` sequences, with the prefill in
    passes of the runtime's chunk. Decode speed is at a cache of ``context`` tokens, or of
    ``prompt_tokens`` where given. ``logits_positions``: positions whose logits are kept
    (default one a sequence; perplexity keeps every position of a window).
    """
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
    stored = formats.storage_step(v)
    artifact = formats.weight_bytes(spec, v)
    kv_elem = memory.kv_bytes_per_element(kv_dtype)
    engine = memory.EngineMemory.of(rt, cpu, memory_fraction)
    shape = _Shape(model=model, choice=choice, rt=rt, cpu=cpu, devices=devices, kv_elem=kv_elem,
                   resident_bytes=_resident_bytes(spec, v, model, choice, rt, cpu), method=stored.method,
                   engine=engine)
    mem = shape.breakdown_at(context, batch, logits_positions)
    budget = engine.budget_gib(gpu.usable_memory_gib, headroom_gib)
    margin = budget - mem.in_budget_gib
    capacity = shape.capacity(budget, context, batch, spec.max_context)
    prompt = min(prompt_tokens or rt_data["defaults"]["prompt_tokens"], context)
    # Decode is predicted with the cache as deep as the plan allows (the whole context) unless
    # the caller names the depth (bench: its decode test's prompt + half the generated tokens).
    depth = min(prompt_tokens, context) if prompt_tokens else context
    # A decode step reads the weights as the engine holds them: on the CPU, what the loader widened.
    held = shape.resident_bytes if cpu else artifact
    speed = _speed(spec, v, model, gpu, choice, devices, batch, depth, prompt, kv_elem, held)

    fits = margin >= 0
    reasons = ([] if fits else [_too_big(gpu, choice, engine, mem, budget, margin, capacity, batch, context)]) \
        + list(choice.reasons) + _notes(spec, v, model, choice.runtime, devices)
    return {
        "variant": v.name,
        "method": v.method,
        "config": {**stored.config, **({"student": model.name} if model.name != spec.name else {})},
        "runtime": choice.runtime,
        "kernel": choice.kernel,
        "supported": choice.supported,
        "fits": bool(fits and choice.supported),
        "margin_gib": round(margin, 3),
        "reasons": [r.text for r in reasons],
        "reason_codes": [r.code for r in reasons],
        "memory": {**mem.to_dict(), "engine_budget_gib": round(budget, 3),
                   **({"engine_memory_fraction": engine.fraction} if engine.option else {})},
        "predicted": {
            "artifact_gib": round(artifact / GIB, 3),
            "artifact_gb": round(artifact / 1e9, 3),
            "bits_per_weight": round(8 * artifact / model.params, 3),
            "peak_memory_gib": round(mem.total_gib, 3),
            **speed.to_dict(batch),
            "prefill_chunk_tokens": prefill_tokens_per_pass(rt, context, batch),
            "prompt_tokens": prompt,
            "max_context": capacity["max_context"],
            "max_batch": capacity["max_batch"],
            **quality.estimate(spec, v, kv_dtype).to_dict(),
        },
    }


def _resident_bytes(spec: ModelSpec, v: variants.Variant, model: ModelSpec, choice: KernelChoice,
                    rt: dict[str, Any], cpu: bool) -> int:
    """Weight bytes the engine holds once loaded: the stored bytes (2:4 sparse kernels keep the
    compressed form), and on the CPU what the loader widens to float32."""
    resident = formats.weight_bytes(spec, v, sparse_storage=choice.sparse_kernels)
    stored = formats.storage_step(v)
    if cpu and stored.method in rt.get("cpu_unquantized_fp32_methods", ()):
        # The loader keeps the tensors a quantizer leaves alone (embeddings, norms) in float32
        # on the CPU, where the artifact stores them in 16 bits.
        resident += 2 * sum(t.numel for t in tensors(model) if not t.is_linear)
    elif cpu and stored.method in rt.get("cpu_dense_fp32_methods", ()) and stored.config.get("dtype") != "float32":
        resident *= 2  # a 16-bit dense artifact is loaded as float32 on the CPU
    return resident


def _tensor_parallel(engine: str) -> bool:
    """Whether ``engine`` splits each layer across GPUs (``runtimes.toml [tensor_parallel]``)."""
    return engine in runtimes()["tensor_parallel"].get("engines", ())


def _roofline_device(gpu: GpuProfile, choice: KernelChoice, devices: int) -> roofline.Device:
    """The device the roofline sees: tensor-parallel engines sum the GPUs' bandwidth and FLOPs
    (at the measured efficiency), layer-split engines run one GPU at a time."""
    rt_data, cpu = runtimes(), gpu.kind == "cpu"
    rt = rt_data["runtime"][choice.runtime]
    parallel = devices if _tensor_parallel(choice.runtime) else 1
    tp = 1.0 if parallel == 1 else rt_data["tensor_parallel"]["efficiency"]
    kernel_factor = rt_data["kernel_speed"].get(choice.speed_key, 1.0)
    compute_factor = rt_data.get("kernel_compute_efficiency", {}).get(choice.kernel, 1.0)
    return roofline.Device(
        bandwidth_gbs=gpu.memory_bandwidth_gbs * parallel * tp,
        peak_tflops=gpu.peak_tflops(choice.compute_dtype) * parallel * tp,
        bandwidth_efficiency=rt["cpu_bandwidth_efficiency" if cpu else "bandwidth_efficiency"] * kernel_factor,
        compute_efficiency=rt["compute_efficiency"] * compute_factor,
        layer_overhead_us=rt["cpu_layer_overhead_us" if cpu else "layer_overhead_us"],
    )


@dataclass(frozen=True)
class _Speed:
    """The predicted speeds of one candidate, with the engine's band around each."""

    decode_tok_s: float
    ttft_ms: float  # every prompt of the batch sent together
    ttft_single_ms: float
    cache_tokens: int
    prompt_tokens: int
    engine: str
    measured_kernels: dict[str, Any] | None

    def to_dict(self, batch: int) -> dict[str, Any]:
        band = speed_band(self.engine)
        return {
            "decode_tok_s": round(self.decode_tok_s, 2),
            "decode_tok_s_band": _rate_band(self.decode_tok_s, band["decode"]),
            "decode_cache_tokens": self.cache_tokens,
            "ttft_ms": _ms(self.ttft_ms),
            "ttft_ms_band": _time_band(self.ttft_ms, band["prefill"]),
            "ttft_single_ms": _ms(self.ttft_single_ms),
            "ttft_single_ms_band": _time_band(self.ttft_single_ms, band["prefill"]),
            "speed_band_source": f"profiles/runtimes.toml [speed_band] {band_key(self.engine)}",
            **({"kernel_data": self.measured_kernels} if self.measured_kernels else {}),
            "ttft_semantics": (f"ttft_ms: all {batch} prompts of {self.prompt_tokens} tokens arrive together and "
                               f"each waits for the whole batch's prefill; ttft_single_ms: one prompt alone"
                               if batch > 1 else f"one prompt of {self.prompt_tokens} tokens"),
        }


def _speed(spec: ModelSpec, v: variants.Variant, model: ModelSpec, gpu: GpuProfile, choice: KernelChoice,
           devices: int, batch: int, depth: int, prompt: int, kv_elem: float, held_bytes: int) -> _Speed:
    """Decode speed at a cache of ``depth`` tokens and time to first token for ``prompt``-token
    prompts (the roofline), with NVIDIA's measured-kernel figures where they cover the candidate.
    ``held_bytes``: the weights as the engine holds them once loaded."""
    rt_data, cpu = runtimes(), gpu.kind == "cpu"
    rt = rt_data["runtime"][choice.runtime]
    device = _roofline_device(gpu, choice, devices)
    speedup = rt_data["sparse_2_4"]["linear_speedup"] if choice.sparse_kernels else 1.0
    weights_read = _read_bytes(model, held_bytes, batch)
    read = weights_read + memory.kv_cache_bytes(model, depth, batch, kv_elem)
    flops = roofline.decode_flops(model.matmul_params, batch, model.layers, model.heads, model.head_dim, depth)
    # Decode pays more per layer than prefill in eager runtimes (a generate() step per token),
    # and some kernels launch extra work per layer: both measured, see profiles/runtimes.toml.
    decode_overhead_us = rt.get("cpu_decode_layer_overhead_us" if cpu else "decode_layer_overhead_us",
                                device.layer_overhead_us)
    if not cpu:
        decode_overhead_us += rt_data.get("kernel_layer_overhead_us", {}).get(choice.speed_key, 0.0)
    decode_device = dataclasses.replace(device, layer_overhead_us=decode_overhead_us,
                                        bandwidth_efficiency=device.bandwidth_efficiency
                                        * batch_factor(choice.runtime, batch))
    tok_s = roofline.decode_tok_s(read, flops, model.layers, batch, decode_device, speedup)

    def ttft(requests: int) -> float:
        """Prefill of ``requests`` prompts sent together, in passes of the runtime's chunk."""
        passes = math.ceil(requests * prompt / prefill_tokens_per_pass(rt, prompt, requests))
        kv_prompt = memory.kv_cache_bytes(model, prompt, requests, kv_elem)
        pf = roofline.prefill_flops(model.matmul_params, prompt, requests, model.layers, model.heads, model.head_dim)
        return roofline.ttft_ms(pf, weights_read + kv_prompt, model.layers, passes, device, speedup)

    stored = formats.storage_step(v)
    # The second speed model, where NVIDIA's measured-kernel table covers this candidate.
    measured = None if cpu else kernel_data.lookup(spec.name, gpu.name, devices, choice.runtime,
                                                   stored.method, stored.config, batch, depth, prompt)
    if measured:
        # The engine's own spread of measured speeds applies to either model's prediction.
        band = speed_band(choice.runtime)
        measured["decode_tok_s_band"] = _rate_band(measured["decode_tok_s"], band["decode"])
        if measured["ttft_single_ms"] is not None:
            measured["ttft_single_ms_band"] = _time_band(measured["ttft_single_ms"], band["prefill"])
    return _Speed(tok_s, ttft(batch), ttft(1), depth, prompt, choice.runtime, measured)


def _notes(spec: ModelSpec, v: variants.Variant, model: ModelSpec, engine: str, devices: int) -> list[Reason]:
    """What a plan says of a candidate besides its kernel and its fit: GPUs that take turns, a
    model that changes shape, a training run it needs first."""
    notes = []
    if devices > 1 and not _tensor_parallel(engine):
        notes.append(Reason("no_tensor_parallel", f"{engine} splits layers across the {devices} GPUs: "
                            "memory is shared out, but one GPU works at a time (no tensor parallelism)"))
    if model is not spec and model.name != spec.name:
        notes.append(Reason("model_changes",
                            f"model becomes {model.name} ({model.layers} layers, {model.params / 1e9:.2f}B params)"))
    if any(s.descriptor.needs_training for s in v.steps):
        notes.append(Reason("needs_training", "needs a distillation (training) run before it can be served"))
    return notes


def _too_big(gpu: GpuProfile, choice: KernelChoice, engine: memory.EngineMemory, mem: memory.MemoryBreakdown,
             budget: float, margin: float, capacity: dict[str, int], batch: int, context: int) -> Reason:
    """Why a candidate does not fit: what it needs, the budget it misses, and what would fit."""
    where = (f"{budget:.1f} GiB in {choice.runtime}'s budget ({engine.fraction:g} x {gpu.usable_memory_gib:g} "
             f"GiB, {engine.option})" if engine.option else f"{budget:.1f} GiB usable")
    most = (f"; {capacity['max_batch']} sequences of {context} tokens fit" if batch > 1 and capacity["max_batch"]
            else "")
    return Reason("too_big", f"too big: needs {mem.in_budget_gib:.1f} GiB per device, "
                  f"{where} ({-margin:.1f} GiB short){most}")


def band_key(engine: str) -> str:
    """The engine's row of profiles/runtimes.toml [speed_band]: its own, or "default"."""
    return engine if engine in runtimes()["speed_band"] else "default"


def speed_band(engine: str) -> dict[str, tuple[float, float]]:
    """measured / predicted ratios the engine's speeds fall in, for "decode" and "prefill"
    (profiles/runtimes.toml [speed_band], fitted to published figures where there are some)."""
    band = runtimes()["speed_band"][band_key(engine)]
    return {speed: (float(band[speed][0]), float(band[speed][1])) for speed in ("decode", "prefill")}


def _rate_band(value: float, ratios: tuple[float, float]) -> list[float]:
    """[low, high] of a rate (tok/s): the prediction times the band's ratios."""
    return [round(value * ratios[0], 2), round(value * ratios[1], 2)]


def _time_band(value: float, ratios: tuple[float, float]) -> list[float] | None:
    """[low, high] of a time (ms): a rate ratio r makes the time 1/r as long."""
    if not math.isfinite(value):
        return None
    return [round(value / ratios[1], 1), round(value / ratios[0], 1)]


def _ms(value: float) -> float | None:
    """Milliseconds to one decimal; None where the device gives no FLOPs to predict from."""
    return round(value, 1) if math.isfinite(value) else None


def artifact_bytes(spec: ModelSpec, variant_name: str) -> int:
    """Size of the saved artifact (all weight tensors, GGUF metadata included) in bytes."""
    return formats.weight_bytes(spec, variants.parse(variant_name))
