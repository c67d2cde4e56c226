"""Making a plan: every candidate predicted, ranked, one recommended, alternatives if none fits.

``Plan.to_dict()`` (schema ``compress.plan/1``) is the file ``compress apply --plan`` and
``compress bench --plan`` read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from compress import engines, methods, variants
from compress.errors import UserInputError
from compress.limits import MAXIMA
from compress.planner import candidates as cands
from compress.planner import memory, profiles
from compress.planner.hardware import GpuProfile, kernel_support, list_gpus, load_gpu
from compress.planner.predict import default_context, engines_for, predict_variant, runtimes
from compress.planner.rank import OBJECTIVES, STRUCTURAL, quality_delta, rank
from compress.model.spec import ModelSpec
from compress.model.catalog import family_members
from compress.planner.spec import load_model_spec
from compress.registry import suggest

SCHEMA = "compress.plan/1"
DEFAULT_HEADROOM_GIB = 0.5
MAX_GPUS_SUGGESTED = 8
# Predicted perplexity changes closer than this (percentage points) count as a tie, and the
# faster option is named: the figures are published for reference models (profiles/quality.toml)
# and carried over to this one, so a 0.01-point difference says nothing about this model.
# A judgement, not a measurement.
QUALITY_TIE_PCT = 0.1
#: The most GPUs in one tensor-parallel group: 64 covers a rack-scale NVLink domain's usual
#: power-of-two partitions (GB200 NVL72 holds 72 GPUs; TP degrees above 8 are rare in practice).
MAX_GPUS = 64
#: Concurrent sequences a plan may ask for: far above any engine's scheduler limit
#: (vLLM's max_num_seqs defaults to 256), low enough that the memory model stays finite.
MAX_BATCH = 65_536


@dataclass(frozen=True)
class PlanOptions:
    context: int
    batch: int = 1
    gpus: int = 1
    headroom_gib: float = DEFAULT_HEADROOM_GIB
    objective: str = "balanced"
    kv_dtype: str = "fp16"
    engine: str = engines.ANY
    #: Share of each GPU an engine with a memory budget may use (vLLM's
    #: --gpu-memory-utilization); None: the engine's default (profiles/runtimes.toml).
    gpu_memory_utilization: float | None = None

    def __post_init__(self) -> None:
        engines.check(self.engine)
        if self.gpu_memory_utilization is not None and not 0 < self.gpu_memory_utilization <= 1:
            raise UserInputError("--gpu-memory-utilization is the share of each GPU vLLM may use, from 0 to 1 "
                                 f"(vLLM's default 0.9), got {self.gpu_memory_utilization}")
        if not 1 <= self.context <= MAXIMA["max_context"]:
            raise UserInputError(f"--context must be from 1 to {MAXIMA['max_context']:,} tokens, got {self.context}")
        if not 1 <= self.batch <= MAX_BATCH:
            raise UserInputError(f"--batch must be from 1 to {MAX_BATCH:,} concurrent sequences, got {self.batch}")
        if not 1 <= self.gpus <= MAX_GPUS:
            raise UserInputError(f"--gpus must be from 1 to {MAX_GPUS} (GPUs in one tensor-parallel group), "
                                 f"got {self.gpus}")
        if self.headroom_gib < 0:
            raise UserInputError(f"--headroom must be >= 0, got {self.headroom_gib}")
        if self.objective not in OBJECTIVES:
            raise suggest(self.objective, OBJECTIVES, "objective")
        kv_types = profiles.load("formats.toml")["kv_bytes"]
        if self.kv_dtype not in kv_types:
            raise suggest(self.kv_dtype, kv_types, "KV-cache dtype")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlanOptions:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Plan:
    model: ModelSpec
    gpu: GpuProfile
    options: PlanOptions
    seed_formula: dict[str, Any]
    candidates: tuple[dict[str, Any], ...]
    recommended: str | None
    recommendation: str
    alternatives: tuple[dict[str, Any], ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    context_sweep: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        gpu = self.gpu.to_dict()
        gpu["gpus"] = self.options.gpus
        return {
            "schema": SCHEMA,
            "model": self.model.to_dict(),
            "gpu": gpu,
            "options": self.options.to_dict(),
            "seed_formula": self.seed_formula,
            "candidates": list(self.candidates),
            "recommended": self.recommended,
            "recommendation": self.recommendation,
            "alternatives": list(self.alternatives),
            "notes": list(self.notes),
            **({"context_sweep": list(self.context_sweep)} if self.context_sweep else {}),
        }

    def candidate(self, variant: str) -> dict[str, Any]:
        for c in self.candidates:
            if c["variant"] == variant:
                return c
        raise KeyError(variant)


def evaluate(spec: ModelSpec, gpu: GpuProfile, options: PlanOptions,
             measured: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Every default candidate predicted and ranked (only those ``options.engine`` serves); a
    variant bench measured on this device carries its ``measured`` quality, which the ranking
    uses in place of the prediction."""
    names = cands.default_candidates(spec, gpu)
    if options.engine != engines.ANY:
        names = [n for n in names if options.engine in engines_for(variants.parse(n), gpu)]
    found = [predict_variant(spec, gpu, name, options.context, options.batch, gpus=options.gpus,
                             kv_dtype=options.kv_dtype, headroom_gib=options.headroom_gib,
                             runtime=None if options.engine == engines.ANY else options.engine,
                             memory_fraction=options.gpu_memory_utilization)
             for name in names]
    for c in found:
        if measured and c["variant"] in measured:
            c["measured"] = measured[c["variant"]]
    return rank(found, options.objective)


