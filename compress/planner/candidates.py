"""The default candidate variants for a model on a device, named with compress.variants."""

from __future__ import annotations

from compress import variants
from compress.planner import profiles
from compress.planner.hardware import GpuProfile, kernel_support
from compress.planner.spec import ModelSpec, family_members

GPU_CANDIDATES = ("fp16", "bf16", "int8", "nf4", "gptq-8-g128", "gptq-4-g128", "gptq-3-g128", "awq-4-g128",
                  "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0", "q3_k_m", "q2_k", "wanda-50", "wanda-2:4")
CPU_CANDIDATES = ("fp32", "bf16", "fp16", "int8", "nf4", "gptq-4-g128", "awq-4-g128",
                  "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0", "q3_k_m", "q2_k", "wanda-50", "wanda-2:4")
#: Layer drop candidate: a quarter of the layers, the largest cut SLEB/ShortGPT report as usable.
LAYERDROP_FRACTION = 0.25
#: At most this many distillation students (the largest smaller family members).
MAX_STUDENTS = 2


def distill_students(spec: ModelSpec) -> list[ModelSpec]:
    """Smaller catalog models of the same family (same tokenizer), largest first, one per layer count.

    ``distill-N`` names a student by its layer count; where two family members share a count
    only the smaller one (what the name resolves to) is offered.
    """
    by_layers: dict[int, ModelSpec] = {}
    for member in family_members(spec):  # smallest first
        if member.params < spec.params and member.vocab == spec.vocab:
            by_layers.setdefault(member.layers, member)
    return sorted(by_layers.values(), key=lambda m: m.params, reverse=True)[:MAX_STUDENTS]


#: Group sizes tried in turn when the usual 128 does not divide a model's layer widths.
GROUP_SIZES = (128, 64, 32)


def group_size_for(spec: ModelSpec) -> int:
    """The largest usual group size that divides every quantized layer's input width.

    GPTQ/AWQ kernels need whole groups along the input dimension: hidden (q/k/v/gate/up),
    heads·head_dim (o_proj) and intermediate (down_proj). SmolLM2-135M's 576 takes 64, not 128.
    """
    widths = (spec.hidden, spec.heads * spec.head_dim, spec.intermediate)
    return next((g for g in GROUP_SIZES if all(w % g == 0 for w in widths)), -1)


def microscaling_candidates(gpu: GpuProfile) -> list[str]:
    """NVFP4/MXFP4 where the device runs them: the rule named by each format's ``kernel`` in
    profiles/formats.toml (kernels.toml decides, e.g. sm100+ for NVFP4)."""
    table = profiles.load("formats.toml").get("microscaling", {})
    return [name for name, layout in table.items() if kernel_support(gpu, layout["kernel"])[0]]


def default_candidates(spec: ModelSpec, gpu: GpuProfile) -> list[str]:
    """Variant names to evaluate, in a stable order (canonical names, round-trip with variants.parse)."""
    names = list(CPU_CANDIDATES if gpu.kind == "cpu" else GPU_CANDIDATES)
    if gpu.kind == "gpu":
        names += microscaling_candidates(gpu)
    group = group_size_for(spec)
    if group != 128:
        names = [n.replace("-g128", f"-g{group}") for n in names]
    drop = round(spec.layers * LAYERDROP_FRACTION)
    if 1 <= drop < spec.layers:
        names.append(f"layerdrop-{drop}")
    names += [f"distill-{m.layers}" for m in distill_students(spec)]
    return [variants.parse(n).name for n in names]


def distill_note(spec: ModelSpec) -> str | None:
    """A sentence when no smaller family member exists to distil into."""
    if distill_students(spec):
        return None
    family = spec.family or "its"
    return f"no smaller model of the {family} family in the catalog: no distillation candidate"
