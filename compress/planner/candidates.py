"""The default candidate variants for a model on a device, named with compress.variants.

Each method's descriptor lists the names it proposes (``Method.candidates``); the
structural candidates (layer drop, distillation students) depend on the model and the
catalog, so they are decided here."""

from __future__ import annotations

from compress import methods, variants
from compress.methods.groups import DEFAULT_GROUP_SIZE, default_group_size, input_widths
from compress.planner import profiles
from compress.planner.hardware import GpuProfile, kernel_support
from compress.model.spec import ModelSpec
from compress.model.catalog import family_members

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


def group_size_for(spec: ModelSpec) -> int:
    """The group size GPTQ/AWQ candidates use on ``spec`` (the rule: :mod:`compress.methods.groups`)."""
    return default_group_size(input_widths(spec.hidden, spec.heads, spec.head_dim, spec.intermediate))


def microscaling_candidates(gpu: GpuProfile) -> list[str]:
    """NVFP4/MXFP4 where the device runs them: the rule named by each format's ``kernel`` in
    profiles/formats.toml (kernels.toml decides, e.g. sm100+ for NVFP4)."""
    table = profiles.load("formats.toml").get("microscaling", {})
    return [name for name, layout in table.items() if kernel_support(gpu, layout["kernel"])[0]]


def default_candidates(spec: ModelSpec, gpu: GpuProfile) -> list[str]:
    """Variant names to evaluate, in a stable order (canonical names, round-trip with variants.parse)."""
    kind = "cpu" if gpu.kind == "cpu" else "gpu"
    names = [name for d in methods.descriptors() for name in d.candidates.get(kind, ())]
    if gpu.kind == "gpu":
        names += microscaling_candidates(gpu)
    group = group_size_for(spec)
    if group != DEFAULT_GROUP_SIZE:
        names = [n.replace(f"-g{DEFAULT_GROUP_SIZE}", f"-g{group}") for n in names]
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