def _best(ranked: list[dict[str, Any]], *, direct: bool = False) -> dict[str, Any] | None:
    """The top fitting candidate; ``direct`` skips layer dropping and distillation, which
    change the model, so that alternatives suggest serving the model itself first."""
    fitting = [c for c in ranked if c["fits"]]
    # A format `apply` cannot write yet is ranked and shown, but recommended only as a last resort.
    fitting = [c for c in fitting if not getattr(methods.descriptor(c["method"]), "planned_only", False)] or fitting
    if direct:
        fitting = [c for c in fitting if c["method"] not in STRUCTURAL] or fitting
    return fitting[0] if fitting else None


def recommendation_text(best: dict[str, Any] | None, ranked: list[dict[str, Any]], spec: ModelSpec,
                        gpu: GpuProfile, options: PlanOptions) -> str:
    """One paragraph: what to use and why, or why nothing fits."""
    where = gpu.display_name + (f" x{options.gpus}" if options.gpus > 1 else "")
    if best is None:
        direct = [c for c in ranked if c["supported"] and c["method"] not in STRUCTURAL] or ranked
        closest = max(direct, key=lambda c: c["margin_gib"])
        return (f"Nothing fits {spec.name} on {where} at context {options.context} and batch {options.batch}: "
                f"the smallest option, {closest['variant']}, needs {closest['predicted']['peak_memory_gib']:.1f} GiB "
                f"and is {-closest['margin_gib']:.1f} GiB short. See the alternatives.")
    p = best["predicted"]
    fitting = [c for c in ranked if c["fits"]]
    quality = p["ppl_delta_pct"]
    measured = (best.get("measured") or {}).get("ppl_delta_pct")
    band = p.get("ppl_delta_band_pct")
    quality_text = (f"about {quality:+.2f}% perplexity" + (f" (band {band[0]:+.1f}% to {band[1]:+.1f}%)" if band else "")
                    if quality is not None else "an unpublished quality change")
    if measured is not None:
        quality_text += f", measured {measured:+.2f}% on this device"
    cached = p.get("decode_cache_tokens", p["prompt_tokens"])
    prompts = (f"{options.batch} prompts of {p['prompt_tokens']} tokens sent together (each waits for the "
               "batch's prefill)") if options.batch > 1 else f"a {p['prompt_tokens']}-token prompt"
    text = (f"Use {best['variant']} ({best['method']}, {best['runtime']}, kernel {best['kernel']}) on {where}. "
            f"It fits with {best['margin_gib']:.1f} GiB to spare (peak {p['peak_memory_gib']:.1f} GiB), "
            f"decodes at a predicted {p['decode_tok_s']:.0f} tok/s with {cached} tokens in the cache"
            + (f", takes {p['ttft_ms']:.0f} ms to the first token of {prompts}" if p["ttft_ms"] is not None else "")
            + f", and costs {quality_text}. "
            f"It ranks first of {len(fitting)} fitting options by the {options.objective} objective"
            f"{' and is on the quality x speed x memory Pareto front' if best['pareto'] else ''}.")
    best_q = least_quality_loss(fitting)
    fastest = max(fitting, key=lambda c: c["predicted"]["decode_tok_s"])
    if best_q and best_q is not best:
        text += (f" For the least quality loss take {best_q['variant']} "
                 f"({quality_delta(best_q):+.2f}%, {best_q['predicted']['decode_tok_s']:.0f} tok/s)")
        text += f"; for speed {fastest['variant']} ({fastest['predicted']['decode_tok_s']:.0f} tok/s)." \
            if fastest is not best else "."
    too_big = [c["variant"] for c in ranked if not c["fits"] and c["margin_gib"] < 0 and c["method"] == "baseline"]
    if too_big:
        text += f" Uncompressed ({', '.join(too_big)}) does not fit."
    return text


