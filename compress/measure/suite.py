"""The tests of a bench run and the figures each one yields.

A test (``ppl``, ``pp128``, ``tg32``, ``batch4``) runs on a loaded runtime and returns
figures: a metric name, its raw samples, the value (the median of the samples unless the
metric defines its own, like corpus perplexity), and the planner's prediction where one
exists. Which way is better and in what unit a metric is counted is the metric's spec
(:data:`compress.metrics.METRICS`). The sweep turns figures into records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from compress import formulas
from compress.metrics import spec as metric_spec
from compress.measure import latency, metrics
from compress.measure.energy import EnergyMeter, joules_per_token
from compress.measure.perplexity import measure_perplexity
from compress.measure.settings import BenchSettings

@dataclass(frozen=True)
class Ceiling:
    """A peak to measure utilisation against: the device profile's datasheet figure or ``compress probe``'s."""

    source: str  # "profile" | "probe"
    peak_flops_per_s: float | None
    bandwidth_bytes_per_s: float | None


@dataclass(frozen=True)
class ModelShape:
    """The numbers FLOP and byte counts need, from the planner's model spec of the variant."""

    matmul_params: int
    layers: int
    attention_dim: int  # heads x head_dim
    kv_heads: int
    head_dim: int
    sliding_window: int | None = None
    sliding_window_layers: int | None = None  # None: every layer, when sliding_window is set
    # What decides which weights a decode step reads (compress.formulas.decode_weight_bytes).
    params: int = 0
    vocab: int = 0
    hidden: int = 0
    tied_embeddings: bool = True
    intermediate: int = 0
    experts: int = 1
    experts_per_token: int = 1

    def decode_weight_bytes(self, file_bytes: float, batch: int = 1) -> float:
        """The weight bytes of ``file_bytes`` that one decode step reads, as the planner counts them."""
        if not self.params:
            return file_bytes
        return formulas.decode_weight_bytes(file_bytes, self.params, self.vocab, self.hidden, self.tied_embeddings,
                                            self.layers, self.intermediate, self.experts, self.experts_per_token,
                                            batch)


@dataclass
class RunContext:
    runtime: Any
    ids: Sequence[int]  # the evaluation token stream, tokenized once
    settings: BenchSettings
    shape: ModelShape | None = None
    weight_bytes: int | None = None
    ceilings: list[Ceiling] = field(default_factory=list)
    predicted: dict[str, float] = field(default_factory=dict)  # metric → planner's figure
    ppl_ids: Sequence[int] | None = None  # the stream perplexity scores (after the convention's BOS)
    bos_id: int | None = None  # replaces each chunk's first token (llama.cpp convention)
    reference: Any = None  # the baseline's distributions (compress.measure.kld.Reference), for KLD
    reference_key: str | None = None


def figure(metric: str, samples: Sequence[float] | None = None, value: float | None = None,
           predicted: float | None = None, **params: Any) -> dict[str, Any]:
    """One measured figure, ready to become a record."""
    about = metric_spec(metric)
    stats = metrics.sample_stats(samples) if samples else None
    if value is None:
        if stats is None:
            raise ValueError(f"figure {metric!r} needs samples or a value")
        value = stats["median"]
    return {"metric": metric, "unit": about.unit, "higher_is_better": about.higher_is_better, "value": float(value), "stats": stats,
            "samples": [float(s) for s in samples] if samples else [], "predicted": predicted,
            "prediction_error_pct": metrics.prediction_error_pct(value, predicted), "extra": params}


def run_ppl(ctx: RunContext) -> list[dict[str, Any]]:
    s = ctx.settings
    ids = ctx.ppl_ids if ctx.ppl_ids is not None else ctx.ids[: s.ppl_tokens]
    res = measure_perplexity(ctx.runtime, ids, s.ppl_context, s.ppl_stride, convention=s.ppl_convention,
                             bos_id=ctx.bos_id, reference=ctx.reference)
    common = {"convention": s.ppl_convention, "bos_id": ctx.bos_id}
    out = [figure("perplexity", res["window_ppl"], value=res["ppl"], predicted=ctx.predicted.get("perplexity"),
                  scored_tokens=res["scored_tokens"], windows=res["windows"], nll_sum_nats=res["nll_sum_nats"],
                  value_is="exp(total NLL / scored tokens); samples are per-window perplexities",
                  window_s=res["window_s"], **common)]
    if "kld" in res:
        k = res["kld"]
        about = {**common, "tokens": k["tokens"], "top_k": s.kld_top_k, "tail_mass_mean": k["tail_mass_mean"],
                 "baseline": "transformers float32 of the source model", "reference_key": ctx.reference_key}
        out += [figure("kld_mean", res["window_kld"], value=k["kld_mean"], predicted=ctx.predicted.get("kld_mean"),
                       value_is="mean over tokens; samples are per-window means", **about),
                figure("kld_p99", value=k["kld_p99"], **about),
                figure("kld_max", value=k["kld_max"], **about),
                figure("same_top_pct", value=k["same_top_pct"], **about),
                figure("delta_p_rms_pct", value=k["delta_p_rms_pct"], **about),
                figure("ln_ppl_ratio", value=k["ln_ppl_ratio"], predicted=ctx.predicted.get("ln_ppl_ratio"), **about)]
    return out