def least_quality_loss(fitting: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The fitting candidate with the smallest perplexity change (measured where bench measured it
    on this device, else predicted); among those within
    :data:`QUALITY_TIE_PCT` of it, the fastest."""
    known = [c for c in fitting if quality_delta(c) is not None]
    if not known:
        return None
    least = min(quality_delta(c) for c in known)
    tied = [c for c in known if quality_delta(c) <= least + QUALITY_TIE_PCT]
    return max(tied, key=lambda c: c["predicted"]["decode_tok_s"])


def _search(trials: list[tuple[Any, ModelSpec, GpuProfile, PlanOptions]],
            direct_only: bool = True) -> tuple[Any, dict[str, Any]] | None:
    """The first trial where the model itself fits (compressed, not shrunk); failing that,
    unless ``direct_only``, the first where a layer-dropped or distilled model fits."""
    fallback = None
    for value, spec, gpu, options in trials:
        ranked = evaluate(spec, gpu, options)
        best = _best(ranked, direct=True)
        if best is not None and best["method"] not in STRUCTURAL:
            return value, best
        if not direct_only and fallback is None and (any_fit := _best(ranked)):
            fallback = (value, any_fit)
    return fallback


def alternatives(spec: ModelSpec, gpu: GpuProfile, options: PlanOptions) -> list[dict[str, Any]]:
    """What would fit when the model itself does not, in order of least change: a smaller
    KV-cache type, a shorter context, more GPUs, a larger GPU, and only then a smaller model."""
    out: list[dict[str, Any]] = []

    def add(kind: str, found: tuple[Any, dict[str, Any]] | None, text: str) -> None:
        if found:
            value, best = found
            p = best["predicted"]
            out.append({"kind": kind, "value": value, "variant": best["variant"],
                        "peak_memory_gib": p["peak_memory_gib"], "margin_gib": best["margin_gib"],
                        "text": text.format(value=value, variant=best["variant"], peak=p["peak_memory_gib"],
                                            margin=best["margin_gib"])})

    kv_table = profiles.load("formats.toml")["kv_bytes"]
    smaller_kv = [k for k in profiles.load("formats.toml")["kv_alternatives"]["order"]
                  if kv_table[k] < kv_table[options.kv_dtype]]
    runs_kv = profiles.load("formats.toml")["kv_alternatives"]["runtimes"]
    add("kv_dtype", next(((k, best) for k in smaller_kv
                          if (best := _best([c for c in evaluate(spec, gpu, replace(options, kv_dtype=k))
                                             if c["runtime"] in runs_kv[k] and c["method"] not in STRUCTURAL]))),
                         None),
        "--kv-dtype {value}: {variant} fits with {margin:.1f} GiB to spare")
    contexts = []
    context = options.context // 2
    while context >= 256:
        contexts.append(context)
        context //= 2
    add("context", _search([(c, spec, gpu, replace(options, context=c)) for c in contexts]),
        "--context {value}: {variant} fits")
    if gpu.kind == "gpu":
        add("gpus", _search([(n, spec, gpu, replace(options, gpus=n))
                             for n in range(options.gpus + 1, MAX_GPUS_SUGGESTED + 1)]),
            "--gpus {value}: {variant} fits, {peak:.1f} GiB per GPU")
        larger = [g for g in list_gpus() if g.usable_memory_gib > gpu.usable_memory_gib]
        add("gpu", _search([(g.name, spec, g, options) for g in larger]),
            "--gpu {value}: {variant} fits with {margin:.1f} GiB to spare")
    smaller = [m for m in sorted(family_members(spec), key=lambda m: m.params, reverse=True) if m.params < spec.params]
    add("model", _search([(m.name, m, gpu, replace(options, context=min(options.context, m.max_context)))
                          for m in smaller], direct_only=False),
        "--model {value}: {variant} fits")
    return out


def _notes(spec: ModelSpec, gpu: GpuProfile) -> list[str]:
    notes = list(gpu.notes)
    if gpu.kind == "gpu":
        for rule in ("flash_attention_2", "bf16", "fp8"):
            ok, why = kernel_support(gpu, rule)
            if not ok:
                notes.append(why)
    note = cands.distill_note(spec)
    if note:
        notes.append(note)
    return notes


def budget_notes(ranked: list[dict[str, Any]], gpu: GpuProfile) -> list[str]:
    """One line per engine that sizes itself by a share of the GPU: its budget beside the
    device's memory, and the option that changes it."""
    notes = []
    for engine in dict.fromkeys(c["runtime"] for c in ranked):
        c = next(c for c in ranked if c["runtime"] == engine)
        fraction = c["memory"].get("engine_memory_fraction")
        if fraction is None:
            continue
        option = runtimes()["runtime"][engine].get("memory_fraction_option", "")
        notes.append(f"{engine} uses {fraction:g} of each GPU ({option}): {c['memory']['engine_budget_gib']:.1f} "
                     f"of {gpu.usable_memory_gib:g} GiB hold weights, activations and KV cache; CUDA context and "
                     f"graphs ({c['memory']['outside_budget_gib']:.2f} GiB) take the rest; fits, max context and "
                     "max batch follow that budget")
    return notes


def kernel_data_notes(ranked: list[dict[str, Any]]) -> list[str]:
    """Which speeds the ranking uses, where a second model covers some candidates."""
    covered = [c for c in ranked if c["predicted"].get("kernel_data")]
    if not covered:
        return []
    first = covered[0]["predicted"]["kernel_data"]
    return [f"Ranked by the roofline; {len(covered)} of {len(ranked)} candidates also have a prediction from "
            f"measured kernels ({first['source']}, {first['data_version']} data): the kernel-data tok/s column "
            "(--wide), predicted.kernel_data in JSON"]


#: Smallest context of a sweep; each next one doubles, up to the model's maximum.
SWEEP_START_TOKENS = 512


def sweep_contexts(spec: ModelSpec) -> list[int]:
    """512, 1k, 2k ... up to the model's maximum context (which is always the last)."""
    out, c = [], SWEEP_START_TOKENS
    while c < spec.max_context:
        out.append(c)
        c *= 2
    return [*out, spec.max_context]


def context_sweep(spec: ModelSpec, gpu: GpuProfile, options: PlanOptions,
                  contexts: list[int] | None = None) -> list[dict[str, Any]]:
    """For each context: how many candidates fit, the best one, its peak memory and decode speed,
    and every candidate's fit, peak memory and decode speed there."""
    rows = []
    for c in contexts or sweep_contexts(spec):
        ranked = evaluate(spec, gpu, replace(options, context=c))
        best = _best(ranked)
        rows.append({"context": c, "fitting": sum(1 for r in ranked if r["fits"]),
                     "best": best["variant"] if best else None,
                     "peak_memory_gib": best["predicted"]["peak_memory_gib"] if best else None,
                     "decode_tok_s": best["predicted"]["decode_tok_s"] if best else None,
                     "decode_tok_s_band": best["predicted"]["decode_tok_s_band"] if best else None,
                     "candidates": {r["variant"]: {"fits": r["fits"],
                                                   "peak_memory_gib": r["predicted"]["peak_memory_gib"],
                                                   "decode_tok_s": r["predicted"]["decode_tok_s"],
                                                   "decode_tok_s_band": r["predicted"]["decode_tok_s_band"]}
                                    for r in ranked}})
    return rows


def make_plan(model: str, gpu: str | GpuProfile = "auto", *, context: int | None = None, batch: int = 1,
              gpus: int = 1, headroom_gib: float = DEFAULT_HEADROOM_GIB, objective: str = "balanced",
              kv_dtype: str = "fp16", headroom_fraction: float = 0.0, engine: str = engines.ANY,
              sweep: bool = False, records: list[dict[str, Any]] | None = None,
              gpu_memory_utilization: float | None = None) -> Plan:
    """Plan compression of ``model`` for ``gpu`` (name, alias, .toml file, "cpu"/"host", "auto",
    or a :class:`GpuProfile` such as :func:`~compress.planner.hardware.custom_gpu` builds).

    ``headroom_gib`` (and ``headroom_fraction`` of the device's usable memory) is kept free.
    ``sweep``: also size every candidate at contexts from 512 tokens to the model's maximum.
    ``records`` (bench results) put the quality measured for this model on this device
    beside each prediction, and into the ranking. ``gpu_memory_utilization`` replaces vLLM's
    default share of each GPU (0.9).
    """
    spec = load_model_spec(model)
    device = gpu if isinstance(gpu, GpuProfile) else load_gpu(gpu)
    ctx = default_context(spec) if context is None else context
    if ctx > spec.max_context:
        raise UserInputError(f"--context {ctx} is above {spec.name}'s maximum context of {spec.max_context} tokens")
    if not 0 <= headroom_fraction < 1:
        raise UserInputError(f"headroom fraction must be in [0, 1), got {headroom_fraction}")
    if device.kind == "cpu" and gpus != 1:
        raise UserInputError(f"--gpus {gpus} makes no sense with the CPU host profile; leave it at 1")
    options = PlanOptions(context=ctx, batch=batch, gpus=gpus,
                          headroom_gib=round(headroom_gib + headroom_fraction * device.usable_memory_gib, 3),
                          objective=objective, kv_dtype=kv_dtype, engine=engine,
                          gpu_memory_utilization=gpu_memory_utilization)
    measured = None
    if records:
        from compress.planner.measured import measured_quality, model_keys

        measured = measured_quality(records, model_keys(model, spec.name, spec.aliases), device.name, kv_dtype)
    ranked = evaluate(spec, device, options, measured)
    if not ranked:
        where = "the CPU" if device.kind == "cpu" else device.display_name
        raise UserInputError(f"--engine {engine} serves none of the candidate formats on {where}; "
                             "try --engine any")
    best = _best(ranked)
    # Alternatives whenever the model itself (compressed, not shrunk) does not fit.
    direct = any(c["fits"] and c["method"] not in STRUCTURAL for c in ranked)
    alts = [] if direct else alternatives(spec, device, options)
    return Plan(model=spec, gpu=device, options=options, seed_formula=memory.seed_formula(spec),
                candidates=tuple(ranked), recommended=best["variant"] if best else None,
                recommendation=recommendation_text(best, ranked, spec, device, options),
                alternatives=tuple(alts),
                notes=tuple(_notes(spec, device) + budget_notes(ranked, device) + kernel_data_notes(ranked)),
                context_sweep=tuple(context_sweep(spec, device, options)) if sweep else ())