def run_prefill(ctx: RunContext) -> list[dict[str, Any]]:
    s = ctx.settings
    seconds = latency.measure_prefill(ctx.runtime, ctx.ids[: s.pp_tokens], s.reps, s.warmup)
    out = [figure("ttft_ms", [x * 1000 for x in seconds], predicted=ctx.predicted.get("ttft_ms")),
           figure("prefill_tok_s", [s.pp_tokens / x for x in seconds])]
    median_s = metrics.sample_stats(seconds)["median"]
    if ctx.shape is not None:
        # A causal prompt of n tokens: token i attends to i positions (compress.formulas.prefill_flops).
        flops = formulas.prefill_flops(ctx.shape.matmul_params, s.pp_tokens, ctx.shape.layers, ctx.shape.attention_dim)
        out += _mfu(flops / median_s, ctx.ceilings, flops_per_prompt=flops)
    return out


def run_decode(ctx: RunContext) -> list[dict[str, Any]]:
    s = ctx.settings
    rows = [list(ctx.ids[: s.tg_prompt_tokens])]
    with EnergyMeter(getattr(ctx.runtime, "device", "cpu")) as energy:
        res = latency.measure_decode(ctx.runtime, rows, s.tg_tokens, s.reps, s.warmup)
    tok_s = [s.tg_tokens / x for x in res["run_s"]]
    how = {"timed_as": res["timed_as"]} if "timed_as" in res else {}
    out = [figure("decode_tok_s", tok_s, predicted=ctx.predicted.get("decode_tok_s"), **how),
           figure("tpot_ms", [x / s.tg_tokens * 1000 for x in res["run_s"]], **how)]
    if res["step_s"]:
        out.append(figure("itl_ms", [x * 1000 for x in res["step_s"]]))
    median_tok_s = metrics.sample_stats(tok_s)["median"]
    if ctx.shape is not None:
        # Step k of M (1-based) attends to prompt + k positions: prompt + (M + 1) / 2 on average.
        context = s.tg_prompt_tokens + (s.tg_tokens + 1) / 2
        flops = metrics.flops_per_token(ctx.shape.matmul_params, ctx.shape.layers, context, ctx.shape.attention_dim)
        out += _mfu(flops * median_tok_s, ctx.ceilings, flops_per_token=flops)
        if ctx.weight_bytes is not None:
            kv = metrics.kv_cache_bytes(ctx.shape.layers, ctx.shape.kv_heads, ctx.shape.head_dim, context,
                                        getattr(ctx.runtime, "kv_bytes_per_element", 2),
                                        sliding_window=ctx.shape.sliding_window,
                                        sliding_window_layers=ctx.shape.sliding_window_layers)
            per_token = metrics.decode_bytes_per_token(ctx.shape.decode_weight_bytes(ctx.weight_bytes), kv)
            out += _mbu(per_token, median_tok_s, ctx.ceilings)
    if energy.joules is not None:
        generated = (s.warmup + s.reps) * s.tg_tokens
        out.append(figure("energy_j_per_token", value=joules_per_token(energy.joules, generated),
                          joules=energy.joules, tokens=generated, covers="warm-up and timed runs"))
    return out


def run_batch(ctx: RunContext, batch: int) -> list[dict[str, Any]]:
    s = ctx.settings
    rows = latency.batch_rows(ctx.ids, batch, s.tg_prompt_tokens)
    res = latency.measure_decode(ctx.runtime, rows, s.tg_tokens, s.reps, s.warmup)
    how = {"timed_as": res["timed_as"]} if "timed_as" in res else {}
    out = [figure("throughput_tok_s", [batch * s.tg_tokens / x for x in res["run_s"]], **how)]
    if res["step_s"]:
        out.append(figure("itl_ms", [x * 1000 for x in res["step_s"]]))
    return out


def _mfu(flops_per_s: float, ceilings: list[Ceiling], **params: Any) -> list[dict[str, Any]]:
    out = []
    for c in ceilings:
        if c.peak_flops_per_s:
            name = "mfu_pct" if c.source == "profile" else "mfu_probe_pct"
            out.append(figure(name, value=100 * metrics.mfu(flops_per_s, c.peak_flops_per_s),
                              achieved_tflops=flops_per_s / 1e12, ceiling_tflops=c.peak_flops_per_s / 1e12,
                              ceiling_source=c.source, **params))
    return out


def _mbu(bytes_per_token: float, tok_s: float, ceilings: list[Ceiling]) -> list[dict[str, Any]]:
    out = []
    for c in ceilings:
        if c.bandwidth_bytes_per_s:
            name = "mbu_pct" if c.source == "profile" else "mbu_probe_pct"
            out.append(figure(name, value=100 * metrics.mbu(bytes_per_token, tok_s, c.bandwidth_bytes_per_s),
                              bytes_per_token=bytes_per_token, achieved_gbs=bytes_per_token * tok_s / 1e9,
                              ceiling_gbs=c.bandwidth_bytes_per_s / 1e9, ceiling_source=c.source))
    return out
